# Copyright (c) meshguard.egress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filters the meshguard.egress roles call to turn the egress description into objects.

Documentation lives beside this file: egress_resources.yml, egress_gateway_values.yml,
egress_check_values.yml.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.meshguard.egress.plugins.module_utils._description import (
    DescriptionError,
)
from ansible_collections.meshguard.egress.plugins.module_utils._manifests import (
    check_values,
    gateway_values,
    render,
)


def _as_filter_error(function: Callable[..., Any]) -> Callable[..., Any]:
    """Report a DescriptionError as an AnsibleFilterError with the same message."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except DescriptionError as exc:
            raise AnsibleFilterError(f"invalid egress description:\n{exc}") from exc

    wrapper.__name__ = function.__name__
    wrapper.__doc__ = function.__doc__
    return wrapper


@_as_filter_error
def egress_resources(spec: Any, concern: str) -> list[dict[str, Any]]:
    """The Kubernetes/Istio/Gloo objects ``concern`` writes for the description ``spec``."""
    return render(spec, concern)


@_as_filter_error
def egress_gateway_values(gateway: Any) -> dict[str, Any]:
    """Helm values for Istio's gateway chart from the description's ``gateway`` section."""
    return gateway_values(gateway)


@_as_filter_error
def egress_check_values(values: Any, schema_path: str) -> Any:
    """``values`` unchanged when the chart's JSON schema at ``schema_path`` accepts them."""
    check_values(values, schema_path)
    return values


class FilterModule:
    """meshguard.egress filters."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "egress_resources": egress_resources,
            "egress_gateway_values": egress_gateway_values,
            "egress_check_values": egress_check_values,
        }
