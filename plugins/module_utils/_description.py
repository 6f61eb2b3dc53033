# Copyright (c) meshguard.egress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The user-facing egress description: validation, semantic checks and defaults.

``normalize(spec, concern)`` is the one place that knows the shape of the description
(see ``docs/design.md``). Every problem is reported as ``"<path>: <problem> (got <value!r>)"``;
all problems found are collected and raised together as one ``DescriptionError``.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

CONCERNS = ("outbound_policy", "routes", "access", "lockdown", "gateway")
FLAVORS = ("gloo", "istio")
PROTOCOLS = ("HTTP", "HTTPS", "TLS", "TCP")
GATEWAY_PROTOCOLS = ("HTTP", "HTTPS")
OUTBOUND_MODES = ("REGISTRY_ONLY", "ALLOW_ANY")
OUTBOUND_SCOPES = ("mesh", "namespaces")
NETWORK_PROTOCOLS = ("TCP", "UDP", "SCTP")
SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer")

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?)$")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")

TOP_LEVEL_KEYS = (
    "flavor",
    "cluster",
    "trust_domain",
    "revision",
    "services_namespace",
    "gateway",
    "services",
    "outbound_policy",
    "lockdown",
)
# Top-level keys each concern reads (and therefore validates and returns).
CONCERN_KEYS: dict[str, tuple[str, ...]] = {
    "outbound_policy": ("flavor", "outbound_policy"),
    "routes": (
        "flavor",
        "cluster",
        "revision",
        "services_namespace",
        "gateway",
        "services",
    ),
    "access": (
        "flavor",
        "cluster",
        "trust_domain",
        "services_namespace",
        "gateway",
        "services",
    ),
    "lockdown": ("flavor", "gateway", "lockdown"),
    "gateway": ("flavor", "revision", "gateway"),
}

DEFAULT_SERVICE_PORTS: tuple[dict[str, Any], ...] = (
    {"name": "status-port", "port": 15021, "protocol": "TCP", "targetPort": 15021},
    {"name": "http2", "port": 80, "protocol": "TCP", "targetPort": 80},
    {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 443},
)
GATEWAY_KEYS = (
    "namespace",
    "name",
    "selector",
    "listener_port",
    "virtual_gateway_name",
    "istio_gateway_name",
    "revision",
    "image_hub",
    "image_tag",
    "replicas",
    "resources",
    "service_type",
    "service_ports",
    "node_selector",
    "tolerations",
    "extra_values",
)
SERVICE_KEYS = ("host", "name", "access_policy_name", "ports", "clients")
PORT_KEYS = (
    "number",
    "protocol",
    "name",
    "client_port",
    "tls_origination",
    "sni",
    "ca_certificates",
    "via_gateway",
)
CLIENT_KEYS = ("namespace", "service_account", "cluster", "labels")
OUTBOUND_KEYS = ("mode", "scope", "root_namespace", "namespaces")
LOCKDOWN_KEYS = ("namespaces", "dns", "istiod", "allow")
PEER_KEYS = ("namespace", "pod_selector")
ALLOW_KEYS = ("namespace", "pod_selector", "ports")
ALLOW_PORT_KEYS = ("port", "protocol")
SERVICE_PORT_KEYS = ("name", "port", "protocol", "targetPort", "nodePort")

_MISSING = object()


class DescriptionError(ValueError):
    """An invalid egress description; ``field`` is the path of the (first) bad value."""

    def __init__(self, message: str, field: str = "", value: Any = None, errors: Any = None):
        super().__init__(message)
        self.field = field
        self.value = value
        self.errors: list[tuple[str, str, Any]] = list(errors or [(field, message, value)])


class _Problems:
    """Collects ``(path, problem, value)`` triples and raises them as one error."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str, Any]] = []

    def add(self, path: str, problem: str, value: Any) -> None:
        self.items.append((path, problem, value))

    def raise_if_any(self) -> None:
        if not self.items:
            return
        lines = [format_problem(path, problem, value) for path, problem, value in self.items]
        first_path, _problem, first_value = self.items[0]
        raise DescriptionError("\n".join(lines), first_path, first_value, self.items)


def format_problem(path: str, problem: str, value: Any) -> str:
    """The one error-text format: ``<path>: <problem> (got <value!r>)``."""
    return f"{path}: {problem} (got {value!r})"


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


# --------------------------------------------------------------------------- primitives


def _mapping(p: _Problems, path: str, value: Any, allowed: tuple[str, ...]) -> dict[str, Any]:
    """A dict whose keys are all in ``allowed``; None means empty. Returns {} when invalid."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        p.add(path, "must be a mapping", value)
        return {}
    for key in sorted(value, key=str):
        if key not in allowed:
            p.add(
                _join(path, str(key)),
                f"unknown key (allowed: {', '.join(allowed)})",
                value[key],
            )
    return value


def _list(p: _Problems, path: str, value: Any) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        p.add(path, "must be a list", value)
        return []
    return value


def _string(p: _Problems, path: str, value: Any, default: Any = _MISSING) -> Any:
    if value is None and default is not _MISSING:
        return default
    if value is None:
        p.add(path, "is required", value)
        return None
    if not isinstance(value, str) or not value:
        p.add(path, "must be a non-empty string", value)
        return None
    return value


def _integer(p: _Problems, path: str, value: Any, low: int, high: int, default: Any) -> Any:
    if value is None:
        if default is _MISSING:
            p.add(path, f"is required (an integer from {low} to {high})", value)
        return None if default is _MISSING else default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        p.add(path, f"must be an integer from {low} to {high}", value)
        return None
    return value


def _port_number(p: _Problems, path: str, value: Any, default: Any = _MISSING) -> Any:
    return _integer(p, path, value, 1, 65535, default)


def _boolean(p: _Problems, path: str, value: Any, default: bool) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        p.add(path, "must be a boolean", value)
        return default
    return value


def _choice(p: _Problems, path: str, value: Any, choices: tuple[str, ...], default: Any) -> Any:
    if value is None and default is not _MISSING:
        return default
    if value not in choices:
        p.add(path, f"must be one of {', '.join(choices)}", value)
        return None
    return value


def _k8s_name(p: _Problems, path: str, value: Any, default: Any = _MISSING) -> Any:
    """A Kubernetes RFC 1123 label name (namespaces, Services, Helm releases)."""
    name = _string(p, path, value, default)
    if isinstance(name, str) and (len(name) > 63 or not _DNS_LABEL.match(name)):
        p.add(
            path,
            "must be an RFC 1123 label (lowercase a-z, 0-9, '-', at most 63)",
            value,
        )
        return None
    return name


def _k8s_object_name(p: _Problems, path: str, value: Any, default: Any = _MISSING) -> Any:
    """A Kubernetes RFC 1123 subdomain name (most object names)."""
    name = _string(p, path, value, default)
    if isinstance(name, str) and not _is_subdomain(name):
        p.add(
            path,
            "must be an RFC 1123 subdomain (lowercase labels joined by '.', at most 253)",
            value,
        )
        return None
    return name


def _is_subdomain(name: str) -> bool:
    labels = name.split(".")
    return len(name) <= 253 and all(len(lab) <= 63 and _DNS_LABEL.match(lab) for lab in labels)


def _label_map(p: _Problems, path: str, value: Any, default: Any = _MISSING) -> Any:
    """A Kubernetes label map (selector); keys may carry a DNS prefix ``prefix/name``."""
    if value is None and default is not _MISSING:
        return copy.deepcopy(default)
    if not isinstance(value, dict) or not value:
        p.add(path, "must be a non-empty mapping of label names to string values", value)
        return None
    valid = True
    for key in sorted(value, key=str):
        if not _is_label_key(key):
            p.add(_join(path, str(key)), "is not a valid label name", key)
            valid = False
        elif not isinstance(value[key], str) or not _is_label_value(value[key]):
            p.add(
                _join(path, key),
                "must be a label value string (at most 63)",
                value[key],
            )
            valid = False
    return dict(sorted(value.items())) if valid else None


def _optional_label_map(p: _Problems, path: str, value: Any) -> dict[str, str]:
    if value is None or value == {}:
        return {}
    return _label_map(p, path, value) or {}


def _is_label_key(key: Any) -> bool:
    if not isinstance(key, str) or not key:
        return False
    prefix, _slash, name = key.rpartition("/")
    if prefix and not _is_subdomain(prefix):
        return False
    return len(name) <= 63 and bool(_LABEL_NAME.match(name))


def _is_label_value(value: str) -> bool:
    return len(value) <= 63 and bool(_LABEL_VALUE.match(value))


# --------------------------------------------------------------------------- hosts


def host_problem(host: str) -> str | None:
    """Why ``host`` is not an FQDN or a single leading wildcard (``*.example.com``), or None."""
    if _SCHEME.match(host):
        return "must be a host name without a scheme"
    if "/" in host:
        return "must be a host name without a path"
    if ":" in host:
        return "must be a host name without a port"
    if len(host) > 253:
        return "must be at most 253 characters"
    labels = host.split(".")
    if labels[0] == "*":
        labels = labels[1:]
        if not labels:
            return "a wildcard host needs a domain after '*.'"
    if any("*" in label for label in labels):
        return "may only use '*' as its whole first label ('*.example.com')"
    if any(label == "" for label in labels):
        return "must not contain an empty label"
    if any(len(label) > 63 for label in labels):
        return "labels must be at most 63 characters"
    if not all(_DNS_LABEL.match(label) for label in labels):
        return "labels must be lowercase RFC 1123 (a-z, 0-9, '-', not starting or ending with '-')"
    return None


def is_wildcard(host: str) -> bool:
    return host.startswith("*.")


def default_object_name(host: str) -> str:
    """``*.example.com`` -> ``wildcard.example.com``; other hosts unchanged."""
    return host.replace("*", "wildcard")


# --------------------------------------------------------------------------- sections


def _normalize_gateway(p: _Problems, raw: Any, revision: Any) -> dict[str, Any]:
    g = _mapping(p, "gateway", raw, GATEWAY_KEYS)
    return {
        "namespace": _k8s_name(p, "gateway.namespace", g.get("namespace"), "istio-egress"),
        "name": _k8s_name(p, "gateway.name", g.get("name"), "istio-egressgateway"),
        "selector": _label_map(
            p, "gateway.selector", g.get("selector"), {"istio": "egressgateway"}
        ),
        "listener_port": _port_number(p, "gateway.listener_port", g.get("listener_port"), 443),
        "virtual_gateway_name": _k8s_object_name(
            p,
            "gateway.virtual_gateway_name",
            g.get("virtual_gateway_name"),
            "egress-vg",
        ),
        "istio_gateway_name": _k8s_object_name(
            p,
            "gateway.istio_gateway_name",
            g.get("istio_gateway_name"),
            "meshguard-egress",
        ),
        **_normalize_gateway_install(p, g, revision),
    }


def _normalize_gateway_install(p: _Problems, g: dict[str, Any], revision: Any) -> dict[str, Any]:
    """The Helm-install keys of ``gateway`` (see ``_manifests.gateway_values``)."""
    return {
        "revision": _optional_string(p, "gateway.revision", g.get("revision") or revision),
        "image_hub": _optional_string(p, "gateway.image_hub", g.get("image_hub")),
        "image_tag": _optional_string(p, "gateway.image_tag", g.get("image_tag")),
        "replicas": _integer(p, "gateway.replicas", g.get("replicas"), 1, 1000, 1),
        "resources": _optional_mapping(p, "gateway.resources", g.get("resources")),
        "service_type": _choice(
            p, "gateway.service_type", g.get("service_type"), SERVICE_TYPES, "ClusterIP"
        ),
        "service_ports": _normalize_service_ports(p, g.get("service_ports")),
        "node_selector": _optional_label_map(p, "gateway.node_selector", g.get("node_selector")),
        "tolerations": _normalize_tolerations(p, g.get("tolerations")),
        "extra_values": _optional_mapping(p, "gateway.extra_values", g.get("extra_values")) or {},
    }


def _optional_string(p: _Problems, path: str, value: Any) -> Any:
    """An optional string; "" means unset, as an empty inventory variable does."""
    return _string(p, path, None if value == "" else value, None)


def _optional_mapping(p: _Problems, path: str, value: Any) -> Any:
    if value is None:
        return None
    if not isinstance(value, dict):
        p.add(path, "must be a mapping", value)
        return None
    return copy.deepcopy(value)


def _normalize_service_ports(p: _Problems, raw: Any) -> list[dict[str, Any]]:
    if raw is None:
        return [dict(port) for port in DEFAULT_SERVICE_PORTS]
    ports = []
    for i, item in enumerate(_list(p, "gateway.service_ports", raw)):
        path = _join("gateway.service_ports", i)
        entry = _mapping(p, path, item, SERVICE_PORT_KEYS)
        port = {
            "name": _k8s_name(p, _join(path, "name"), entry.get("name")),
            "port": _port_number(p, _join(path, "port"), entry.get("port")),
            "protocol": _choice(
                p,
                _join(path, "protocol"),
                entry.get("protocol"),
                NETWORK_PROTOCOLS,
                "TCP",
            ),
        }
        target = _port_number(p, _join(path, "targetPort"), entry.get("targetPort"), None)
        port["targetPort"] = target if target is not None else port["port"]
        if entry.get("nodePort") is not None:
            port["nodePort"] = _integer(
                p, _join(path, "nodePort"), entry.get("nodePort"), 1, 65535, None
            )
        ports.append(port)
    _check_unique(p, "gateway.service_ports", ports, "port", "duplicate port")
    _check_unique(p, "gateway.service_ports", ports, "name", "duplicate name")
    return ports


def _normalize_tolerations(p: _Problems, raw: Any) -> list[dict[str, Any]]:
    tolerations = _list(p, "gateway.tolerations", raw)
    for i, item in enumerate(tolerations):
        if not isinstance(item, dict):
            p.add(
                _join("gateway.tolerations", i),
                "must be a mapping (a Kubernetes toleration)",
                item,
            )
    return copy.deepcopy(tolerations)


def _check_unique(
    p: _Problems, path: str, items: list[dict[str, Any]], key: str, problem: str
) -> None:
    seen: set[Any] = set()
    for i, item in enumerate(items):
        value = item.get(key)
        if value is None:
            continue
        if value in seen:
            p.add(_join(_join(path, i), key), problem, value)
        seen.add(value)


# --------------------------------------------------------------------------- services


def _normalize_services(p: _Problems, raw: Any, top: dict[str, Any]) -> list[dict[str, Any]]:
    if raw is None or raw == []:
        p.add("services", "must list at least one external service", raw)
        return []
    services = [
        _normalize_service(p, _join("services", i), item, top)
        for i, item in enumerate(_list(p, "services", raw))
    ]
    _check_unique(p, "services", services, "host", "duplicate host")
    _check_unique(p, "services", services, "name", "duplicate name")
    _check_unique(p, "services", services, "access_policy_name", "duplicate access policy name")
    return services


def _normalize_service(p: _Problems, path: str, raw: Any, top: dict[str, Any]) -> dict[str, Any]:
    s = _mapping(p, path, raw, SERVICE_KEYS)
    if raw is not None and not isinstance(raw, dict):
        return {}
    host = _string(p, _join(path, "host"), s.get("host"))
    if isinstance(host, str):
        problem = host_problem(host)
        if problem:
            p.add(_join(path, "host"), problem, host)
            host = None
    default_name = default_object_name(host) if host else None  # host error reported
    name = _k8s_object_name(p, _join(path, "name"), s.get("name"), default_name)
    access_name = _k8s_object_name(
        p,
        _join(path, "access_policy_name"),
        s.get("access_policy_name"),
        f"{name}-access" if name else None,
    )
    ports = _normalize_ports(p, _join(path, "ports"), s.get("ports"), top["flavor"])
    service = {
        "host": host,
        "name": name,
        "access_policy_name": access_name,
        "ports": ports,
        "clients": _normalize_clients(p, _join(path, "clients"), s.get("clients"), top),
    }
    _check_service(p, path, service, top["flavor"])
    return service


def _check_service(p: _Problems, path: str, service: dict[str, Any], flavor: Any) -> None:
    via = [i for i, port in enumerate(service["ports"]) if port.get("via_gateway")]
    if service["host"] and is_wildcard(service["host"]):
        for i, port in enumerate(service["ports"]):
            if port.get("via_gateway") is False:
                p.add(
                    _join(_join(_join(path, "ports"), i), "via_gateway"),
                    "a wildcard host must send every port through the gateway",
                    False,
                )
    if service["clients"] is not None and service["ports"] and not via:
        p.add(
            _join(path, "clients"),
            "access restrictions need at least one port with via_gateway: true",
            service["clients"],
        )
    if flavor == "istio" and len(via) > 1:
        p.add(
            _join(_join(path, "ports"), via[1]),
            "the istio flavor sends at most one port per service through the gateway",
            service["ports"][via[1]].get("number"),
        )


def _normalize_ports(p: _Problems, path: str, raw: Any, flavor: Any) -> list[dict[str, Any]]:
    if raw is None or raw == []:
        p.add(path, "must list at least one port", raw)
        return []
    ports = [
        _normalize_port(p, _join(path, i), item, flavor)
        for i, item in enumerate(_list(p, path, raw))
    ]
    _check_unique(p, path, ports, "client_port", "duplicate client_port within one service")
    _check_unique(p, path, ports, "number", "duplicate port number within one service")
    _check_unique(p, path, ports, "name", "duplicate port name within one service")
    numbers = {port.get("number"): i for i, port in enumerate(ports)}
    for i, port in enumerate(ports):
        other = numbers.get(port.get("client_port"))
        if other is not None and other != i and port.get("client_port") != port.get("number"):
            p.add(
                _join(_join(path, i), "client_port"),
                f"collides with {_join(path, other)}.number",
                port.get("client_port"),
            )
    return ports


def _normalize_port(p: _Problems, path: str, raw: Any, flavor: Any) -> dict[str, Any]:
    e = _mapping(p, path, raw, PORT_KEYS)
    number = _port_number(p, _join(path, "number"), e.get("number"))
    protocol = _choice(p, _join(path, "protocol"), e.get("protocol"), PROTOCOLS, _MISSING)
    https = protocol == "HTTPS"
    origination = _boolean(p, _join(path, "tls_origination"), e.get("tls_origination"), https)
    if origination and protocol is not None and not https:
        p.add(_join(path, "tls_origination"), "is only valid for HTTPS ports", True)
        origination = False
    via_default = protocol in GATEWAY_PROTOCOLS
    via = _boolean(p, _join(path, "via_gateway"), e.get("via_gateway"), via_default)
    if via and protocol in ("TLS", "TCP"):
        p.add(
            _join(path, "via_gateway"),
            f"{protocol} ports cannot go through the gateway",
            True,
        )
    if via and https and not origination:
        p.add(
            _join(path, "tls_origination"),
            "HTTPS through the gateway needs tls_origination (clients send plain HTTP "
            "to client_port); or set via_gateway: false",
            False,
        )
    client_default = 80 if https and origination else number
    port = {
        "number": number,
        "protocol": protocol,
        "name": _k8s_name(
            p, _join(path, "name"), e.get("name"), _default_port_name(protocol, number)
        ),
        "client_port": _port_number(
            p, _join(path, "client_port"), e.get("client_port"), client_default
        ),
        "tls_origination": origination,
        "sni": _origination_only(p, path, e, "sni", origination),
        "ca_certificates": _origination_only(p, path, e, "ca_certificates", origination),
        "via_gateway": via,
    }
    if port["sni"] is not None and host_problem(port["sni"]):
        p.add(_join(path, "sni"), host_problem(port["sni"]) or "", port["sni"])
    return port


def _default_port_name(protocol: Any, number: Any) -> Any:
    if protocol is None or number is None:
        return None
    return f"{protocol.lower()}-{number}"


def _origination_only(
    p: _Problems, path: str, entry: dict[str, Any], key: str, origination: bool
) -> Any:
    value = _optional_string(p, _join(path, key), entry.get(key))
    if value is not None and not origination:
        p.add(_join(path, key), "is only valid with tls_origination: true", value)
        return None
    return value


def _normalize_clients(p: _Problems, path: str, raw: Any, top: dict[str, Any]) -> Any:
    if raw is None:
        return None
    clients = [
        _normalize_client(p, _join(path, i), item, top)
        for i, item in enumerate(_list(p, path, raw))
    ]
    unique = {_client_sort_key(c): c for c in clients}
    return [unique[key] for key in sorted(unique)]


def _client_sort_key(client: dict[str, Any]) -> tuple[str, str, str, str]:
    labels = ",".join(f"{k}={v}" for k, v in sorted((client.get("labels") or {}).items()))
    return (
        str(client.get("cluster")),
        str(client.get("namespace")),
        str(client.get("service_account") or ""),
        labels,
    )


def _normalize_client(p: _Problems, path: str, raw: Any, top: dict[str, Any]) -> dict[str, Any]:
    c = _mapping(p, path, raw, CLIENT_KEYS)
    client = {
        "namespace": _k8s_name(p, _join(path, "namespace"), c.get("namespace")),
        "service_account": None,
        "cluster": _k8s_object_name(p, _join(path, "cluster"), c.get("cluster"), top["cluster"]),
        "labels": None,
    }
    if c.get("labels") is not None:
        if top["flavor"] == "istio":
            p.add(
                _join(path, "labels"),
                "label selectors are gloo only; use service_account",
                c["labels"],
            )
        else:
            client["labels"] = _label_map(p, _join(path, "labels"), c["labels"])
    account_default = None if client["labels"] else _MISSING
    if c.get("service_account") is None and account_default is _MISSING:
        needs = "service_account" if top["flavor"] == "istio" else "service_account or labels"
        p.add(
            _join(path, "service_account"),
            f"is required (a client needs {needs})",
            None,
        )
    else:
        client["service_account"] = _k8s_object_name(
            p, _join(path, "service_account"), c.get("service_account"), account_default
        )
    return client


# --------------------------------------------------------------------------- policy sections


def _normalize_outbound(p: _Problems, raw: Any) -> dict[str, Any]:
    o = _mapping(p, "outbound_policy", raw, OUTBOUND_KEYS)
    scope = _choice(p, "outbound_policy.scope", o.get("scope"), OUTBOUND_SCOPES, "mesh")
    policy = {
        "mode": _choice(p, "outbound_policy.mode", o.get("mode"), OUTBOUND_MODES, "REGISTRY_ONLY"),
        "scope": scope,
        "root_namespace": _k8s_name(
            p, "outbound_policy.root_namespace", o.get("root_namespace"), "istio-system"
        ),
        "namespaces": _namespace_list(p, "outbound_policy.namespaces", o.get("namespaces")),
    }
    if scope == "namespaces" and not policy["namespaces"]:
        p.add(
            "outbound_policy.namespaces",
            "must list namespaces when scope is namespaces",
            [],
        )
    if scope == "mesh" and policy["namespaces"]:
        p.add(
            "outbound_policy.namespaces",
            "is only used with scope: namespaces",
            o.get("namespaces"),
        )
    return policy


def _namespace_list(p: _Problems, path: str, raw: Any, default: Any = None) -> list[str]:
    if raw is None and default is not None:
        return list(default)
    names = [_k8s_name(p, _join(path, i), item) for i, item in enumerate(_list(p, path, raw))]
    for i, name in enumerate(names):
        if name is not None and name in names[:i]:
            p.add(_join(path, i), "duplicate namespace", name)
    return sorted({name for name in names if name is not None})


def _normalize_lockdown(p: _Problems, raw: Any, gateway: dict[str, Any]) -> dict[str, Any]:
    d = _mapping(p, "lockdown", raw, LOCKDOWN_KEYS)
    namespaces = _namespace_list(p, "lockdown.namespaces", d.get("namespaces"), ["bookinfo"])
    if gateway.get("namespace") in namespaces:
        p.add(
            "lockdown.namespaces",
            "must not include the gateway namespace (it gets its own policies)",
            gateway["namespace"],
        )
    return {
        "namespaces": namespaces,
        "dns": _normalize_peer(
            p, "lockdown.dns", d.get("dns"), "kube-system", {"k8s-app": "kube-dns"}
        ),
        "istiod": _normalize_peer(
            p, "lockdown.istiod", d.get("istiod"), "istio-system", {"app": "istiod"}
        ),
        "allow": [
            _normalize_allow(p, _join("lockdown.allow", i), item)
            for i, item in enumerate(_list(p, "lockdown.allow", d.get("allow")))
        ],
    }


def _normalize_peer(
    p: _Problems, path: str, raw: Any, namespace: str, selector: dict[str, str]
) -> dict[str, Any]:
    e = _mapping(p, path, raw, PEER_KEYS)
    return {
        "namespace": _k8s_name(p, _join(path, "namespace"), e.get("namespace"), namespace),
        "pod_selector": _label_map(p, _join(path, "pod_selector"), e.get("pod_selector"), selector),
    }


def _normalize_allow(p: _Problems, path: str, raw: Any) -> dict[str, Any]:
    e = _mapping(p, path, raw, ALLOW_KEYS)
    ports = []
    for i, item in enumerate(_list(p, _join(path, "ports"), e.get("ports"))):
        port_path = _join(_join(path, "ports"), i)
        entry = _mapping(p, port_path, item, ALLOW_PORT_KEYS)
        ports.append(
            {
                "port": _port_number(p, _join(port_path, "port"), entry.get("port")),
                "protocol": _choice(
                    p,
                    _join(port_path, "protocol"),
                    entry.get("protocol"),
                    NETWORK_PROTOCOLS,
                    "TCP",
                ),
            }
        )
    return {
        "namespace": _k8s_name(p, _join(path, "namespace"), e.get("namespace")),
        "pod_selector": _optional_label_map(p, _join(path, "pod_selector"), e.get("pod_selector")),
        "ports": ports,
    }


# --------------------------------------------------------------------------- entry point


def _normalize_top(p: _Problems, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "flavor": _choice(p, "flavor", spec.get("flavor"), FLAVORS, "gloo"),
        "cluster": _k8s_object_name(p, "cluster", spec.get("cluster"), "cluster-1"),
        "trust_domain": _trust_domain(p, spec.get("trust_domain")),
        "revision": _revision(p, spec.get("revision")),
        "services_namespace": _k8s_name(
            p, "services_namespace", spec.get("services_namespace"), "global"
        ),
    }


def _trust_domain(p: _Problems, value: Any) -> Any:
    domain = _string(p, "trust_domain", value, "cluster.local")
    if isinstance(domain, str) and not re.match(r"^[A-Za-z0-9._-]+$", domain):
        p.add(
            "trust_domain",
            "must be a domain name (letters, digits, '.', '-', '_')",
            value,
        )
        return None
    return domain


def _revision(p: _Problems, value: Any) -> Any:
    if value in (None, ""):  # no revision: the mesh's default (unrevisioned) control plane
        return None
    revision = _string(p, "revision", value, None)
    if isinstance(revision, str) and (revision != "default" and not _is_label_value(revision)):
        p.add("revision", "must be a label value (the istio.io/rev label)", value)
        return None
    return revision


_SECTIONS: dict[str, Callable[[_Problems, dict[str, Any], dict[str, Any]], Any]] = {
    "gateway": lambda p, spec, top: _normalize_gateway(p, spec.get("gateway"), top["revision"]),
    "services": lambda p, spec, top: _normalize_services(p, spec.get("services"), top),
    "outbound_policy": lambda p, spec, top: _normalize_outbound(p, spec.get("outbound_policy")),
}


def normalize(spec: Any, concern: str) -> dict[str, Any]:
    """Validate the parts of ``spec`` that ``concern`` reads; return them with defaults filled.

    Raises ``DescriptionError`` listing every problem found, one per line.
    """
    if concern not in CONCERNS:
        raise DescriptionError(
            format_problem("concern", f"must be one of {', '.join(CONCERNS)}", concern),
            "concern",
            concern,
        )
    if spec is not None and not isinstance(spec, dict):
        raise DescriptionError(format_problem("spec", "must be a mapping", spec), "spec", spec)
    p = _Problems()
    spec = _mapping(p, "", spec, TOP_LEVEL_KEYS)
    top = _normalize_top(p, spec)
    result: dict[str, Any] = {}
    for key in CONCERN_KEYS[concern]:
        if key in top:
            result[key] = top[key]
        elif key == "lockdown":
            gateway = result.get("gateway") or {}
            result[key] = _normalize_lockdown(p, spec.get("lockdown"), gateway)
        else:
            result[key] = _SECTIONS[key](p, spec, top)
    p.raise_if_any()
    return result


def normalize_gateway(gateway: Any, revision: Any = None) -> dict[str, Any]:
    """Validate a ``gateway`` section alone (for the Helm values); paths start at ``gateway``."""
    p = _Problems()
    result = _normalize_gateway(p, gateway, revision)
    p.raise_if_any()
    return result
