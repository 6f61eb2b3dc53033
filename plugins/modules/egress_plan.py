#!/usr/bin/python
# Copyright: meshguard.egress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
module: egress_plan
short_description: Compute the plan of an egress description, without touching any cluster
version_added: 0.2.0
description:
  - Validates the egress description (every problem at once, each naming its field path and
    value) and returns its plan, the one computation every other part of the collection
    uses; the objects of every concern, the gateway's Helm release and values, the
    namespaces, nodes and ownership labels, and (with O(verify)) the verification
    expectations; each source, URL and expected outcome, with the reason.
  - The description is the host's C(egress_*) variables (see the collection's
    C(docs/description.md)), or O(description).
  - Runs on the controller only and never reports C(changed).
author:
  - meshguard maintainers (@meshguard)
extends_documentation_fragment:
  - meshguard.egress.plan
  - meshguard.egress.attributes
  - meshguard.egress.attributes.read_only
options:
  verify:
    description: Also compute the verification expectations (needs C(egress_verify)).
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Plan the example description
  meshguard.egress.egress_plan:
  register: egress

- name: Show what would be probed and why
  ansible.builtin.debug:
    msg: "{{ egress.plan.expectations | map(attribute='reason') | list }}"
"""

RETURN = r"""
plan:
  description: The plan.
  returned: success
  type: dict
  contains:
    objects:
      description: Every object, in apply order, labelled with its owner.
      type: list
      elements: dict
    release:
      description: The gateway's Helm release (chart, version, values).
      type: dict
    expectations:
      description:
        - Each probe with C(expect) and C(reason), and C(not_proven) (why its outcome proves
          nothing) on bypass rows when C(egress_verify.network_policies_enforced) is false.
        - One bypass row per namespace of C(egress_lockdown.namespaces) probes from a
          temporary pod of C(egress_verify.bypass_image) (source C({namespace, bypass_image})).
      type: list
      elements: dict
    probes:
      description: The expectations as M(meshguard.egress.egress_probe) probes.
      type: list
      elements: dict
"""
