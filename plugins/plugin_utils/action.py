# Copyright (c) meshguard.egress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the collection's action plugins share: the description from the task's variables,
argument validation from the module's documented spec, and the plan."""

from __future__ import annotations

import os
from typing import Any

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.meshguard.egress.plugins.module_utils._k8s_auth import (
    AUTH_ARG_SPEC,
    auth_options,
)
from ansible_collections.meshguard.egress.plugins.plugin_utils.description import (
    DescriptionError,
    description_from_variables,
)
from ansible_collections.meshguard.egress.plugins.plugin_utils.plan import build_plan
from ansible_collections.meshguard.egress.plugins.plugin_utils.schema import (
    CONCERNS,
    CONNECTION_VARIABLES,
    VARIABLE_PREFIX,
)

PLAN_ARG_SPEC: dict[str, Any] = {
    "description": {"type": "dict"},
    "concerns": {
        "type": "list",
        "elements": "str",
        "choices": list(CONCERNS),
        "default": list(CONCERNS),
    },
}


def validate_args(args: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    result = ArgumentSpecValidator(spec).validate(args)
    if result.error_messages:
        raise AnsibleActionFail("; ".join(result.error_messages))
    return result.validated_parameters


def description_variables(templar: Any, task_vars: dict[str, Any]) -> dict[str, Any]:
    """The ``egress_*`` variables of the host, templated."""
    names = [
        n for n in task_vars if n.startswith(VARIABLE_PREFIX) and n not in CONNECTION_VARIABLES
    ]
    return {name: templar.template(task_vars[name]) for name in names}


def description(args: dict[str, Any], templar: Any, task_vars: dict[str, Any]) -> dict[str, Any]:
    """The description: the ``description`` argument, else the host's ``egress_*`` variables."""
    if args.get("description") is not None:
        return args["description"]
    variables = description_variables(templar, task_vars)
    if not variables:
        raise AnsibleActionFail(
            "no egress description: this host has no egress_* variables. Use an inventory "
            "that sets them (the collection ships one: playbooks/inventory/example, e.g. "
            "ansible-playbook -i <collection>/playbooks/inventory/example ...), or pass "
            "'description' to the task"
        )
    try:
        return description_from_variables(variables)
    except DescriptionError as exc:
        raise AnsibleActionFail(f"invalid egress description:\n{exc}") from exc


def plan_for_task(
    args: dict[str, Any], templar: Any, task_vars: dict[str, Any], verify: bool = False
) -> dict[str, Any]:
    """The plan of the task's description, or AnsibleActionFail naming every problem."""
    spec = description(args, templar, task_vars)
    try:
        return build_plan(spec, args["concerns"], verify=verify)
    except DescriptionError as exc:
        raise AnsibleActionFail(f"invalid egress description:\n{exc}") from exc


def cluster_auth(args: dict[str, Any], templar: Any, task_vars: dict[str, Any]) -> dict[str, Any]:
    """Auth options: task arguments, then egress_kubeconfig / egress_context, then K8S_AUTH_*."""
    params = {key: args.get(key) for key in AUTH_ARG_SPEC}
    for key in ("kubeconfig", "context"):
        if params.get(key) in (None, "") and f"egress_{key}" in task_vars:
            params[key] = templar.template(task_vars[f"egress_{key}"])
    return auth_options(params, os.environ)
