# Copyright: meshguard.egress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The options that pick a description and its concerns (meshguard.egress.plan), shared by
egress_plan and egress_apply (their code: plugins/plugin_utils/action.py)."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  description:
    description:
      - The description as one mapping (keys without the C(egress_) prefix). Default the
        host's C(egress_*) variables, with every C(egress_override_*) mapping deep-merged
        on top.
    type: dict
  concerns:
    description: Which parts of the plan to use.
    type: list
    elements: str
    choices: [outbound_policy, gateway, routes, access, lockdown]
    default: [outbound_policy, gateway, routes, access, lockdown]
"""
