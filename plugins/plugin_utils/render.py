# Copyright (c) meshguard.egress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Render Kubernetes, Istio and Gloo Mesh objects and gateway Helm values.

Input is the normalised egress description (``description.normalize``); output is
plain data, deterministic for a given description so that re-applying it is idempotent.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from ansible_collections.meshguard.egress.plugins.module_utils._requirements import (
    MissingLibrary,
    require,
)
from ansible_collections.meshguard.egress.plugins.plugin_utils.description import (
    DescriptionError,
    endpoint_names,
    format_problem,
    is_wildcard,
)

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "meshguard.egress"
COMPONENT_LABEL = "meshguard.io/component"
OWNER_LABEL = "meshguard.io/description"
ENDPOINT_LABEL = "meshguard.io/external-service"  # ExternalService -> its ExternalEndpoints
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"

ISTIO_NETWORKING = "networking.istio.io/v1"
ISTIO_SECURITY = "security.istio.io/v1"
GLOO_NETWORKING = "networking.gloo.solo.io/v2"
GLOO_SECURITY = "security.policy.gloo.solo.io/v2"
K8S_NETWORKING = "networking.k8s.io/v1"
ISTIO_TELEMETRY = "telemetry.istio.io/v1"
ACCESS_LOG_TELEMETRY = "meshguard-egress-access-log"

LOCKDOWN_POLICY = "meshguard-egress-lockdown"
GATEWAY_INTERNET_POLICY = "meshguard-egress-gateway-internet"
ISTIO_AUTHZ_POLICY = "meshguard-egress-allow"
GATEWAY_MTLS_PORT = 15443
ISTIOD_PORTS = (15010, 15012, 15014)
CLUSTER_DOMAIN = "cluster.local"


def managed_labels(component: str) -> dict[str, str]:
    """The labels every object the collection writes carries."""
    return {MANAGED_BY_LABEL: MANAGED_BY, COMPONENT_LABEL: component}


def _object(
    api_version: str, kind: str, name: str, namespace: str | None, component: str, spec: Any
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "labels": managed_labels(component)}
    if namespace is not None:
        metadata["namespace"] = namespace
    obj: dict[str, Any] = {"apiVersion": api_version, "kind": kind, "metadata": metadata}
    if spec is not None:
        obj["spec"] = spec
    return obj


def namespace_object(name: str, component: str) -> dict[str, Any]:
    """A Namespace carrying ``kubernetes.io/metadata.name`` (not automatic before 1.21)."""
    obj = _object("v1", "Namespace", name, None, component, None)
    obj["metadata"]["labels"][NAMESPACE_NAME_LABEL] = name
    return obj


def gateway_host(gateway: dict[str, Any]) -> str:
    """The cluster-local FQDN of the egress gateway Service."""
    return f"{gateway['name']}.{gateway['namespace']}.svc.{CLUSTER_DOMAIN}"


def _via_gateway_ports(service: dict[str, Any]) -> list[dict[str, Any]]:
    return [port for port in service["ports"] if port["via_gateway"]]


def _by_name(services: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(services, key=lambda service: service["name"])


# --------------------------------------------------------------------------- outbound policy


def _render_outbound_policy(spec: dict[str, Any]) -> list[dict[str, Any]]:
    policy = spec["outbound_policy"]
    namespaces = [policy["root_namespace"]] if policy["scope"] == "mesh" else policy["namespaces"]
    return [
        _object(
            ISTIO_NETWORKING,
            "Sidecar",
            "default",
            namespace,
            "outbound_policy",
            {"outboundTrafficPolicy": {"mode": policy["mode"]}},
        )
        for namespace in namespaces
    ]


# --------------------------------------------------------------------------- routes: gloo


def _gloo_gateway_ref(spec: dict[str, Any]) -> dict[str, str]:
    gateway = spec["gateway"]
    return {
        "cluster": spec["cluster"],
        "name": gateway["virtual_gateway_name"],
        "namespace": gateway["namespace"],
    }


def _render_virtual_gateway(spec: dict[str, Any]) -> list[dict[str, Any]]:
    gateway = spec["gateway"]
    hosts = sorted(s["host"] for s in spec["services"] if _via_gateway_ports(s))
    if not hosts:  # an empty exposedExternalServices would expose every ExternalService
        return []
    listener = {
        "port": {"number": gateway["listener_port"]},
        "tls": {"mode": "ISTIO_MUTUAL"},
        "http": {},
        "exposedExternalServices": [{"host": host} for host in hosts],
    }
    workload = {
        "selector": {
            "labels": dict(gateway["selector"]),
            "namespace": gateway["namespace"],
            "cluster": spec["cluster"],
        }
    }
    return [
        _object(
            GLOO_NETWORKING,
            "VirtualGateway",
            gateway["virtual_gateway_name"],
            gateway["namespace"],
            "routes",
            {"workloads": [workload], "listeners": [listener]},
        )
    ]


def _gloo_port(port: dict[str, Any], gateway_ref: dict[str, str]) -> dict[str, Any]:
    rendered: dict[str, Any] = {
        "name": port["name"],
        "number": port["number"],
        "protocol": port["protocol"],
    }
    if port["tls_origination"]:
        rendered["clientsideTls"] = _drop_none(
            {"sni": port["sni"], "caCertificates": port["ca_certificates"]}
        )
    if port["via_gateway"]:
        rendered["egressGatewayRoutes"] = {
            "portMatch": port["client_port"],
            "virtualGatewayRefs": [dict(gateway_ref)],
        }
    return rendered


def endpoint_selector(service_name: str) -> dict[str, str]:
    """The label an ExternalService selects its ExternalEndpoints by (a label value: the
    name, or for a name longer than 63 its start and a hash)."""
    value = service_name
    if len(value) > 63:
        digest = hashlib.sha256(service_name.encode()).hexdigest()[:10]
        value = f"{service_name[:52].rstrip('.-_')}-{digest}"
    return {ENDPOINT_LABEL: value}


def _render_external_endpoints(spec: dict[str, Any], service: dict[str, Any]) -> list[dict]:
    """One ExternalEndpoint per address, with every port of the service (Gloo matches an
    ExternalService port to the endpoint's port by number)."""
    objects = []
    ports = [{"name": port["name"], "number": port["number"]} for port in service["ports"]]
    for name, address in zip(endpoint_names(service), service["endpoints"]):
        obj = _object(
            GLOO_NETWORKING,
            "ExternalEndpoint",
            name,
            spec["services_namespace"],
            "routes",
            {"address": address, "ports": copy.deepcopy(ports)},
        )
        obj["metadata"]["labels"].update(endpoint_selector(service["name"]))
        objects.append(obj)
    return objects


def _render_external_services(spec: dict[str, Any]) -> list[dict[str, Any]]:
    gateway_ref = _gloo_gateway_ref(spec)
    objects = []
    for service in _by_name(spec["services"]):
        external: dict[str, Any] = {
            "hosts": [service["host"]],
            "ports": [_gloo_port(port, gateway_ref) for port in service["ports"]],
        }
        if service["endpoints"]:
            external["selector"] = endpoint_selector(service["name"])
        objects.append(
            _object(
                GLOO_NETWORKING,
                "ExternalService",
                service["name"],
                spec["services_namespace"],
                "routes",
                external,
            )
        )
        objects += _render_external_endpoints(spec, service)
    return objects


def _render_gloo_routes(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return _render_virtual_gateway(spec) + _render_external_services(spec)


# --------------------------------------------------------------------------- routes: istio


def subset_name(service_name: str) -> str:
    """A DestinationRule subset name (an RFC 1123 label) for a service object name."""
    return service_name.replace(".", "-")[:63].strip("-")


def _istio_gateway_ref(gateway: dict[str, Any]) -> str:
    return f"{gateway['namespace']}/{gateway['istio_gateway_name']}"


def _render_istio_gateway(spec: dict[str, Any]) -> dict[str, Any]:
    gateway = spec["gateway"]
    hosts = sorted(
        f"{spec['services_namespace']}/{s['host']}"
        for s in spec["services"]
        if _via_gateway_ports(s)
    )
    server = {
        "port": {
            "number": gateway["listener_port"],
            "name": f"https-{gateway['listener_port']}",
            "protocol": "HTTPS",
        },
        "hosts": hosts,
        "tls": {"mode": "ISTIO_MUTUAL"},
    }
    return _object(
        ISTIO_NETWORKING,
        "Gateway",
        gateway["istio_gateway_name"],
        gateway["namespace"],
        "routes",
        {"selector": dict(gateway["selector"]), "servers": [server]},
    )


def _render_gateway_mtls_rule(spec: dict[str, Any]) -> dict[str, Any]:
    gateway = spec["gateway"]
    subsets = []
    for service in _by_name(spec["services"]):
        if not _via_gateway_ports(service):
            continue
        tls: dict[str, Any] = {"mode": "ISTIO_MUTUAL"}
        if not is_wildcard(service["host"]):
            tls["sni"] = service["host"]
        subsets.append(
            {
                "name": subset_name(service["name"]),
                "trafficPolicy": {
                    "portLevelSettings": [
                        {"port": {"number": gateway["listener_port"]}, "tls": tls}
                    ]
                },
            }
        )
    return _object(
        ISTIO_NETWORKING,
        "DestinationRule",
        f"{gateway['name']}-mtls",
        gateway["namespace"],
        "routes",
        {"host": gateway_host(gateway), "subsets": subsets},
    )


def _service_entry_ports(service: dict[str, Any]) -> list[dict[str, Any]]:
    ports: dict[int, dict[str, Any]] = {}
    for port in service["ports"]:
        if port["via_gateway"] and port["client_port"] != port["number"]:
            client = port["client_port"]
            ports.setdefault(
                client, {"number": client, "name": f"http-{client}", "protocol": "HTTP"}
            )
        ports.setdefault(
            port["number"],
            {"number": port["number"], "name": port["name"], "protocol": port["protocol"]},
        )
    return [ports[number] for number in sorted(ports)]


def _render_service_entry(spec: dict[str, Any], service: dict[str, Any]) -> dict[str, Any]:
    return _object(
        ISTIO_NETWORKING,
        "ServiceEntry",
        service["name"],
        spec["services_namespace"],
        "routes",
        {
            "hosts": [service["host"]],
            "location": "MESH_EXTERNAL",
            "resolution": "DNS",  # a concrete host: the istio flavor refuses wildcards
            "ports": _service_entry_ports(service),
        },
    )


def _render_virtual_service(spec: dict[str, Any], service: dict[str, Any]) -> list[dict[str, Any]]:
    ports = _via_gateway_ports(service)
    if not ports:
        return []
    gateway = spec["gateway"]
    gateway_ref = _istio_gateway_ref(gateway)
    http = []
    for port in ports:
        to_gateway = {
            "host": gateway_host(gateway),
            "subset": subset_name(service["name"]),
            "port": {"number": gateway["listener_port"]},
        }
        to_external = {"host": service["host"], "port": {"number": port["number"]}}
        http.append(
            {
                "name": f"mesh-to-gateway-{port['client_port']}",
                "match": [{"gateways": ["mesh"], "port": port["client_port"]}],
                "route": [{"destination": to_gateway, "weight": 100}],
            }
        )
        http.append(
            {
                "name": f"gateway-to-external-{port['number']}",
                "match": [{"gateways": [gateway_ref], "port": gateway["listener_port"]}],
                "route": [{"destination": to_external, "weight": 100}],
            }
        )
    return [
        _object(
            ISTIO_NETWORKING,
            "VirtualService",
            service["name"],
            spec["services_namespace"],
            "routes",
            {"hosts": [service["host"]], "gateways": ["mesh", gateway_ref], "http": http},
        )
    ]


def _render_origination_rule(spec: dict[str, Any], service: dict[str, Any]) -> list[dict[str, Any]]:
    settings = []
    for port in service["ports"]:
        if not port["tls_origination"]:
            continue
        sni = port["sni"] or service["host"]
        tls = _drop_none({"mode": "SIMPLE", "sni": sni, "caCertificates": port["ca_certificates"]})
        settings.append({"port": {"number": port["number"]}, "tls": tls})
    if not settings:
        return []
    return [
        _object(
            ISTIO_NETWORKING,
            "DestinationRule",
            f"{service['name']}-tls",
            spec["services_namespace"],
            "routes",
            {"host": service["host"], "trafficPolicy": {"portLevelSettings": settings}},
        )
    ]


def _render_istio_routes(spec: dict[str, Any]) -> list[dict[str, Any]]:
    objects = []
    if any(_via_gateway_ports(s) for s in spec["services"]):
        objects += [_render_istio_gateway(spec), _render_gateway_mtls_rule(spec)]
    for service in _by_name(spec["services"]):
        objects.append(_render_service_entry(spec, service))
        objects += _render_virtual_service(spec, service)
        objects += _render_origination_rule(spec, service)
    return objects


def _render_routes(spec: dict[str, Any]) -> list[dict[str, Any]]:
    if spec["flavor"] == "gloo":
        return _render_gloo_routes(spec)
    return _render_istio_routes(spec)


# --------------------------------------------------------------------------- access


def _gloo_client(client: dict[str, Any]) -> dict[str, Any]:
    selector: dict[str, Any] = {"namespace": client["namespace"], "cluster": client["cluster"]}
    if client["service_account"]:
        selector["name"] = client["service_account"]
    if client["labels"]:
        selector["labels"] = dict(client["labels"])
    return {"serviceAccountSelector": selector}


def _render_access_policy(spec: dict[str, Any], service: dict[str, Any]) -> dict[str, Any]:
    selector = {
        "name": service["name"],
        "namespace": spec["services_namespace"],
        "cluster": spec["cluster"],
    }
    destinations = [
        {"kind": "EXTERNAL_SERVICE", "port": {"number": port["number"]}, "selector": selector}
        for port in _via_gateway_ports(service)
    ]
    clients = [_gloo_client(client) for client in service["clients"]]
    return _object(
        GLOO_SECURITY,
        "AccessPolicy",
        service["access_policy_name"],
        spec["gateway"]["namespace"],
        "access",
        {"applyToDestinations": destinations, "config": {"authz": {"allowedClients": clients}}},
    )


def _render_gloo_access(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        _render_access_policy(spec, service)
        for service in _by_name(spec["services"])
        if service["clients"] is not None
    ]


def principal(trust_domain: str, namespace: str, service_account: str) -> str:
    """The SPIFFE-style principal Istio matches in ``source.principals``."""
    return f"{trust_domain}/ns/{namespace}/sa/{service_account}"


def _istio_rule(spec: dict[str, Any], service: dict[str, Any]) -> dict[str, Any] | None:
    to = [{"operation": {"hosts": [service["host"], f"{service['host']}:*"]}}]
    if service["clients"] is None:
        return {"to": to}
    principals = sorted(
        principal(spec["trust_domain"], client["namespace"], client["service_account"])
        for client in service["clients"]
    )
    if not principals:  # clients: [] -> nobody; an ALLOW policy without a rule denies
        return None
    return {"from": [{"source": {"principals": principals}}], "to": to}


def _render_istio_access(spec: dict[str, Any]) -> list[dict[str, Any]]:
    gateway = spec["gateway"]
    rules = [_istio_rule(spec, service) for service in _by_name(spec["services"])]
    policy = {
        "selector": {"matchLabels": dict(gateway["selector"])},
        "action": "ALLOW",
        "rules": [rule for rule in rules if rule is not None],
    }
    return [
        _object(
            ISTIO_SECURITY,
            "AuthorizationPolicy",
            ISTIO_AUTHZ_POLICY,
            gateway["namespace"],
            "access",
            policy,
        )
    ]


def _render_access(spec: dict[str, Any]) -> list[dict[str, Any]]:
    if spec["flavor"] == "gloo":
        return _render_gloo_access(spec)
    return _render_istio_access(spec)


# --------------------------------------------------------------------------- lockdown


def _peer(namespace: str, pod_selector: dict[str, str]) -> dict[str, Any]:
    return {
        "namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: namespace}},
        "podSelector": {"matchLabels": dict(pod_selector)},
    }


def _ports(*pairs: tuple[int, str]) -> list[dict[str, Any]]:
    return [{"port": port, "protocol": protocol} for port, protocol in pairs]


def _peer_rule(peer: dict[str, Any], default_ports: list[tuple[int, str]]) -> dict[str, Any]:
    """One egress rule to a peer (DNS, istiod): its pods and any ipBlocks, on its ports."""
    to = [_peer(peer["namespace"], peer["pod_selector"])]
    to += [{"ipBlock": {"cidr": cidr}} for cidr in peer["ip_blocks"]]
    ports = [(p["port"], p["protocol"]) for p in peer["ports"]] if peer["ports"] else default_ports
    return {"to": to, "ports": _ports(*ports)}


def _dns_and_istiod_rules(lockdown: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        _peer_rule(lockdown["dns"], [(53, "UDP"), (53, "TCP")]),
        _peer_rule(lockdown["istiod"], [(port, "TCP") for port in ISTIOD_PORTS]),
    ]


def _allow_rule(entry: dict[str, Any]) -> dict[str, Any]:
    to = [_peer(entry["namespace"], entry["pod_selector"])] if entry["namespace"] else []
    to += [{"ipBlock": {"cidr": cidr}} for cidr in entry["ip_blocks"]]
    rule: dict[str, Any] = {"to": to}
    if entry["ports"]:
        rule["ports"] = _ports(*((p["port"], p["protocol"]) for p in entry["ports"]))
    return rule


def _workload_lockdown_rules(spec: dict[str, Any]) -> list[dict[str, Any]]:
    gateway, lockdown = spec["gateway"], spec["lockdown"]
    gateway_ports = sorted({gateway["listener_port"], GATEWAY_MTLS_PORT})
    return [
        *_dns_and_istiod_rules(lockdown),
        {
            "to": [_peer(gateway["namespace"], gateway["selector"])],
            "ports": _ports(*((port, "TCP") for port in gateway_ports)),
        },
        {"to": [{"podSelector": {}}]},
        *(_allow_rule(entry) for entry in lockdown["allow"]),
    ]


def _network_policy(
    name: str, namespace: str, pod_selector: dict[str, Any], egress: list[dict[str, Any]]
) -> dict[str, Any]:
    spec = {"podSelector": pod_selector, "policyTypes": ["Egress"], "egress": egress}
    return _object(K8S_NETWORKING, "NetworkPolicy", name, namespace, "lockdown", spec)


def _render_lockdown(spec: dict[str, Any]) -> list[dict[str, Any]]:
    gateway = spec["gateway"]
    rules = _workload_lockdown_rules(spec)
    objects = [
        _network_policy(LOCKDOWN_POLICY, namespace, {}, copy.deepcopy(rules))
        for namespace in spec["lockdown"]["namespaces"]
    ]
    gateway_pods = {"matchLabels": dict(gateway["selector"])}
    objects.append(
        _network_policy(GATEWAY_INTERNET_POLICY, gateway["namespace"], gateway_pods, [{}])
    )
    objects.append(
        _network_policy(
            LOCKDOWN_POLICY, gateway["namespace"], {}, _dns_and_istiod_rules(spec["lockdown"])
        )
    )
    return objects


def _render_gateway(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Objects beside the Helm release: the access-log Telemetry when it is on."""
    gateway = spec["gateway"]
    if not gateway["access_log"]:
        return []
    telemetry = {
        "selector": {"matchLabels": dict(gateway["selector"])},
        "accessLogging": [{"providers": [{"name": "envoy"}]}],
    }
    return [
        _object(
            ISTIO_TELEMETRY,
            "Telemetry",
            ACCESS_LOG_TELEMETRY,
            gateway["namespace"],
            "gateway",
            telemetry,
        )
    ]


_RENDERERS = {
    "outbound_policy": _render_outbound_policy,
    "gateway": _render_gateway,
    "routes": _render_routes,
    "access": _render_access,
    "lockdown": _render_lockdown,
}


def render(spec: dict[str, Any], concern: str) -> list[dict[str, Any]]:
    """The objects ``concern`` writes for the normalised description ``spec``."""
    if concern == "outbound_policy" and spec["outbound_policy"]["method"] != "sidecar":
        return []
    return _RENDERERS[concern](spec)


# --------------------------------------------------------------------------- Helm values


def _drop_none(mapping: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in mapping.items() if value is not None}


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """A new dict: ``override`` merged into ``base``; nested dicts merge, the rest replaces."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _pod_labels(gateway: dict[str, Any]) -> dict[str, str]:
    """Chart ``labels``: the selector, with the chart's own ``app``/``istio`` labels made
    explicit (the chart derives them from the release name unless ``labels`` sets them)."""
    name = gateway["name"]
    labels = {"app": name, "istio": name[len("istio-") :] if name.startswith("istio-") else name}
    labels.update(gateway["selector"])
    return dict(sorted(labels.items()))


def gateway_values(g: dict[str, Any]) -> dict[str, Any]:
    """Helm values for Istio's ``gateway`` chart from the normalised ``gateway`` section."""
    node_selector = dict(g["node_selector"])
    tolerations = copy.deepcopy(g["tolerations"])
    if g["dedicated_nodes"]:
        node_selector[g["node_label"]] = "true"
        if g["taint_nodes"]:
            tolerations.append(
                {
                    "key": g["node_label"],
                    "operator": "Equal",
                    "value": "true",
                    "effect": "NoSchedule",
                }
            )
    values: dict[str, Any] = {
        "replicaCount": g["replicas"],
        "autoscaling": {"enabled": False},
        "labels": _pod_labels(g),
        "service": {"type": g["service_type"], "ports": copy.deepcopy(g["service_ports"])},
        "nodeSelector": dict(sorted(node_selector.items())),
        "tolerations": tolerations,
    }
    if g["revision"]:
        values["revision"] = g["revision"]
    hub_tag = _drop_none({"hub": g["image_hub"], "tag": g["image_tag"]})
    if hub_tag:
        values["global"] = hub_tag
    if g["resources"] is not None:
        values["resources"] = copy.deepcopy(g["resources"])
    return _sorted_keys(deep_merge(values, g["extra_values"]))


def _sorted_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _sorted_keys(value[key]) for key in sorted(value, key=str)}
    if isinstance(value, list):
        return [_sorted_keys(item) for item in value]
    return value


def _schema_validator(schema: dict[str, Any]) -> Any:
    """Helm evaluates chart schemas whose ``$schema`` it does not know (Istio's charts say
    ``http://json-schema.org/schema#``) with draft-07 rules, where ``$ref`` replaces its
    siblings; pick a known draft when the schema names one, else Draft 7 like Helm."""
    try:
        jsonschema = require(
            "jsonschema", "to check the gateway chart values against the chart's values.schema.json"
        )
    except MissingLibrary as exc:
        raise DescriptionError(str(exc), "gateway.values_schema", None) from exc

    drafts = (
        jsonschema.Draft4Validator,
        jsonschema.Draft6Validator,
        jsonschema.Draft7Validator,
        jsonschema.Draft201909Validator,
        jsonschema.Draft202012Validator,
    )
    known = {_schema_id(cls.META_SCHEMA): cls for cls in drafts}
    cls = known.get(_schema_id({"$id": schema.get("$schema", "")}), jsonschema.Draft7Validator)
    return cls(schema)


def _schema_id(meta: dict[str, Any]) -> str:
    return str(meta.get("$id", meta.get("id", ""))).rstrip("#")


def _schema_problems(error: Any) -> list[tuple[str, str, Any]]:
    """``(values path, problem, value)`` for one schema error; unknown keys get their own path."""
    path = _values_path(error)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set(error.schema.get("properties", {}))
        return [
            (f"{path}.{key}", "unknown key rejected by the chart schema", error.instance[key])
            for key in sorted(error.instance, key=str)
            if key not in allowed
        ]
    return [(path, f"rejected by the chart schema: {error.message}", error.instance)]


def _values_path(error: Any) -> str:
    path = "values"
    for part in error.absolute_path:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def check_values(values: Any, schema_path: str) -> None:
    """Raise ``DescriptionError`` naming each values path the chart's schema rejects."""
    try:
        with open(schema_path, encoding="utf-8") as handle:
            schema = json.load(handle)
    except (OSError, ValueError) as exc:
        raise DescriptionError(
            format_problem("schema_path", f"cannot read the chart schema: {exc}", schema_path),
            "schema_path",
            schema_path,
        ) from exc
    validator = _schema_validator(schema)
    errors = sorted(validator.iter_errors(values), key=lambda e: [str(p) for p in e.absolute_path])
    items = [item for error in errors for item in _schema_problems(error)]
    if not items:
        return
    lines = [format_problem(path, problem, value) for path, problem, value in items]
    raise DescriptionError("\n".join(lines), items[0][0], items[0][2], items)
