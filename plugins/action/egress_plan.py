# Copyright (c) meshguard.egress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Action plugin of meshguard.egress.egress_plan (documentation in plugins/modules)."""

from __future__ import annotations

from typing import Any

from ansible.plugins.action import ActionBase

from ansible_collections.meshguard.egress.plugins.plugin_utils.action import (
    PLAN_ARG_SPEC,
    plan_for_task,
    validate_args,
)

ARG_SPEC = {**PLAN_ARG_SPEC, "verify": {"type": "bool", "default": True}}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True

    def run(self, tmp: Any = None, task_vars: Any = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        args = validate_args(self._task.args, ARG_SPEC)
        plan = plan_for_task(args, self._templar, task_vars, verify=args["verify"])
        result.update(changed=False, plan=plan)
        return result
