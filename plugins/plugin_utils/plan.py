# Copyright (c) meshguard.egress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The plan: everything one description means, computed once from the normalised description.

``build_plan(spec, concerns)`` returns plain data (JSON-serialisable, deterministic):

- ``namespaces``: namespaces the plan needs, created (and labelled as owned) when absent;
- ``objects``: every Kubernetes/Istio/Gloo object, in apply order, each labelled with
  ``app.kubernetes.io/managed-by``, ``meshguard.io/component`` and the owner
  ``meshguard.io/description=<name>``;
- ``release``: the egress gateway's Helm release (chart, version, values);
- ``nodes``: dedicated gateway nodes to label / taint;
- ``label_namespaces``: namespaces that need ``kubernetes.io/metadata.name``;
- ``istiod``: the istiod release whose values carry the outbound mode (method istiod_helm);
- ``probes`` and ``expectations`` (with ``verify``): each source -> URL -> expected outcome,
  and why.
"""

from __future__ import annotations

from typing import Any

from ansible_collections.meshguard.egress.plugins.plugin_utils.description import (
    is_wildcard,
    normalize,
)
from ansible_collections.meshguard.egress.plugins.plugin_utils.render import (
    COMPONENT_LABEL,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    NAMESPACE_NAME_LABEL,
    OWNER_LABEL,
    gateway_values,
    render,
)
from ansible_collections.meshguard.egress.plugins.plugin_utils.schema import CONCERNS

# Every kind the collection writes (teardown and pruning list these by owner label).
MANAGED_KINDS: tuple[tuple[str, str], ...] = (
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("security.istio.io/v1", "AuthorizationPolicy"),
    ("security.policy.gloo.solo.io/v2", "AccessPolicy"),
    ("networking.istio.io/v1", "VirtualService"),
    ("networking.istio.io/v1", "DestinationRule"),
    ("networking.istio.io/v1", "ServiceEntry"),
    ("networking.istio.io/v1", "Gateway"),
    ("networking.gloo.solo.io/v2", "ExternalService"),
    ("networking.gloo.solo.io/v2", "ExternalEndpoint"),
    ("networking.gloo.solo.io/v2", "VirtualGateway"),
    ("telemetry.istio.io/v1", "Telemetry"),
    ("networking.istio.io/v1", "Sidecar"),
)


def owner_labels(name: str, component: str) -> dict[str, str]:
    return {MANAGED_BY_LABEL: MANAGED_BY, COMPONENT_LABEL: component, OWNER_LABEL: name}


def _owned(obj: dict[str, Any], name: str) -> dict[str, Any]:
    obj["metadata"]["labels"][OWNER_LABEL] = name
    return obj


def _namespaces(spec: dict[str, Any], concerns: list[str]) -> list[dict[str, Any]]:
    wanted: dict[str, dict[str, Any]] = {}
    if "gateway" in concerns:
        gateway = spec["gateway"]
        labels = owner_labels(spec["name"], "gateway")
        if gateway["revision"]:
            labels["istio.io/rev"] = gateway["revision"]
        wanted[gateway["namespace"]] = labels
    if "routes" in concerns:
        wanted.setdefault(spec["services_namespace"], owner_labels(spec["name"], "routes"))
    return [
        {"name": name, "labels": {**labels, NAMESPACE_NAME_LABEL: name}}
        for name, labels in sorted(wanted.items())
    ]


def _release(spec: dict[str, Any]) -> dict[str, Any]:
    g = spec["gateway"]
    return {
        "name": g["name"],
        "namespace": g["namespace"],
        "chart_ref": g["chart_ref"],
        "chart_repo_url": g["chart_repo_url"],
        "chart_version": g["chart_version"],
        "values": gateway_values(g),
        "values_schema": g["values_schema"],
        "atomic": g["atomic"],
        "wait_timeout": g["wait_timeout"],
    }


def _label_namespaces(spec: dict[str, Any]) -> list[str]:
    lockdown = spec["lockdown"]
    if not lockdown["label_namespaces"]:
        return []
    names = set(lockdown["namespaces"])
    names |= {spec["gateway"]["namespace"], lockdown["dns"]["namespace"]}
    names.add(lockdown["istiod"]["namespace"])
    names |= {entry["namespace"] for entry in lockdown["allow"] if entry["namespace"]}
    return sorted(names)


# --------------------------------------------------------------------------- expectations


NOT_ENFORCED = (
    "NetworkPolicies are not enforced on this cluster (verify.network_policies_enforced: "
    "false), so a bypass outcome proves nothing"
)
BYPASS_POD = "(bypass pod)"


def _probe_source(source: dict[str, Any]) -> dict[str, Any]:
    if source["controller"]:
        return {}  # egress_probe: no pod, the controller host itself
    if source.get("bypass_image"):  # egress_probe creates (and removes) the pod itself
        return {"namespace": source["namespace"], "bypass_image": source["bypass_image"]}
    keys = ("namespace", "pod", "label_selector", "container", "debug_image")
    found = {key: source[key] for key in keys if source.get(key)}
    # egress_probe checks the pod's spec.serviceAccountName against the row's identity
    return {**found, "service_account": source["service_account"]}


def _identity(source: dict[str, Any]) -> str:
    if source.get("bypass_image"):
        return f"{source['namespace']}/{BYPASS_POD}"
    return f"{source['namespace']}/{source['service_account']}"


def _bypass_source(namespace: str, image: str) -> dict[str, Any]:
    """A source for a temporary pod without a sidecar that egress_probe creates."""
    return {
        "namespace": namespace,
        "service_account": None,
        "bypass_image": image,
        "controller": False,
        "headers": {},
    }


def _listed(service: dict[str, Any], source: dict[str, Any]) -> bool:
    return any(
        client["namespace"] == source["namespace"]
        and client["service_account"] == source["service_account"]
        for client in service["clients"]
    )


def _url(scheme: str, host: str, port: int, path: str) -> str:
    default_port = 80 if scheme == "http" else 443
    return f"{scheme}://{host}{'' if port == default_port else f':{port}'}{path}"


def _gateway_expectation(index: int, service: dict[str, Any], source: dict[str, Any]) -> tuple:
    where = f"services[{index}]"
    if service["clients"] is None:
        return "allowed", f"{where} ({service['host']}) has no clients list: everyone may use it"
    if _listed(service, source):
        return "allowed", f"{_identity(source)} is listed in {where}.clients"
    return "denied", f"{where}.clients does not list {_identity(source)}: the gateway denies it"


def _direct_expectation(spec: dict[str, Any], source: dict[str, Any]) -> tuple:
    if source["namespace"] in spec["lockdown"]["namespaces"]:
        return (
            "blocked",
            f"the port does not go through the gateway and {source['namespace']} is locked "
            "down: its NetworkPolicy allows only DNS, istiod and the gateway",
        )
    return (
        "allowed",
        "the port does not go through the gateway and the namespace is not locked down",
    )


def _outbound_applies(spec: dict[str, Any], namespace: str) -> bool:
    policy = spec["outbound_policy"]
    if policy["mode"] != "REGISTRY_ONLY":
        return False
    return policy["scope"] == "mesh" or namespace in policy["namespaces"]


def expectations(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Every probe the description implies, with the outcome it expects and why."""
    verify = spec["verify"]
    path = verify["path"]
    rows: list[dict[str, Any]] = []

    def add(
        source: dict[str, Any],
        url: str,
        expect: str,
        reason: str,
        target: str,
        not_proven: str | None = None,
    ) -> None:
        row = {
            "name": f"{_identity(source)} -> {target}",
            "url": url,
            "expect": expect,
            "reason": reason,
            "service_account": source["service_account"],
            "source": _probe_source(source),
            "headers": dict(source["headers"]),
            "timeout": verify["probe_timeout"],
            "connect_timeout": verify["connect_timeout"],
            "connect_to": list(verify["connect_to"]),
        }
        if not_proven:
            row["not_proven"] = not_proven
        rows.append(row)

    for index, service in enumerate(spec["services"]):
        if is_wildcard(service["host"]):
            continue  # no concrete host to request
        for port in service["ports"]:
            if port["protocol"] == "TCP":
                continue  # curl cannot tell a raw TCP outcome
            for source in verify["sources"]:
                if port["via_gateway"]:
                    number = port["client_port"]  # the gateway's route matches this port
                    url = _url("http", service["host"], number, path)
                    expect, reason = _gateway_expectation(index, service, source)
                else:
                    number = port["number"]  # no gateway in between: the host's own port
                    scheme = "http" if port["protocol"] == "HTTP" else "https"
                    url = _url(scheme, service["host"], number, path)
                    expect, reason = _direct_expectation(spec, source)
                add(source, url, expect, reason, f"{service['host']}:{number}")
    seen: set[str] = set()
    for source in verify["sources"]:
        if source["namespace"] in seen or not _outbound_applies(spec, source["namespace"]):
            continue
        seen.add(source["namespace"])
        host = verify["unregistered_host"]
        reason = "REGISTRY_ONLY: the sidecar sends a host no service registers to a black hole"
        add(source, _url("http", host, 80, path), "blocked", reason, f"{host}:80 (unregistered)")
    target = next((s["host"] for s in spec["services"] if not is_wildcard(s["host"])), None)
    if not target:
        return rows  # no concrete host to request directly
    bypass = [
        _bypass_source(namespace, verify["bypass_image"])
        for namespace in (spec["lockdown"]["namespaces"] if verify["bypass_image"] else [])
    ]
    not_proven = None if verify["network_policies_enforced"] else NOT_ENFORCED
    for source in bypass + verify["bypass_sources"]:
        if source["namespace"] in spec["lockdown"]["namespaces"]:
            reason = (
                f"{source['namespace']} is locked down: a pod without a sidecar may reach only "
                "DNS, istiod and the gateway"
            )
            add(
                source,
                _url("https", target, 443, "/"),
                "unreachable",
                reason,
                f"{target}:443 (bypass)",
                not_proven,
            )
    return rows


def probes(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The expectations as ``meshguard.egress.egress_probe`` probes."""
    keys = (
        "name",
        "url",
        "expect",
        "source",
        "headers",
        "timeout",
        "connect_timeout",
        "connect_to",
    )
    return [{key: row[key] for key in keys + ("not_proven",) if key in row} for row in rows]


def access_log_expectations(
    spec: dict[str, Any], rows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The requests the gateway access log must show: every allowed request through it."""
    gateway_hosts = {
        service["host"]
        for service in spec["services"]
        if any(port["via_gateway"] for port in service["ports"])
    }
    wanted = []
    for row in rows:
        host = row["url"].split("://", 1)[1].split("/", 1)[0].split(":", 1)[0]
        if row["expect"] == "allowed" and host in gateway_hosts:
            item = {"authority": host, "path": spec["verify"]["path"]}
            if item not in wanted:
                wanted.append(item)
    return wanted


# --------------------------------------------------------------------------- the plan


def build_plan(raw: Any, concerns: Any = CONCERNS, verify: bool = False) -> dict[str, Any]:
    """Validate ``raw`` and compute the plan for ``concerns`` (and, with ``verify``, the
    verification expectations). Raises ``DescriptionError`` with every problem at once."""
    concerns = [concerns] if isinstance(concerns, str) else [c for c in CONCERNS if c in concerns]
    spec = normalize(raw, concerns, verify=verify)
    objects = [_owned(obj, spec["name"]) for concern in concerns for obj in render(spec, concern)]
    plan: dict[str, Any] = {
        "name": spec["name"],
        "flavor": spec["flavor"],
        "adopt": spec["adopt"],
        "concerns": concerns,
        "namespaces": _namespaces(spec, concerns),
        "objects": objects,
        "release": _release(spec) if "gateway" in concerns else None,
        "nodes": None,
        "label_namespaces": _label_namespaces(spec) if "lockdown" in concerns else [],
        "istiod": None,
        "description": spec,
    }
    if "gateway" in concerns:
        g = spec["gateway"]
        plan["nodes"] = {
            "names": g["dedicated_nodes"],
            "label": g["node_label"],
            "taint": g["taint_nodes"],
        }
    if "outbound_policy" in concerns and spec["outbound_policy"]["method"] == "istiod_helm":
        plan["istiod"] = {
            **spec["outbound_policy"]["istiod"],
            "mode": spec["outbound_policy"]["mode"],
        }
    if verify:
        rows = expectations(spec)
        plan["expectations"] = rows
        plan["probes"] = probes(rows)
        plan["access_log"] = {
            "check": spec["verify"]["access_log"],
            "namespace": spec["gateway"]["namespace"],
            "label_selector": ",".join(f"{k}={v}" for k, v in spec["gateway"]["selector"].items()),
            "container": spec["verify"]["access_log_container"],
            "path": spec["verify"]["access_log_path"],
            "expect_requests": access_log_expectations(spec, rows),
        }
    return plan
