# Copyright (c) meshguard.egress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Action plugin of meshguard.egress.egress_apply (documentation in plugins/modules)."""

from __future__ import annotations

import shutil
from typing import Any

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.meshguard.egress.plugins.module_utils._k8s_auth import (
    AUTH_ARG_SPEC,
    api_client,
)
from ansible_collections.meshguard.egress.plugins.plugin_utils.action import (
    PLAN_ARG_SPEC,
    cluster_auth,
    plan_for_task,
    validate_args,
)
from ansible_collections.meshguard.egress.plugins.plugin_utils.converge import (
    Converger,
    PreflightError,
    WriteError,
)
from ansible_collections.meshguard.egress.plugins.plugin_utils.helm import Helm, HelmError
from ansible_collections.meshguard.egress.plugins.plugin_utils.kube import Kube, KubeError

ARG_SPEC = {
    **PLAN_ARG_SPEC,
    **AUTH_ARG_SPEC,
    "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
    "helm_binary": {"type": "str", "default": "helm"},
}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True

    def run(self, tmp: Any = None, task_vars: Any = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        args = validate_args(self._task.args, ARG_SPEC)
        plan = plan_for_task(args, self._templar, task_vars)
        try:
            import kubernetes  # noqa: F401
        except ImportError as exc:
            raise AnsibleActionFail(
                "meshguard.egress.egress_apply needs the Python library 'kubernetes' on the "
                "controller (pip install 'kubernetes>=24')"
            ) from exc
        auth = cluster_auth(args, self._templar, task_vars)
        try:
            kube = Kube(api_client(auth))
        except Exception as exc:  # bad kubeconfig / context
            raise AnsibleActionFail(f"cannot load the cluster credentials: {exc}") from exc
        helm = None
        if plan["release"] or plan["istiod"]:
            binary = shutil.which(args["helm_binary"]) or args["helm_binary"]
            helm = Helm(binary, auth)
        converger = Converger(kube, helm, plan, self._task.check_mode, self._task.diff)
        try:
            outcome = converger.present() if args["state"] == "present" else converger.absent()
        except PreflightError as exc:
            result.update(
                failed=True,
                changed=False,
                msg="nothing was written: the plan does not pass the cluster's checks:\n"
                + str(exc),
                problems=exc.problems,
            )
            return result
        except WriteError as exc:
            result.update(
                failed=True,
                changed=bool(exc.done),
                msg=f"write failed after the preflight passed: {exc}; a re-run converges",
                written=exc.done,
            )
            return result
        except (KubeError, HelmError) as exc:
            result.update(failed=True, changed=False, msg=str(exc))
            return result
        warnings = outcome.pop("warnings", None) or []
        result.update(outcome)
        if warnings:
            result.setdefault("warnings", []).extend(warnings)
        return result
