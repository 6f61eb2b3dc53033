# Copyright (c) meshguard.egress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A small Kubernetes REST layer for the controller: server-side apply, dry runs, listing by
owner label. No discovery round trips: the collection knows the kinds it writes."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

FIELD_MANAGER = "meshguard.egress"

# plural and scope of every kind the collection reads or writes
_PLURALS = {
    "Namespace": ("namespaces", False),
    "Node": ("nodes", False),
    "Secret": ("secrets", True),
    "ConfigMap": ("configmaps", True),
    "NetworkPolicy": ("networkpolicies", True),
    "AuthorizationPolicy": ("authorizationpolicies", True),
    "AccessPolicy": ("accesspolicies", True),
    "VirtualService": ("virtualservices", True),
    "DestinationRule": ("destinationrules", True),
    "ServiceEntry": ("serviceentries", True),
    "Gateway": ("gateways", True),
    "ExternalService": ("externalservices", True),
    "VirtualGateway": ("virtualgateways", True),
    "Telemetry": ("telemetries", True),
    "Sidecar": ("sidecars", True),
    "ServiceAccount": ("serviceaccounts", True),
    "Service": ("services", True),
    "Deployment": ("deployments", True),
    "DaemonSet": ("daemonsets", True),
    "Role": ("roles", True),
    "RoleBinding": ("rolebindings", True),
    "PodDisruptionBudget": ("poddisruptionbudgets", True),
    "HorizontalPodAutoscaler": ("horizontalpodautoscalers", True),
    "Pod": ("pods", True),
}


class KubeError(Exception):
    """An API error: ``status`` (HTTP code, 0 for no answer) and the server's message."""

    def __init__(self, status: int, message: str, reason: str = ""):
        super().__init__(message)
        self.status = status
        self.reason = reason


def plural(kind: str, api_version: str) -> tuple[str, bool]:
    if kind in _PLURALS:
        return _PLURALS[kind]
    lower = kind.lower()
    return (lower[:-1] + "ies" if lower.endswith("y") else lower + "s"), True


def _path(api_version: str, kind: str, namespace: str | None, name: str | None = None) -> str:
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    resource, namespaced = plural(kind, api_version)
    if namespaced and namespace:
        base += f"/namespaces/{quote(namespace)}"
    base += f"/{resource}"
    return base + (f"/{quote(name)}" if name else "")


def ref(obj: dict[str, Any]) -> str:
    """``Kind/namespace/name`` (or ``Kind/name``) of an object, for messages."""
    meta = obj["metadata"]
    where = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{obj['kind']}/{where}{meta['name']}"


class Kube:
    """REST calls through a ``kubernetes.client.ApiClient`` (its auth and TLS settings)."""

    def __init__(self, api_client: Any, workers: int = 8):
        self.api = api_client
        self.workers = workers

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
    ) -> Any:
        from kubernetes.client.exceptions import ApiException

        headers = {"Accept": "application/json", "Content-Type": content_type}
        try:
            if hasattr(self.api, "param_serialize"):  # kubernetes >= 35 (new generator)
                method_, url, headers_, body_, _post = self.api.param_serialize(
                    method,
                    path,
                    query_params=query or [],
                    header_params=headers,
                    body=body,
                    auth_settings=["BearerToken"],
                )
                response = self.api.call_api(method_, url, header_params=headers_, body=body_)
                response.read()
            else:
                response = self.api.call_api(
                    path,
                    method,
                    query_params=query or [],
                    header_params=headers,
                    body=body,
                    auth_settings=["BearerToken"],
                    _preload_content=False,
                    _return_http_data_only=True,
                )
        except ApiException as exc:
            raise KubeError(exc.status or 0, _message(exc.body, exc.reason), exc.reason) from exc
        except Exception as exc:  # connection refused, TLS, timeouts
            raise KubeError(0, f"cannot reach the API server: {exc}") from exc
        status = getattr(response, "status", 200)
        data = response.data
        if status >= 400:
            raise KubeError(status, _message(data, getattr(response, "reason", "")))
        return json.loads(data) if data else None

    def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> Any:
        """The object, or None when it does not exist."""
        try:
            return self.request("GET", _path(api_version, kind, namespace, name))
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    def list(
        self, api_version: str, kind: str, namespace: str | None = None, selector: str = ""
    ) -> list[dict[str, Any]]:
        """Items of a kind (cluster-wide without ``namespace``); [] when the kind is not served."""
        query = [("labelSelector", selector)] if selector else []
        try:
            result = self.request("GET", _path(api_version, kind, namespace), query=query)
        except KubeError as exc:
            if exc.status == 404:
                return []
            raise
        items = result.get("items") or []
        for item in items:
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", kind)
        return items

    def apply(self, obj: dict[str, Any], dry_run: bool = False) -> dict[str, Any]:
        """Server-side apply (forced: the collection owns the fields it writes)."""
        meta = obj["metadata"]
        query = [("fieldManager", FIELD_MANAGER), ("force", "true")]
        if dry_run:
            query.append(("dryRun", "All"))
        path = _path(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"])
        return self.request(
            "PATCH", path, body=obj, query=query, content_type="application/apply-patch+yaml"
        )

    def patch(
        self, api_version: str, kind: str, namespace: str | None, name: str, body: Any
    ) -> Any:
        path = _path(api_version, kind, namespace, name)
        return self.request("PATCH", path, body=body, content_type="application/merge-patch+json")

    def create(self, obj: dict[str, Any]) -> Any:
        meta = obj["metadata"]
        return self.request(
            "POST", _path(obj["apiVersion"], obj["kind"], meta.get("namespace")), body=obj
        )

    def delete(self, obj: dict[str, Any]) -> bool:
        """Delete; False when it was already gone."""
        meta = obj["metadata"]
        path = _path(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"])
        try:
            self.request("DELETE", path, body={"propagationPolicy": "Background"})
        except KubeError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def parallel(self, function: Any, items: list[Any]) -> list[Any]:
        """``function(item)`` for each item, on a few threads; results in order. An exception
        is returned in place of its result, so that every error can be reported."""

        def call(item: Any) -> Any:
            try:
                return function(item)
            except KubeError as exc:
                return exc

        if len(items) <= 1:
            return [call(item) for item in items]
        with ThreadPoolExecutor(max_workers=min(self.workers, len(items))) as pool:
            return list(pool.map(call, items))


def _message(body: Any, reason: Any) -> str:
    try:
        status = json.loads(body)
        return str(status.get("message") or reason)
    except (TypeError, ValueError):
        return str(body or reason)


# --------------------------------------------------------------------------- comparison

_NOISE = ("managedFields", "resourceVersion", "uid", "creationTimestamp", "generation", "selfLink")


def clean(obj: dict[str, Any] | None) -> dict[str, Any] | None:
    """An object without server bookkeeping (for diffs)."""
    if obj is None:
        return None
    out = {key: value for key, value in obj.items() if key != "status"}
    meta = {k: v for k, v in obj.get("metadata", {}).items() if k not in _NOISE}
    annotations = {
        k: v
        for k, v in (meta.get("annotations") or {}).items()
        if k != "kubectl.kubernetes.io/last-applied-configuration"
    }
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    out["metadata"] = meta
    return out


def contains(live: Any, desired: Any) -> bool:
    """Whether ``live`` holds every value of ``desired`` (server defaults may add more keys;
    lists must have the same length, element by element)."""
    if isinstance(desired, dict):
        return isinstance(live, dict) and all(
            key in live and contains(live[key], value) for key, value in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(live, list)
            and len(live) == len(desired)
            and all(contains(a, b) for a, b in zip(live, desired))
        )
    return live == desired
