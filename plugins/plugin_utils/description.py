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
import ipaddress
import re
from collections.abc import Callable
from typing import Any

from ansible_collections.meshguard.egress.plugins.plugin_utils.schema import (
    CONCERN_KEYS,
    CONCERNS,
    CONNECTION_VARIABLES,
    NETWORK_PORT_FIELDS,
    OVERRIDE_PREFIX,
    VARIABLE_PREFIX,
    default,
    keys,
    lookup,
)

FLAVORS = lookup("flavor").choices
PROTOCOLS = lookup("services.ports.protocol").choices
GATEWAY_PROTOCOLS = ("HTTP", "HTTPS")
OUTBOUND_MODES = lookup("outbound_policy.mode").choices
OUTBOUND_SCOPES = lookup("outbound_policy.scope").choices
OUTBOUND_METHODS = lookup("outbound_policy.method").choices
NETWORK_PROTOCOLS = lookup("gateway.service_ports.protocol").choices
SERVICE_TYPES = lookup("gateway.service_type").choices

# Namespaces that must never be locked down: the cluster's own, and the mesh's control plane.
PROTECTED_NAMESPACES = ("kube-system", "kube-public", "kube-node-lease")
# Istio's reserved sidecar/gateway ports (https://istio.io/latest/docs/ops/deployment/application-requirements/)
RESERVED_PROXY_PORTS = (15000, 15001, 15004, 15006, 15008, 15009, 15020, 15021, 15053, 15090)

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?)$")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")

DEFAULT_SERVICE_PORTS: tuple[dict[str, Any], ...] = (
    {"name": "status-port", "port": 15021, "protocol": "TCP", "targetPort": 15021},
    {"name": "http2", "port": 80, "protocol": "TCP", "targetPort": 80},
    {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 443},
)

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


def _check_host_name(p: _Problems, path: str, value: Any) -> None:
    """Record why ``value`` (a string, or None when unset or already refused) is no host."""
    problem = None if value is None else host_problem(value)
    if problem:
        p.add(path, problem, value)


def is_wildcard(host: str) -> bool:
    return host.startswith("*.")


def default_object_name(host: str) -> str:
    """``*.example.com`` -> ``wildcard.example.com``; other hosts unchanged."""
    return host.replace("*", "wildcard")


# --------------------------------------------------------------------------- sections


def _normalize_gateway(p: _Problems, raw: Any, revision: Any) -> dict[str, Any]:
    g = _mapping(p, "gateway", raw, keys("gateway"))

    def d(key: str) -> Any:
        return default(f"gateway.{key}")

    gateway = {
        "namespace": _k8s_name(p, "gateway.namespace", g.get("namespace"), d("namespace")),
        "name": _k8s_name(p, "gateway.name", g.get("name"), d("name")),
        "selector": _label_map(p, "gateway.selector", g.get("selector"), d("selector")),
        "listener_port": _port_number(
            p, "gateway.listener_port", g.get("listener_port"), d("listener_port")
        ),
        "virtual_gateway_name": _k8s_object_name(
            p,
            "gateway.virtual_gateway_name",
            g.get("virtual_gateway_name"),
            d("virtual_gateway_name"),
        ),
        "istio_gateway_name": _k8s_object_name(
            p, "gateway.istio_gateway_name", g.get("istio_gateway_name"), d("istio_gateway_name")
        ),
        **_normalize_gateway_install(p, g, revision),
    }
    if gateway["listener_port"] in RESERVED_PROXY_PORTS:
        p.add(
            "gateway.listener_port",
            "is one of Istio's reserved proxy ports (15000-15090)",
            gateway["listener_port"],
        )
    return gateway


def _normalize_gateway_install(p: _Problems, g: dict[str, Any], revision: Any) -> dict[str, Any]:
    """The Helm-install keys of ``gateway`` (see ``render.gateway_values``)."""

    def d(key: str) -> Any:
        return default(f"gateway.{key}")

    def text(key: str) -> Any:
        return _optional_string(p, f"gateway.{key}", g.get(key)) or d(key)

    return {
        "chart_ref": _string(p, "gateway.chart_ref", g.get("chart_ref"), d("chart_ref")),
        "chart_repo_url": text("chart_repo_url"),
        "chart_version": _version_string(p, "gateway.chart_version", g.get("chart_version")),
        "values_schema": text("values_schema"),
        "revision": _optional_string(p, "gateway.revision", g.get("revision") or revision),
        "image_hub": _optional_string(p, "gateway.image_hub", g.get("image_hub")),
        "image_tag": _optional_string(p, "gateway.image_tag", g.get("image_tag")),
        "replicas": _integer(p, "gateway.replicas", g.get("replicas"), 1, 1000, d("replicas")),
        "resources": _optional_mapping(p, "gateway.resources", g.get("resources")),
        "service_type": _choice(
            p, "gateway.service_type", g.get("service_type"), SERVICE_TYPES, d("service_type")
        ),
        "service_ports": _normalize_service_ports(p, g.get("service_ports")),
        "node_selector": _optional_label_map(p, "gateway.node_selector", g.get("node_selector")),
        "tolerations": _normalize_tolerations(p, g.get("tolerations")),
        "dedicated_nodes": _name_list(
            p, "gateway.dedicated_nodes", g.get("dedicated_nodes"), _k8s_object_name
        ),
        "node_label": _label_key(p, "gateway.node_label", g.get("node_label"), d("node_label")),
        "taint_nodes": _boolean(p, "gateway.taint_nodes", g.get("taint_nodes"), d("taint_nodes")),
        "access_log": _boolean(p, "gateway.access_log", g.get("access_log"), d("access_log")),
        "atomic": _boolean(p, "gateway.atomic", g.get("atomic"), d("atomic")),
        "wait_timeout": _integer(
            p, "gateway.wait_timeout", g.get("wait_timeout"), 1, 3600, d("wait_timeout")
        ),
        "extra_values": _optional_mapping(p, "gateway.extra_values", g.get("extra_values")) or {},
    }


def _version_string(p: _Problems, path: str, value: Any) -> str:
    """A chart version; numbers (YAML ``1.23``) are refused since they lose digits."""
    if value in (None, ""):
        return ""
    if not isinstance(value, str):
        p.add(path, "must be a string (quote it: YAML reads 1.20 as a number)", value)
        return ""
    return value


def _label_key(p: _Problems, path: str, value: Any, fallback: str) -> Any:
    key = _string(p, path, None if value == "" else value, fallback)
    if isinstance(key, str) and not _is_label_key(key):
        p.add(path, "is not a valid label name", key)
        return None
    return key


def _name_list(p: _Problems, path: str, raw: Any, check: Callable[..., Any]) -> list[str]:
    names = [check(p, _join(path, i), item) for i, item in enumerate(_list(p, path, raw))]
    for i, name in enumerate(names):
        if name is not None and name in names[:i]:
            p.add(_join(path, i), "duplicate name", name)
    return sorted({name for name in names if name is not None})


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
        entry = _mapping(p, path, item, keys("gateway.service_ports"))
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
    s = _mapping(p, path, raw, keys("services"))
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
        "endpoints": _normalize_endpoints(p, _join(path, "endpoints"), s.get("endpoints")),
        "ports": ports,
        "clients": _normalize_clients(p, _join(path, "clients"), s.get("clients"), top),
    }
    _check_service(p, path, service, top["flavor"])
    return service


def _normalize_endpoints(p: _Problems, path: str, raw: Any) -> list[str]:
    addresses: list[str] = []
    for i, item in enumerate(_list(p, path, raw)):
        address = _string(p, _join(path, i), item)
        if not isinstance(address, str):
            continue
        problem = endpoint_problem(address)
        if problem:
            p.add(_join(path, i), problem, item)
        elif address in addresses:
            p.add(_join(path, i), "duplicate address", item)
        else:
            addresses.append(address)
    return addresses


def endpoint_problem(address: str) -> str | None:
    """Why ``address`` cannot be a Gloo ExternalEndpoint address (an IP, or an FQDN without
    a wildcard), or None."""
    try:
        ipaddress.ip_address(address)
        return None
    except ValueError:
        pass
    if "*" in address:
        return (
            "must be a concrete address (an IP, or an FQDN without a wildcard): an "
            "ExternalEndpoint's address is resolved as it is"
        )
    problem = host_problem(address)
    return f"must be an IP address or an FQDN: {problem}" if problem else None


def endpoint_names(service: dict[str, Any]) -> list[str]:
    """Names of the ExternalEndpoints of a service: ``<name>-<n>``, from 1."""
    return [f"{service['name']}-{n}" for n in range(1, len(service["endpoints"]) + 1)]


def _check_wildcard(p: _Problems, path: str, service: dict[str, Any], flavor: Any) -> None:
    """What a wildcard host needs to be routable (the istio flavor refuses it elsewhere).

    Gloo Mesh v2 (ExternalService, networking.gloo.solo.io/v2) takes a wildcard prefix
    domain in ``hosts``, with three conditions from its API: every port goes through an
    egress gateway (else the wildcard lets traffic bypass REGISTRY_ONLY; checked by
    ``_check_service``), the ExternalService selects ExternalEndpoints (without them Gloo
    resolves the hosts by DNS, which cannot resolve a wildcard), and TLS origination names
    its SNI (Gloo's default SNI is the service's single host: here the wildcard itself)."""
    host = service["host"]
    if flavor != "gloo" or not host or not is_wildcard(host):
        return
    if not service["endpoints"]:
        p.add(
            _join(path, "host"),
            "a wildcard host needs endpoints with the gloo flavor: an ExternalService that "
            "selects no ExternalEndpoints is resolved by DNS, which cannot resolve a "
            f"wildcard, so the gateway has no address to send it to; list the upstream "
            f"addresses in {_join(path, 'endpoints')}, or list the concrete hosts",
            host,
        )
    for i, port in enumerate(service["ports"]):
        if port.get("tls_origination") and not port.get("sni"):
            p.add(
                _join(_join(_join(path, "ports"), i), "sni"),
                "a wildcard host needs an explicit sni to originate TLS: Gloo presents the "
                "ExternalService's single host as SNI, here the wildcard itself, which is no "
                "server name; set the upstream's name",
                None,
            )


def _check_service(p: _Problems, path: str, service: dict[str, Any], flavor: Any) -> None:
    via = [i for i, port in enumerate(service["ports"]) if port.get("via_gateway")]
    if flavor == "istio" and service["endpoints"]:
        p.add(
            _join(path, "endpoints"),
            "only the gloo flavor writes endpoints (Gloo ExternalEndpoints); the istio flavor "
            "resolves the host by DNS",
            service["endpoints"],
        )
    if service["name"] and service["endpoints"]:
        longest = endpoint_names(service)[-1]
        if not _is_subdomain(longest):
            p.add(
                _join(path, "name"),
                f"is too long for its ExternalEndpoint names ({longest!r} is not an RFC 1123 "
                "subdomain); set a shorter name",
                service["name"],
            )
    if service["host"] and is_wildcard(service["host"]):
        for i, port in enumerate(service["ports"]):
            if port.get("via_gateway") is False:
                p.add(
                    _join(_join(_join(path, "ports"), i), "via_gateway"),
                    "a wildcard host must send every port through the gateway",
                    False,
                )
    _check_wildcard(p, path, service, flavor)
    if service["clients"] is not None and service["ports"] and not via:
        p.add(
            _join(path, "clients"),
            "access restrictions need at least one port with via_gateway: true",
            service["clients"],
        )
    if flavor == "istio" and service["host"] and is_wildcard(service["host"]):
        p.add(
            _join(path, "host"),
            "the istio flavor cannot route a wildcard host through the egress gateway (a "
            "ServiceEntry with resolution NONE sends the traffic back to the gateway, and TLS "
            "origination needs one SNI); list the concrete hosts, or use flavor gloo",
            service["host"],
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
    e = _mapping(p, path, raw, keys("services.ports"))
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
    if port["client_port"] in RESERVED_PROXY_PORTS:
        p.add(
            _join(path, "client_port"),
            "is one of Istio's reserved proxy ports (15000-15090)",
            port["client_port"],
        )
    _check_host_name(p, _join(path, "sni"), port["sni"])
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
    c = _mapping(p, path, raw, keys("services.clients"))
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
    o = _mapping(p, "outbound_policy", raw, keys("outbound_policy"))

    def d(key: str) -> Any:
        return default(f"outbound_policy.{key}")

    scope = _choice(p, "outbound_policy.scope", o.get("scope"), OUTBOUND_SCOPES, d("scope"))
    method = _choice(p, "outbound_policy.method", o.get("method"), OUTBOUND_METHODS, d("method"))
    policy = {
        "mode": _choice(p, "outbound_policy.mode", o.get("mode"), OUTBOUND_MODES, d("mode")),
        "scope": scope,
        "root_namespace": _k8s_name(
            p, "outbound_policy.root_namespace", o.get("root_namespace"), d("root_namespace")
        ),
        "namespaces": _namespace_list(p, "outbound_policy.namespaces", o.get("namespaces")),
        "method": method,
        "istiod": _normalize_istiod_release(p, o.get("istiod")),
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
    if method == "istiod_helm" and scope != "mesh":
        p.add(
            "outbound_policy.scope",
            "the istiod_helm method sets the mesh-wide policy only; use method: sidecar",
            scope,
        )
    return policy


def _normalize_istiod_release(p: _Problems, raw: Any) -> dict[str, Any]:
    r = _mapping(p, "outbound_policy.istiod", raw, keys("outbound_policy.istiod"))

    def d(key: str) -> Any:
        return default(f"outbound_policy.istiod.{key}")

    path = "outbound_policy.istiod"
    return {
        "release": _k8s_name(p, f"{path}.release", r.get("release"), d("release")),
        "namespace": _k8s_name(p, f"{path}.namespace", r.get("namespace"), d("namespace")),
        "chart_ref": _string(p, f"{path}.chart_ref", r.get("chart_ref"), d("chart_ref")),
        "chart_repo_url": _optional_string(p, f"{path}.chart_repo_url", r.get("chart_repo_url"))
        or "",
        "chart_version": _version_string(p, f"{path}.chart_version", r.get("chart_version")),
    }


def _namespace_list(p: _Problems, path: str, raw: Any) -> list[str]:
    return _name_list(p, path, raw, _k8s_name)


def _normalize_lockdown(
    p: _Problems, raw: Any, gateway: dict[str, Any], outbound: dict[str, Any] | None
) -> dict[str, Any]:
    d = _mapping(p, "lockdown", raw, keys("lockdown"))
    namespaces = _namespace_list(p, "lockdown.namespaces", d.get("namespaces"))
    if gateway.get("namespace") in namespaces:
        p.add(
            "lockdown.namespaces",
            "must not include the gateway namespace (it gets its own policies)",
            gateway["namespace"],
        )
    lockdown = {
        "namespaces": namespaces,
        "dns": _normalize_peer(p, "lockdown.dns", d.get("dns")),
        "istiod": _normalize_peer(p, "lockdown.istiod", d.get("istiod")),
        "allow": [
            _normalize_allow(p, _join("lockdown.allow", i), item)
            for i, item in enumerate(_list(p, "lockdown.allow", d.get("allow")))
        ],
        "label_namespaces": _boolean(
            p,
            "lockdown.label_namespaces",
            d.get("label_namespaces"),
            default("lockdown.label_namespaces"),
        ),
    }
    protected = set(PROTECTED_NAMESPACES)
    protected.add(lockdown["istiod"]["namespace"])
    if outbound:
        protected.add(outbound["root_namespace"])
    for i, name in enumerate(namespaces):
        if name in protected:
            p.add(
                _join("lockdown.namespaces", i),
                "must not lock down a cluster or mesh control-plane namespace "
                f"({', '.join(sorted(protected))})",
                name,
            )
    return lockdown


def _normalize_peer(p: _Problems, path: str, raw: Any) -> dict[str, Any]:
    e = _mapping(p, path, raw, keys(path))
    fallback = default(path)
    ports = _network_ports(p, _join(path, "ports"), e.get("ports"))
    return {
        "namespace": _k8s_name(
            p, _join(path, "namespace"), e.get("namespace"), fallback["namespace"]
        ),
        "pod_selector": _label_map(
            p, _join(path, "pod_selector"), e.get("pod_selector"), fallback["pod_selector"]
        ),
        "ip_blocks": _cidr_list(p, _join(path, "ip_blocks"), e.get("ip_blocks")),
        "ports": ports or None,
    }


def _network_ports(p: _Problems, path: str, raw: Any) -> list[dict[str, Any]]:
    ports = []
    for i, item in enumerate(_list(p, path, raw)):
        port_path = _join(path, i)
        entry = _mapping(p, port_path, item, tuple(f.key for f in NETWORK_PORT_FIELDS))
        ports.append(
            {
                "port": _port_number(p, _join(port_path, "port"), entry.get("port")),
                "protocol": _choice(
                    p,
                    _join(port_path, "protocol"),
                    entry.get("protocol"),
                    NETWORK_PROTOCOLS,
                    default("lockdown.allow.ports.protocol"),
                ),
            }
        )
    return ports


def _cidr_list(p: _Problems, path: str, raw: Any) -> list[str]:
    blocks = []
    for i, item in enumerate(_list(p, path, raw)):
        try:
            if not isinstance(item, str):  # ip_network(5) would be 0.0.0.5/32
                raise TypeError(item)
            blocks.append(str(ipaddress.ip_network(item, strict=True)))
        except (TypeError, ValueError):
            p.add(_join(path, i), "must be a CIDR (for example 169.254.20.10/32)", item)
    return blocks


def _normalize_allow(p: _Problems, path: str, raw: Any) -> dict[str, Any]:
    e = _mapping(p, path, raw, keys("lockdown.allow"))
    allow = {
        "namespace": _k8s_name(p, _join(path, "namespace"), e.get("namespace"), None),
        "pod_selector": _optional_label_map(p, _join(path, "pod_selector"), e.get("pod_selector")),
        "ip_blocks": _cidr_list(p, _join(path, "ip_blocks"), e.get("ip_blocks")),
        "ports": _network_ports(p, _join(path, "ports"), e.get("ports")),
    }
    if allow["namespace"] is None and not allow["ip_blocks"]:
        p.add(path, "needs a namespace or ip_blocks", raw)
    return allow


# --------------------------------------------------------------------------- verify


def _normalize_verify(p: _Problems, raw: Any, gateway: dict[str, Any]) -> dict[str, Any]:
    v = _mapping(p, "verify", raw, keys("verify"))

    def d(key: str) -> Any:
        return default(f"verify.{key}")

    def text(key: str) -> Any:
        return _optional_string(p, f"verify.{key}", v.get(key)) or d(key)

    verify = {
        "sources": _sources(p, "verify.sources", v.get("sources")),
        "bypass_sources": _sources(p, "verify.bypass_sources", v.get("bypass_sources")),
        "bypass_image": _bypass_image(p, v.get("bypass_image")),
        "network_policies_enforced": _boolean(
            p,
            "verify.network_policies_enforced",
            v.get("network_policies_enforced"),
            d("network_policies_enforced"),
        ),
        "unregistered_host": text("unregistered_host"),
        "path": text("path"),
        "connect_to": [str(item) for item in _list(p, "verify.connect_to", v.get("connect_to"))],
        "deadline": _integer(p, "verify.deadline", v.get("deadline"), 0, 3600, d("deadline")),
        "probe_timeout": _integer(
            p, "verify.probe_timeout", v.get("probe_timeout"), 1, 600, d("probe_timeout")
        ),
        "connect_timeout": _integer(
            p, "verify.connect_timeout", v.get("connect_timeout"), 1, 600, d("connect_timeout")
        ),
        "access_log": _boolean(
            p, "verify.access_log", v.get("access_log"), bool(gateway.get("access_log"))
        ),
        "access_log_container": text("access_log_container"),
        "access_log_path": _optional_string(p, "verify.access_log_path", v.get("access_log_path")),
        "junit_path": text("junit_path"),
        "junit_suite": text("junit_suite"),
    }
    _check_host_name(p, "verify.unregistered_host", verify["unregistered_host"])
    if not str(verify["path"]).startswith("/"):
        p.add("verify.path", "must start with '/'", verify["path"])
    return verify


def _bypass_image(p: _Problems, value: Any) -> str:
    """The bypass probes' image: absent or null is the default, an empty string none."""
    if value is None:
        return default("verify.bypass_image")
    image = _optional_string(p, "verify.bypass_image", value)
    if isinstance(image, str) and any(c.isspace() for c in image):
        p.add("verify.bypass_image", "must be an image reference (no spaces)", value)
    return image or ""


def _sources(p: _Problems, path: str, raw: Any) -> list[dict[str, Any]]:
    sources = []
    for i, item in enumerate(_list(p, path, raw)):
        item_path = _join(path, i)
        e = _mapping(p, item_path, item, keys("verify.sources"))
        source = {
            "namespace": _k8s_name(p, _join(item_path, "namespace"), e.get("namespace")),
            "service_account": _k8s_object_name(
                p, _join(item_path, "service_account"), e.get("service_account")
            ),
            "pod": _optional_string(p, _join(item_path, "pod"), e.get("pod")),
            "label_selector": _optional_string(
                p, _join(item_path, "label_selector"), e.get("label_selector")
            ),
            "container": _optional_string(p, _join(item_path, "container"), e.get("container")),
            "debug_image": _optional_string(
                p, _join(item_path, "debug_image"), e.get("debug_image")
            ),
            "headers": _optional_mapping(p, _join(item_path, "headers"), e.get("headers")) or {},
            "controller": _boolean(p, _join(item_path, "controller"), e.get("controller"), False),
        }
        pod_keys = [k for k in ("pod", "label_selector", "container", "debug_image") if source[k]]
        if source["controller"] and pod_keys:
            p.add(
                _join(item_path, pod_keys[0]),
                "is not used with controller: true",
                source[pod_keys[0]],
            )
        elif not source["controller"] and bool(source["pod"]) == bool(source["label_selector"]):
            p.add(
                item_path, "needs exactly one of pod or label_selector (or controller: true)", item
            )
        sources.append(source)
    return sources


# --------------------------------------------------------------------------- entry point


def _normalize_top(p: _Problems, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": _k8s_name(p, "name", spec.get("name"), default("name")),
        "adopt": _boolean(p, "adopt", spec.get("adopt"), default("adopt")),
        "flavor": _choice(p, "flavor", spec.get("flavor"), FLAVORS, default("flavor")),
        "cluster": _k8s_object_name(p, "cluster", spec.get("cluster"), default("cluster")),
        "trust_domain": _trust_domain(p, spec.get("trust_domain")),
        "revision": _revision(p, spec.get("revision")),
        "services_namespace": _k8s_name(
            p, "services_namespace", spec.get("services_namespace"), default("services_namespace")
        ),
    }


def _trust_domain(p: _Problems, value: Any) -> Any:
    domain = _string(p, "trust_domain", value, default("trust_domain"))
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


def normalize(spec: Any, concerns: Any = CONCERNS, verify: bool = False) -> dict[str, Any]:
    """Validate the parts of ``spec`` that ``concerns`` (and, with ``verify``, the
    verification) read; return them with every default filled in.

    ``concerns`` is a concern name or a list of them. Raises ``DescriptionError`` listing
    every problem found, one per line.
    """
    concerns = [concerns] if isinstance(concerns, str) else list(concerns)
    for concern in concerns:
        if concern not in CONCERNS:
            raise DescriptionError(
                format_problem("concern", f"must be one of {', '.join(CONCERNS)}", concern),
                "concern",
                concern,
            )
    if spec is not None and not isinstance(spec, dict):
        raise DescriptionError(format_problem("spec", "must be a mapping", spec), "spec", spec)
    wanted = {key for concern in concerns for key in CONCERN_KEYS[concern]}
    if verify:
        wanted |= {"gateway", "services", "outbound_policy", "lockdown", "verify"}
    p = _Problems()
    spec = _mapping(p, "", spec, keys())
    result = _normalize_top(p, spec)
    if "gateway" in wanted or "lockdown" in wanted or "verify" in wanted:
        result["gateway"] = _normalize_gateway(p, spec.get("gateway"), result["revision"])
    if "services" in wanted:
        result["services"] = _normalize_services(p, spec.get("services"), result)
    if "outbound_policy" in wanted or "lockdown" in wanted:
        result["outbound_policy"] = _normalize_outbound(p, spec.get("outbound_policy"))
    if "lockdown" in wanted:
        result["lockdown"] = _normalize_lockdown(
            p, spec.get("lockdown"), result["gateway"], result.get("outbound_policy")
        )
    if "verify" in wanted:
        result["verify"] = _normalize_verify(p, spec.get("verify"), result["gateway"])
    p.raise_if_any()
    return result


def normalize_gateway(gateway: Any, revision: Any = None) -> dict[str, Any]:
    """Validate a ``gateway`` section alone (for the Helm values); paths start at ``gateway``."""
    p = _Problems()
    result = _normalize_gateway(p, gateway, revision)
    p.raise_if_any()
    return result


# --------------------------------------------------------------------------- variables


def merge_overrides(base: dict[str, Any], override: Any, path: str = "") -> dict[str, Any]:
    """``base`` with ``override`` deep-merged into it: mappings merge, anything else replaces."""
    if not isinstance(override, dict):
        raise DescriptionError(
            format_problem(path or "override", "must be a mapping", override), path, override
        )
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_overrides(merged[key], value, _join(path, str(key)))
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def description_from_variables(variables: dict[str, Any]) -> dict[str, Any]:
    """The description an inventory states: each ``egress_<key>`` variable is key ``<key>``;
    then every ``egress_override_*`` mapping (in name order) is deep-merged on top, so that
    one setting can be overridden in group_vars, host_vars or extra vars without restating
    the rest of its mapping. An ``egress_*`` variable that is neither is refused.
    """
    p = _Problems()
    spec: dict[str, Any] = {}
    overrides = []
    allowed = keys()
    for name in sorted(variables):
        if not name.startswith(VARIABLE_PREFIX) or name in CONNECTION_VARIABLES:
            continue
        if name.startswith(OVERRIDE_PREFIX):
            overrides.append(name)
            continue
        key = name[len(VARIABLE_PREFIX) :]
        if key in allowed:
            spec[key] = variables[name]
        else:
            p.add(
                name,
                "unknown egress variable (description keys: "
                + ", ".join(VARIABLE_PREFIX + k for k in allowed)
                + f"; overrides: {OVERRIDE_PREFIX}*; others: "
                + ", ".join(CONNECTION_VARIABLES)
                + ")",
                variables[name],
            )
    p.raise_if_any()
    for name in overrides:
        spec = merge_overrides(spec, variables[name], name)
    return spec
