#!/usr/bin/python
# Copyright: meshguard.egress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
module: egress_apply
short_description: Apply an egress description's plan to a cluster, or remove what it owns
version_added: 0.2.0
description:
  - Computes the plan of the egress description (see M(meshguard.egress.egress_plan)) and
    brings the cluster to it in one task, on the controller; the outbound traffic policy,
    the egress gateway's Helm release, the routes, the access policies and the
    NetworkPolicies.
  - "Order: read everything the plan touches, decide every change, then preflight every
    change on the API server (a server-side dry run of each object and of the gateway
    chart's rendered manifests, the chart's values schema, object ownership, dedicated
    nodes). When anything fails, nothing is written and the message names each object,
    field and value. Check mode stops after the preflight, so it reports the failure a real
    run would hit."
  - Objects are written with server-side apply (field manager C(meshguard.egress)) and
    carry C(meshguard.io/description=<name>); an object whose planned content is already
    there is not written again, and the Helm release is not upgraded when it already has
    the planned chart version and values, so a re-run reads the cluster and changes nothing.
  - "Ownership: only objects labelled with this description's name are changed or
    deleted. An object of the plan that exists without the label (a user's, or another
    description's) stops the run before any write, unless O(description) sets C(adopt)."
  - Objects this description wrote earlier that are no longer in its plan are deleted.
  - "A gateway release left C(pending-install), C(pending-upgrade), C(pending-rollback) or
    C(failed) (a killed or failed helm run) is recovered: pending revisions after the last
    deployed one are marked failed, the release is upgraded from the deployed revision, and
    what only the stranded revisions created is deleted; a release never deployed is
    uninstalled and installed again. The recovery is in RV(changes) and RV(release.recovery)."
  - With O(state=absent), deletes everything the description owns (objects, the release,
    the namespaces it created, the gateway label and taint of nodes) and nothing else.
author:
  - meshguard maintainers (@meshguard)
extends_documentation_fragment:
  - meshguard.egress.plan
  - meshguard.egress.attributes
  - meshguard.egress.k8s_auth
options:
  state:
    description: C(present) converges the plan; C(absent) removes what the description owns.
    type: str
    choices: [present, absent]
    default: present
  helm_binary:
    description: The helm executable on the controller.
    type: str
    default: helm
attributes:
  check_mode:
    support: full
    details:
      - Runs the whole preflight (server-side dry runs) and writes nothing.
  diff_mode:
    support: full
  idempotent:
    support: full
notes:
  - Cluster credentials, in order; the task's options, the host's C(egress_kubeconfig) and
    C(egress_context), then the C(K8S_AUTH_*) environment variables. A blank value counts
    as unset, as AWX injects blank optional credential fields.
requirements:
  - kubernetes (Python) on the controller
  - helm 3.13 or later on the controller, for the gateway release
"""

EXAMPLES = r"""
- name: Converge the inventory's egress description
  meshguard.egress.egress_apply:

- name: Only the NetworkPolicies, on another cluster
  meshguard.egress.egress_apply:
    concerns: [lockdown]
    kubeconfig: ~/.kube/cluster-2

- name: Remove everything this description owns
  meshguard.egress.egress_apply:
    state: absent
"""

RETURN = r"""
changes:
  description: What changed (or, in check mode, would change); C(object) and C(action).
  returned: always
  type: list
  elements: dict
problems:
  description: Why the preflight refused the plan (nothing was written).
  returned: failure
  type: list
  elements: str
written:
  description: What a failed write had already written (a re-run converges).
  returned: failure
  type: list
  elements: dict
release:
  description: The gateway release's revision, chart version and status.
  returned: when the plan has the gateway
  type: dict
  contains:
    recovery:
      description:
        - How a stranded release was recovered. C(status) and C(revision) of its latest
          revision; C(how) is C(upgrade) (C(from_revision), C(stranded_revisions), and
          C(removed), the objects only those revisions created) or C(uninstall).
      returned: when the latest revision was pending or failed
      type: dict
"""
