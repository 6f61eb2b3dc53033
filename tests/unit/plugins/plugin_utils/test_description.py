"""The egress description: every semantic check names the field path and the bad value."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ansible_collections.meshguard.egress.plugins.plugin_utils.description import (
    DescriptionError,
    default_object_name,
    description_from_variables,
    endpoint_names,
    host_problem,
    merge_overrides,
    normalize,
    normalize_gateway,
)


def _spec(**top: Any) -> dict[str, Any]:
    """The procedure's description: httpbin.org through the gateway, productpage only."""
    spec: dict[str, Any] = {
        "flavor": "gloo",
        "cluster": "cluster-1",
        "services": [
            {
                "host": "httpbin.org",
                "ports": [{"number": 443, "protocol": "HTTPS", "name": "https"}],
                "clients": [{"namespace": "bookinfo", "service_account": "bookinfo-productpage"}],
            }
        ],
    }
    spec.update(top)
    return spec


def _with_port(**port: Any) -> dict[str, Any]:
    spec = _spec()
    spec["services"][0]["ports"][0].update(port)
    return spec


def _with_service(**service: Any) -> dict[str, Any]:
    spec = _spec()
    spec["services"][0].update(service)
    return spec


def _with_client(flavor: str = "gloo", **client: Any) -> dict[str, Any]:
    spec = _spec(flavor=flavor)
    spec["services"][0]["clients"] = [client]
    return spec


def _two_services(second: dict[str, Any]) -> dict[str, Any]:
    spec = _spec()
    spec["services"].append(second)
    return spec


LONG_LABEL = "a" * 64
HTTPBIN_PORT = {"number": 443, "protocol": "HTTPS", "name": "https"}
HTTP_PORT = {"number": 80, "protocol": "HTTP"}

# (id, concern, description, field path, offending value)
INVALID: list[tuple[str, str, Any, str, Any]] = [
    ("unknown-flavor", "routes", _spec(flavor="linkerd"), "flavor", "linkerd"),
    ("unknown-top-key", "routes", _spec(servces=[]), "servces", []),
    ("cluster-not-a-name", "routes", _spec(cluster="Cluster_1"), "cluster", "Cluster_1"),
    (
        "services-not-a-list",
        "routes",
        _spec(services={"host": "a.com"}),
        "services",
        {"host": "a.com"},
    ),
    ("services-empty", "access", _spec(services=[]), "services", []),
    ("host-missing", "routes", _with_service(host=None), "services[0].host", None),
    ("host-not-a-string", "routes", _with_service(host=42), "services[0].host", 42),
    (
        "host-with-scheme",
        "routes",
        _with_service(host="https://httpbin.org"),
        "services[0].host",
        "https://httpbin.org",
    ),
    (
        "host-with-port",
        "routes",
        _with_service(host="httpbin.org:443"),
        "services[0].host",
        "httpbin.org:443",
    ),
    (
        "host-with-path",
        "routes",
        _with_service(host="httpbin.org/get"),
        "services[0].host",
        "httpbin.org/get",
    ),
    (
        "host-double-wildcard",
        "routes",
        _with_service(host="*.*.example.com"),
        "services[0].host",
        "*.*.example.com",
    ),
    (
        "host-inner-wildcard",
        "routes",
        _with_service(host="api.*.example.com"),
        "services[0].host",
        "api.*.example.com",
    ),
    (
        "host-empty-label",
        "routes",
        _with_service(host="httpbin..org"),
        "services[0].host",
        "httpbin..org",
    ),
    (
        "host-label-too-long",
        "routes",
        _with_service(host=f"{LONG_LABEL}.org"),
        "services[0].host",
        f"{LONG_LABEL}.org",
    ),
    (
        "host-too-long",
        "routes",
        _with_service(host=".".join(["a" * 60] * 5)),
        "services[0].host",
        ".".join(["a" * 60] * 5),
    ),
    (
        "host-uppercase",
        "routes",
        _with_service(host="HTTPBIN.org"),
        "services[0].host",
        "HTTPBIN.org",
    ),
    (
        "service-unknown-key",
        "routes",
        _with_service(hosts=["a.com"]),
        "services[0].hosts",
        ["a.com"],
    ),
    (
        "service-name-invalid",
        "routes",
        _with_service(name="Httpbin"),
        "services[0].name",
        "Httpbin",
    ),
    ("ports-missing", "routes", _with_service(ports=None), "services[0].ports", None),
    (
        "port-number-too-big",
        "routes",
        _with_port(number=99999),
        "services[0].ports[0].number",
        99999,
    ),
    ("port-number-zero", "routes", _with_port(number=0), "services[0].ports[0].number", 0),
    (
        "port-number-string",
        "routes",
        _with_port(number="443"),
        "services[0].ports[0].number",
        "443",
    ),
    ("port-number-bool", "routes", _with_port(number=True), "services[0].ports[0].number", True),
    (
        "port-protocol-unknown",
        "routes",
        _with_port(protocol="GRPC"),
        "services[0].ports[0].protocol",
        "GRPC",
    ),
    (
        "port-protocol-lowercase",
        "routes",
        _with_port(protocol="https"),
        "services[0].ports[0].protocol",
        "https",
    ),
    (
        "port-unknown-key",
        "routes",
        _with_port(protcol="HTTPS"),
        "services[0].ports[0].protcol",
        "HTTPS",
    ),
    (
        "client-port-too-big",
        "routes",
        _with_port(client_port=70000),
        "services[0].ports[0].client_port",
        70000,
    ),
    (
        "duplicate-client-port",
        "routes",
        _with_service(
            ports=[HTTPBIN_PORT, {"number": 80, "protocol": "HTTP", "via_gateway": False}]
        ),
        "services[0].ports[1].client_port",
        80,
    ),
    (
        "duplicate-port-name",
        "routes",
        _with_service(ports=[HTTPBIN_PORT, {"number": 8443, "protocol": "TLS", "name": "https"}]),
        "services[0].ports[1].name",
        "https",
    ),
    (
        "tls-origination-on-http",
        "routes",
        _with_port(number=80, protocol="HTTP", tls_origination=True),
        "services[0].ports[0].tls_origination",
        True,
    ),
    (
        "tls-origination-not-bool",
        "routes",
        _with_port(tls_origination="yes"),
        "services[0].ports[0].tls_origination",
        "yes",
    ),
    (
        "sni-without-origination",
        "routes",
        _with_port(tls_origination=False, via_gateway=False, sni="httpbin.org"),
        "services[0].ports[0].sni",
        "httpbin.org",
    ),
    (
        "ca-without-origination",
        "routes",
        _with_port(tls_origination=False, via_gateway=False, ca_certificates="/etc/ssl/ca.pem"),
        "services[0].ports[0].ca_certificates",
        "/etc/ssl/ca.pem",
    ),
    (
        "sni-not-a-host",
        "routes",
        _with_port(sni="https://x"),
        "services[0].ports[0].sni",
        "https://x",
    ),
    (
        "tls-via-gateway",
        "routes",
        _with_port(protocol="TLS", via_gateway=True),
        "services[0].ports[0].via_gateway",
        True,
    ),
    (
        "tcp-via-gateway",
        "routes",
        _with_port(number=5432, protocol="TCP", via_gateway=True),
        "services[0].ports[0].via_gateway",
        True,
    ),
    (
        "https-via-gateway-without-origination",
        "routes",
        _with_port(tls_origination=False),
        "services[0].ports[0].tls_origination",
        False,
    ),
    (
        "wildcard-not-via-gateway",
        "routes",
        _with_service(
            host="*.example.com", clients=None, ports=[{"number": 443, "protocol": "TLS"}]
        ),
        "services[0].ports[0].via_gateway",
        False,
    ),
    (
        "clients-without-gateway-port",
        "access",
        _with_service(ports=[{"number": 443, "protocol": "TLS"}]),
        "services[0].clients",
        [
            {
                "namespace": "bookinfo",
                "service_account": "bookinfo-productpage",
                "cluster": "cluster-1",
                "labels": None,
            }
        ],
    ),
    (
        "istio-two-gateway-ports",
        "routes",
        _spec(
            flavor="istio",
            services=[
                {
                    "host": "httpbin.org",
                    "ports": [HTTPBIN_PORT, {"number": 8080, "protocol": "HTTP"}],
                }
            ],
        ),
        "services[0].ports[1]",
        8080,
    ),
    (
        "client-port-collides-with-number",
        "routes",
        _with_service(
            ports=[HTTPBIN_PORT, {"number": 8443, "protocol": "HTTP", "client_port": 443}]
        ),
        "services[0].ports[1].client_port",
        443,
    ),
    (
        "duplicate-host",
        "routes",
        _two_services({"host": "httpbin.org", "name": "other", "ports": [HTTPBIN_PORT]}),
        "services[1].host",
        "httpbin.org",
    ),
    (
        "duplicate-name",
        "routes",
        _two_services({"host": "example.com", "name": "httpbin.org", "ports": [HTTPBIN_PORT]}),
        "services[1].name",
        "httpbin.org",
    ),
    (
        "client-without-namespace",
        "access",
        _with_client(service_account="productpage"),
        "services[0].clients[0].namespace",
        None,
    ),
    (
        "client-without-service-account",
        "access",
        _with_client(namespace="bookinfo"),
        "services[0].clients[0].service_account",
        None,
    ),
    (
        "istio-client-without-service-account",
        "access",
        _with_client("istio", namespace="bookinfo"),
        "services[0].clients[0].service_account",
        None,
    ),
    (
        "labels-with-istio",
        "access",
        _with_client(
            "istio",
            namespace="bookinfo",
            service_account="productpage",
            labels={"account": "productpage"},
        ),
        "services[0].clients[0].labels",
        {"account": "productpage"},
    ),
    (
        "client-bad-namespace",
        "access",
        _with_client(namespace="Book_Info", service_account="productpage"),
        "services[0].clients[0].namespace",
        "Book_Info",
    ),
    (
        "client-namespace-too-long",
        "access",
        _with_client(namespace=LONG_LABEL, service_account="productpage"),
        "services[0].clients[0].namespace",
        LONG_LABEL,
    ),
    (
        "client-bad-label-value",
        "access",
        _with_client(namespace="bookinfo", labels={"account": "has space"}),
        "services[0].clients[0].labels.account",
        "has space",
    ),
    (
        "client-unknown-key",
        "access",
        _with_client(namespace="bookinfo", serviceaccount="productpage"),
        "services[0].clients[0].serviceaccount",
        "productpage",
    ),
    (
        "clients-not-a-list",
        "access",
        _with_service(clients="bookinfo"),
        "services[0].clients",
        "bookinfo",
    ),
    (
        "services-namespace-invalid",
        "routes",
        _spec(services_namespace="Global"),
        "services_namespace",
        "Global",
    ),
    (
        "gateway-namespace-invalid",
        "routes",
        _spec(gateway={"namespace": "istio.egress"}),
        "gateway.namespace",
        "istio.egress",
    ),
    (
        "gateway-unknown-key",
        "routes",
        _spec(gateway={"namespce": "istio-egress"}),
        "gateway.namespce",
        "istio-egress",
    ),
    (
        "gateway-listener-port",
        "routes",
        _spec(gateway={"listener_port": 0}),
        "gateway.listener_port",
        0,
    ),
    ("gateway-empty-selector", "routes", _spec(gateway={"selector": {}}), "gateway.selector", {}),
    (
        "gateway-selector-value",
        "routes",
        _spec(gateway={"selector": {"istio": 5}}),
        "gateway.selector.istio",
        5,
    ),
    ("gateway-replicas-zero", "gateway", _spec(gateway={"replicas": 0}), "gateway.replicas", 0),
    (
        "gateway-service-type",
        "gateway",
        _spec(gateway={"service_type": "External"}),
        "gateway.service_type",
        "External",
    ),
    (
        "gateway-service-port",
        "gateway",
        _spec(gateway={"service_ports": [{"name": "http", "port": 0}]}),
        "gateway.service_ports[0].port",
        0,
    ),
    (
        "gateway-extra-values-not-dict",
        "gateway",
        _spec(gateway={"extra_values": ["x"]}),
        "gateway.extra_values",
        ["x"],
    ),
    (
        "outbound-mode",
        "outbound_policy",
        {"outbound_policy": {"mode": "DENY"}},
        "outbound_policy.mode",
        "DENY",
    ),
    (
        "outbound-scope",
        "outbound_policy",
        {"outbound_policy": {"scope": "cluster"}},
        "outbound_policy.scope",
        "cluster",
    ),
    (
        "outbound-scope-namespaces-empty",
        "outbound_policy",
        {"outbound_policy": {"scope": "namespaces"}},
        "outbound_policy.namespaces",
        [],
    ),
    (
        "outbound-namespaces-with-mesh",
        "outbound_policy",
        {"outbound_policy": {"namespaces": ["bookinfo"]}},
        "outbound_policy.namespaces",
        ["bookinfo"],
    ),
    (
        "outbound-bad-namespace",
        "outbound_policy",
        {"outbound_policy": {"scope": "namespaces", "namespaces": ["book info"]}},
        "outbound_policy.namespaces[0]",
        "book info",
    ),
    (
        "outbound-unknown-key",
        "outbound_policy",
        {"outbound_policy": {"mod": "ALLOW_ANY"}},
        "outbound_policy.mod",
        "ALLOW_ANY",
    ),
    (
        "lockdown-namespaces-not-list",
        "lockdown",
        {"lockdown": {"namespaces": "bookinfo"}},
        "lockdown.namespaces",
        "bookinfo",
    ),
    (
        "lockdown-duplicate-namespace",
        "lockdown",
        {"lockdown": {"namespaces": ["bookinfo", "bookinfo"]}},
        "lockdown.namespaces[1]",
        "bookinfo",
    ),
    (
        "lockdown-gateway-namespace",
        "lockdown",
        {"lockdown": {"namespaces": ["istio-egress"]}},
        "lockdown.namespaces",
        "istio-egress",
    ),
    (
        "lockdown-allow-without-namespace",
        "lockdown",
        {"lockdown": {"allow": [{"ports": []}]}},
        "lockdown.allow[0]",
        {"ports": []},
    ),
    (
        "lockdown-allow-bad-port",
        "lockdown",
        {"lockdown": {"allow": [{"namespace": "db", "ports": [{"port": 70000}]}]}},
        "lockdown.allow[0].ports[0].port",
        70000,
    ),
    (
        "lockdown-allow-bad-protocol",
        "lockdown",
        {
            "lockdown": {
                "allow": [{"namespace": "db", "ports": [{"port": 5432, "protocol": "ICMP"}]}]
            }
        },
        "lockdown.allow[0].ports[0].protocol",
        "ICMP",
    ),
    (
        "lockdown-dns-selector",
        "lockdown",
        {"lockdown": {"dns": {"pod_selector": "kube-dns"}}},
        "lockdown.dns.pod_selector",
        "kube-dns",
    ),
    (
        "lockdown-unknown-key",
        "lockdown",
        {"lockdown": {"namespace": ["bookinfo"]}},
        "lockdown.namespace",
        ["bookinfo"],
    ),
    (
        "trust-domain",
        "access",
        _spec(trust_domain="cluster local"),
        "trust_domain",
        "cluster local",
    ),
    ("revision", "gateway", _spec(revision="1-23/x"), "revision", "1-23/x"),
    # gloo wildcard hosts: routable only to ExternalEndpoints, with an explicit SNI
    (
        "gloo-wildcard-without-endpoints",
        "routes",
        _with_service(host="*.example.com", clients=None, ports=[HTTP_PORT]),
        "services[0].host",
        "*.example.com",
    ),
    (
        "gloo-wildcard-origination-without-sni",
        "routes",
        _with_service(host="*.example.com", clients=None, endpoints=["203.0.113.10"]),
        "services[0].ports[0].sni",
        None,
    ),
    (
        "endpoints-with-istio",
        "routes",
        _spec(
            flavor="istio",
            services=[{"host": "httpbin.org", "ports": [HTTP_PORT], "endpoints": ["203.0.113.10"]}],
        ),
        "services[0].endpoints",
        ["203.0.113.10"],
    ),
    (
        "endpoints-not-a-list",
        "routes",
        _with_service(endpoints="203.0.113.10"),
        "services[0].endpoints",
        "203.0.113.10",
    ),
    (
        "endpoint-not-a-string",
        "routes",
        _with_service(endpoints=[42]),
        "services[0].endpoints[0]",
        42,
    ),
    (
        "endpoint-wildcard",
        "routes",
        _with_service(endpoints=["*.example.net"]),
        "services[0].endpoints[0]",
        "*.example.net",
    ),
    (
        "endpoint-cidr",
        "routes",
        _with_service(endpoints=["10.0.0.0/8"]),
        "services[0].endpoints[0]",
        "10.0.0.0/8",
    ),
    (
        "endpoint-with-port",
        "routes",
        _with_service(endpoints=["edge.example.net:443"]),
        "services[0].endpoints[0]",
        "edge.example.net:443",
    ),
    (
        "endpoint-duplicate",
        "routes",
        _with_service(endpoints=["203.0.113.10", "203.0.113.10"]),
        "services[0].endpoints[1]",
        "203.0.113.10",
    ),
    (
        "endpoint-names-too-long",
        "routes",
        _with_service(name="x." + "b" * 63, endpoints=["203.0.113.10"]),
        "services[0].name",
        "x." + "b" * 63,
    ),
]


def _gateway(**gateway: Any) -> dict[str, Any]:
    return _spec(gateway=gateway)


def _lockdown(**lockdown: Any) -> dict[str, Any]:
    return _spec(lockdown={"namespaces": ["bookinfo"], **lockdown})


def _outbound(**outbound: Any) -> dict[str, Any]:
    return _spec(outbound_policy=outbound)


def _services_after_an_invalid_one() -> dict[str, Any]:
    spec = _spec()
    spec["services"].insert(0, {"host": None, "ports": [HTTPBIN_PORT]})
    spec["services"].append(copy.deepcopy(spec["services"][1]))
    return spec


LONG_NAME = "a" * 64
LONG_SUBDOMAIN = ".".join(["a" * 63] * 4)  # 255 characters
SERVICE_PORT = {"name": "http", "port": 80}

# every other error branch, with its whole text in MESSAGES
INVALID += [
    ("name-invalid", "routes", _spec(name="Egress"), "name", "Egress"),
    ("adopt-not-bool", "routes", _spec(adopt="yes"), "adopt", "yes"),
    ("revision-not-string", "gateway", _spec(revision=5), "revision", 5),
    ("trust-domain-not-string", "access", _spec(trust_domain=5), "trust_domain", 5),
    ("host-wildcard-alone", "routes", _with_service(host="*"), "services[0].host", "*"),
    (
        "service-not-mapping",
        "routes",
        _spec(services=["httpbin.org"]),
        "services[0]",
        "httpbin.org",
    ),
    (
        "access-policy-name-invalid",
        "access",
        _with_service(access_policy_name="Policy"),
        "services[0].access_policy_name",
        "Policy",
    ),
    (
        "duplicate-host-after-an-invalid-service",
        "routes",
        _services_after_an_invalid_one(),
        "services[2].host",
        "httpbin.org",
    ),
    ("ports-not-list", "routes", _with_service(ports="443"), "services[0].ports", "443"),
    ("port-not-mapping", "routes", _with_service(ports=[443]), "services[0].ports[0]", 443),
    ("port-number-missing", "routes", _with_port(number=None), "services[0].ports[0].number", None),
    ("port-number-65536", "routes", _with_port(number=65536), "services[0].ports[0].number", 65536),
    (
        "port-protocol-missing",
        "routes",
        _with_port(protocol=None),
        "services[0].ports[0].protocol",
        None,
    ),
    ("port-name-invalid", "routes", _with_port(name="HTTPS"), "services[0].ports[0].name", "HTTPS"),
    (
        "via-gateway-not-bool",
        "routes",
        _with_port(via_gateway="yes"),
        "services[0].ports[0].via_gateway",
        "yes",
    ),
    (
        "client-port-reserved",
        "routes",
        _with_port(client_port=15001),
        "services[0].ports[0].client_port",
        15001,
    ),
    (
        "sni-with-port",
        "routes",
        _with_port(sni="httpbin.org:443"),
        "services[0].ports[0].sni",
        "httpbin.org:443",
    ),
    (
        "duplicate-port-number",
        "routes",
        _with_service(ports=[HTTPBIN_PORT, {**HTTPBIN_PORT, "name": "other", "client_port": 81}]),
        "services[0].ports[1].number",
        443,
    ),
    (
        "client-not-mapping",
        "access",
        _with_service(clients=["bookinfo"]),
        "services[0].clients[0]",
        "bookinfo",
    ),
    (
        "client-cluster-invalid",
        "access",
        _with_client(namespace="bookinfo", service_account="sa", cluster="Cluster"),
        "services[0].clients[0].cluster",
        "Cluster",
    ),
    (
        "client-labels-empty",
        "access",
        _with_client(namespace="bookinfo", labels={}),
        "services[0].clients[0].labels",
        {},
    ),
    ("gateway-not-mapping", "gateway", _spec(gateway="istio-egress"), "gateway", "istio-egress"),
    ("gateway-name-too-long", "gateway", _gateway(name=LONG_NAME), "gateway.name", LONG_NAME),
    (
        "gateway-virtual-gateway-name",
        "routes",
        _gateway(virtual_gateway_name="VG"),
        "gateway.virtual_gateway_name",
        "VG",
    ),
    (
        "gateway-istio-gateway-name-too-long",
        "routes",
        _gateway(istio_gateway_name=LONG_SUBDOMAIN),
        "gateway.istio_gateway_name",
        LONG_SUBDOMAIN,
    ),
    (
        "gateway-listener-port-reserved",
        "gateway",
        _gateway(listener_port=15021),
        "gateway.listener_port",
        15021,
    ),
    (
        "gateway-selector-bad-key",
        "gateway",
        _gateway(selector={"bad key": "x"}),
        "gateway.selector.bad key",
        "bad key",
    ),
    (
        "gateway-selector-bad-prefix",
        "gateway",
        _gateway(selector={"Bad_Prefix/app": "x"}),
        "gateway.selector.Bad_Prefix/app",
        "Bad_Prefix/app",
    ),
    (
        "gateway-selector-key-not-text",
        "gateway",
        _gateway(selector={1: "a", "b": "c"}),
        "gateway.selector.1",
        1,
    ),
    (
        "gateway-selector-value-too-long",
        "gateway",
        _gateway(selector={"app": LONG_NAME}),
        "gateway.selector.app",
        LONG_NAME,
    ),
    ("gateway-chart-ref-empty", "gateway", _gateway(chart_ref=""), "gateway.chart_ref", ""),
    (
        "gateway-chart-version-number",
        "gateway",
        _gateway(chart_version=1.2),
        "gateway.chart_version",
        1.2,
    ),
    ("gateway-image-hub-not-string", "gateway", _gateway(image_hub=5), "gateway.image_hub", 5),
    ("gateway-replicas-1001", "gateway", _gateway(replicas=1001), "gateway.replicas", 1001),
    (
        "gateway-resources-not-mapping",
        "gateway",
        _gateway(resources="big"),
        "gateway.resources",
        "big",
    ),
    (
        "gateway-service-ports-not-list",
        "gateway",
        _gateway(service_ports="80"),
        "gateway.service_ports",
        "80",
    ),
    (
        "gateway-service-ports-duplicate",
        "gateway",
        _gateway(service_ports=[SERVICE_PORT, SERVICE_PORT]),
        "gateway.service_ports[1].port",
        80,
    ),
    (
        "gateway-service-port-target-and-node-port",
        "gateway",
        _gateway(service_ports=[{**SERVICE_PORT, "targetPort": 0, "nodePort": 70000}]),
        "gateway.service_ports[0].targetPort",
        0,
    ),
    (
        "gateway-service-port-protocol",
        "gateway",
        _gateway(service_ports=[{**SERVICE_PORT, "protocol": "ICMP"}]),
        "gateway.service_ports[0].protocol",
        "ICMP",
    ),
    (
        "gateway-service-port-unknown-key",
        "gateway",
        _gateway(service_ports=[{**SERVICE_PORT, "target": 80}]),
        "gateway.service_ports[0].target",
        80,
    ),
    (
        "gateway-node-selector-value",
        "gateway",
        _gateway(node_selector={"pool": 5}),
        "gateway.node_selector.pool",
        5,
    ),
    (
        "gateway-tolerations-not-list",
        "gateway",
        _gateway(tolerations="x"),
        "gateway.tolerations",
        "x",
    ),
    (
        "gateway-toleration-not-mapping",
        "gateway",
        _gateway(tolerations=["x"]),
        "gateway.tolerations[0]",
        "x",
    ),
    (
        "gateway-dedicated-nodes-duplicate",
        "gateway",
        _gateway(dedicated_nodes=["node-1", "node-1"]),
        "gateway.dedicated_nodes[1]",
        "node-1",
    ),
    (
        "gateway-dedicated-node-invalid",
        "gateway",
        _gateway(dedicated_nodes=["Node_1"]),
        "gateway.dedicated_nodes[0]",
        "Node_1",
    ),
    (
        "gateway-node-label-invalid",
        "gateway",
        _gateway(node_label="bad label"),
        "gateway.node_label",
        "bad label",
    ),
    (
        "gateway-taint-nodes-not-bool",
        "gateway",
        _gateway(taint_nodes="yes"),
        "gateway.taint_nodes",
        "yes",
    ),
    ("gateway-access-log-not-bool", "gateway", _gateway(access_log=1), "gateway.access_log", 1),
    ("gateway-atomic-not-bool", "gateway", _gateway(atomic="no"), "gateway.atomic", "no"),
    ("gateway-wait-timeout-0", "gateway", _gateway(wait_timeout=0), "gateway.wait_timeout", 0),
    (
        "gateway-wait-timeout-3601",
        "gateway",
        _gateway(wait_timeout=3601),
        "gateway.wait_timeout",
        3601,
    ),
    (
        "outbound-not-mapping",
        "outbound_policy",
        _spec(outbound_policy="mesh"),
        "outbound_policy",
        "mesh",
    ),
    (
        "outbound-method",
        "outbound_policy",
        _outbound(method="operator"),
        "outbound_policy.method",
        "operator",
    ),
    (
        "outbound-root-namespace",
        "outbound_policy",
        _outbound(root_namespace="Istio"),
        "outbound_policy.root_namespace",
        "Istio",
    ),
    (
        "outbound-istiod-helm-per-namespace",
        "outbound_policy",
        _outbound(method="istiod_helm", scope="namespaces", namespaces=["bookinfo"]),
        "outbound_policy.scope",
        "namespaces",
    ),
    (
        "outbound-istiod-release",
        "outbound_policy",
        _outbound(
            istiod={
                "release": "Istiod",
                "namespace": "Istio",
                "chart_ref": "",
                "chart_repo_url": 5,
                "chart_version": 1.23,
            }
        ),
        "outbound_policy.istiod.release",
        "Istiod",
    ),
    (
        "outbound-istiod-unknown-key",
        "outbound_policy",
        _outbound(istiod={"version": "1.23"}),
        "outbound_policy.istiod.version",
        "1.23",
    ),
    ("lockdown-not-mapping", "lockdown", _spec(lockdown=["bookinfo"]), "lockdown", ["bookinfo"]),
    (
        "lockdown-protected-namespace",
        "lockdown",
        _lockdown(namespaces=["bookinfo", "kube-system"]),
        "lockdown.namespaces[1]",
        "kube-system",
    ),
    (
        "lockdown-mesh-root-namespace",
        "lockdown",
        _spec(
            lockdown={"namespaces": ["mesh-root"]},
            outbound_policy={"root_namespace": "mesh-root"},
        ),
        "lockdown.namespaces[0]",
        "mesh-root",
    ),
    (
        "lockdown-label-namespaces-not-bool",
        "lockdown",
        _lockdown(label_namespaces="yes"),
        "lockdown.label_namespaces",
        "yes",
    ),
    (
        "lockdown-dns",
        "lockdown",
        _lockdown(
            dns={
                "namespace": "DNS",
                "ip_blocks": ["10.0.0.1/8", 5, "fd00::/8"],
                "ports": [{"port": 0}, {"port": 53, "protocol": "ICMP"}, {"number": 53}],
            }
        ),
        "lockdown.dns.ip_blocks[0]",
        "10.0.0.1/8",
    ),
    ("lockdown-dns-unknown-key", "lockdown", _lockdown(dns={"pods": {}}), "lockdown.dns.pods", {}),
    (
        "lockdown-istiod-ports-not-list",
        "lockdown",
        _lockdown(istiod={"ports": 15012}),
        "lockdown.istiod.ports",
        15012,
    ),
    (
        "lockdown-allow-not-list",
        "lockdown",
        _lockdown(allow={"namespace": "db"}),
        "lockdown.allow",
        {"namespace": "db"},
    ),
    (
        "lockdown-allow-entry",
        "lockdown",
        _lockdown(
            allow=[
                {
                    "namespace": "DB",
                    "pod_selector": {"app": 5},
                    "ip_blocks": ["256.0.0.0/8"],
                    "ports": [{"port": 5432, "proto": "TCP"}],
                }
            ]
        ),
        "lockdown.allow[0].namespace",
        "DB",
    ),
]


def _two_invalid_hosts() -> dict[str, Any]:
    spec = _with_service(host="HTTPBIN.org")
    spec["services"].append({"host": "Other.org", "ports": [HTTPBIN_PORT]})
    return spec


SUBDOMAIN_254 = ".".join(["a" * 63] * 3 + ["a" * 62])
HTTP_8080 = {"number": 8080, "protocol": "HTTP"}

# second round: the error branches the first round left without a test
INVALID += [
    ("top-key-not-text", "routes", {**_spec(), 1: "x"}, "1", "x"),
    (
        "two-invalid-hosts",
        "routes",
        _two_invalid_hosts(),
        "services[0].host",
        "HTTPBIN.org",
    ),
    ("ports-empty", "routes", _with_service(ports=[]), "services[0].ports", []),
    (
        "same-number-same-client-port",
        "routes",
        _with_service(ports=[HTTP_8080, {**HTTP_8080, "name": "other"}], clients=None),
        "services[0].ports[1].client_port",
        8080,
    ),
    (
        "origination-on-http-with-sni",
        "routes",
        _with_port(protocol="HTTP", tls_origination=True, sni="httpbin.org"),
        "services[0].ports[0].tls_origination",
        True,
    ),
    ("sni-not-a-string", "routes", _with_port(sni=5), "services[0].ports[0].sni", 5),
    (
        "access-policy-name-not-a-string",
        "access",
        _with_service(access_policy_name=5),
        "services[0].access_policy_name",
        5,
    ),
    (
        "client-service-account-invalid",
        "access",
        _with_client(namespace="bookinfo", service_account="SA", labels={"app": "x"}),
        "services[0].clients[0].service_account",
        "SA",
    ),
    (
        "gateway-subdomain-254",
        "routes",
        _gateway(istio_gateway_name=SUBDOMAIN_254),
        "gateway.istio_gateway_name",
        SUBDOMAIN_254,
    ),
    (
        "gateway-subdomain-label-64",
        "routes",
        _gateway(virtual_gateway_name="a" * 64 + ".vg"),
        "gateway.virtual_gateway_name",
        "a" * 64 + ".vg",
    ),
    (
        "gateway-selector-key-64",
        "gateway",
        _gateway(selector={"a" * 64: "x"}),
        "gateway.selector." + "a" * 64,
        "a" * 64,
    ),
    ("gateway-node-label-not-a-string", "gateway", _gateway(node_label=5), "gateway.node_label", 5),
    ("gateway-chart-repo-url", "gateway", _gateway(chart_repo_url=5), "gateway.chart_repo_url", 5),
    ("gateway-values-schema", "gateway", _gateway(values_schema=5), "gateway.values_schema", 5),
    ("gateway-revision", "gateway", _gateway(revision=5), "gateway.revision", 5),
    ("gateway-image-tag", "gateway", _gateway(image_tag=5), "gateway.image_tag", 5),
    (
        "gateway-service-port-without-name",
        "gateway",
        _gateway(service_ports=[{"port": 80}]),
        "gateway.service_ports[0].name",
        None,
    ),
    (
        "istio-wildcard-host",
        "routes",
        _spec(flavor="istio", services=[{"host": "*.example.com", "ports": [HTTPBIN_PORT]}]),
        "services[0].host",
        "*.example.com",
    ),
    (
        "lockdown-ip-blocks-not-list",
        "lockdown",
        _lockdown(dns={"ip_blocks": "10.0.0.0/8"}),
        "lockdown.dns.ip_blocks",
        "10.0.0.0/8",
    ),
]


# The whole error text of each INVALID case: the problem, its path and the value, every line.
MESSAGES: dict[str, str] = {
    "unknown-flavor": "flavor: must be one of gloo, istio (got 'linkerd')",
    "unknown-top-key": (
        "servces: unknown key (allowed: name, flavor, cluster, trust_domain, revision, "
        "services_namespace, adopt, gateway, services, outbound_policy, lockdown, verify) (got "
        "[])"
    ),
    "cluster-not-a-name": (
        "cluster: must be an RFC 1123 subdomain (lowercase labels joined by '.', at most 253) "
        "(got 'Cluster_1')"
    ),
    "services-not-a-list": "services: must be a list (got {'host': 'a.com'})",
    "services-empty": "services: must list at least one external service (got [])",
    "host-missing": "services[0].host: is required (got None)",
    "host-not-a-string": "services[0].host: must be a non-empty string (got 42)",
    "host-with-scheme": (
        "services[0].host: must be a host name without a scheme (got 'https://httpbin.org')"
    ),
    "host-with-port": (
        "services[0].host: must be a host name without a port (got 'httpbin.org:443')"
    ),
    "host-with-path": (
        "services[0].host: must be a host name without a path (got 'httpbin.org/get')"
    ),
    "host-double-wildcard": (
        "services[0].host: may only use '*' as its whole first label ('*.example.com') (got "
        "'*.*.example.com')"
    ),
    "host-inner-wildcard": (
        "services[0].host: may only use '*' as its whole first label ('*.example.com') (got "
        "'api.*.example.com')"
    ),
    "host-empty-label": "services[0].host: must not contain an empty label (got 'httpbin..org')",
    "host-label-too-long": (
        "services[0].host: labels must be at most 63 characters (got "
        "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.org')"
    ),
    "host-too-long": (
        "services[0].host: must be at most 253 characters (got "
        "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.aaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaa.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.aaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa')"
    ),
    "host-uppercase": (
        "services[0].host: labels must be lowercase RFC 1123 (a-z, 0-9, '-', not starting or "
        "ending with '-') (got 'HTTPBIN.org')"
    ),
    "service-unknown-key": (
        "services[0].hosts: unknown key (allowed: host, name, access_policy_name, ports, "
        "clients) (got ['a.com'])"
    ),
    "service-name-invalid": (
        "services[0].name: must be an RFC 1123 subdomain (lowercase labels joined by '.', at "
        "most 253) (got 'Httpbin')"
    ),
    "ports-missing": "services[0].ports: must list at least one port (got None)",
    "port-number-too-big": (
        "services[0].ports[0].number: must be an integer from 1 to 65535 (got 99999)"
    ),
    "port-number-zero": "services[0].ports[0].number: must be an integer from 1 to 65535 (got 0)",
    "port-number-string": (
        "services[0].ports[0].number: must be an integer from 1 to 65535 (got '443')"
    ),
    "port-number-bool": (
        "services[0].ports[0].number: must be an integer from 1 to 65535 (got True)"
    ),
    "port-protocol-unknown": (
        "services[0].ports[0].protocol: must be one of HTTP, HTTPS, TLS, TCP (got 'GRPC')\n"
        "services[0].clients: access restrictions need at least one port with via_gateway: "
        "true (got [{'namespace': 'bookinfo', 'service_account': 'bookinfo-productpage', "
        "'cluster': 'cluster-1', 'labels': None}])"
    ),
    "port-protocol-lowercase": (
        "services[0].ports[0].protocol: must be one of HTTP, HTTPS, TLS, TCP (got 'https')\n"
        "services[0].clients: access restrictions need at least one port with via_gateway: "
        "true (got [{'namespace': 'bookinfo', 'service_account': 'bookinfo-productpage', "
        "'cluster': 'cluster-1', 'labels': None}])"
    ),
    "port-unknown-key": (
        "services[0].ports[0].protcol: unknown key (allowed: number, protocol, name, "
        "client_port, tls_origination, sni, ca_certificates, via_gateway) (got 'HTTPS')"
    ),
    "client-port-too-big": (
        "services[0].ports[0].client_port: must be an integer from 1 to 65535 (got 70000)"
    ),
    "duplicate-client-port": (
        "services[0].ports[1].client_port: duplicate client_port within one service (got 80)\n"
        "services[0].ports[0].client_port: collides with services[0].ports[1].number (got 80)"
    ),
    "duplicate-port-name": (
        "services[0].ports[1].name: duplicate port name within one service (got 'https')"
    ),
    "tls-origination-on-http": (
        "services[0].ports[0].tls_origination: is only valid for HTTPS ports (got True)"
    ),
    "tls-origination-not-bool": (
        "services[0].ports[0].tls_origination: must be a boolean (got 'yes')"
    ),
    "sni-without-origination": (
        "services[0].ports[0].sni: is only valid with tls_origination: true (got "
        "'httpbin.org')\n"
        "services[0].clients: access restrictions need at least one port with via_gateway: "
        "true (got [{'namespace': 'bookinfo', 'service_account': 'bookinfo-productpage', "
        "'cluster': 'cluster-1', 'labels': None}])"
    ),
    "ca-without-origination": (
        "services[0].ports[0].ca_certificates: is only valid with tls_origination: true (got "
        "'/etc/ssl/ca.pem')\n"
        "services[0].clients: access restrictions need at least one port with via_gateway: "
        "true (got [{'namespace': 'bookinfo', 'service_account': 'bookinfo-productpage', "
        "'cluster': 'cluster-1', 'labels': None}])"
    ),
    "sni-not-a-host": (
        "services[0].ports[0].sni: must be a host name without a scheme (got 'https://x')"
    ),
    "tls-via-gateway": (
        "services[0].ports[0].via_gateway: TLS ports cannot go through the gateway (got True)"
    ),
    "tcp-via-gateway": (
        "services[0].ports[0].via_gateway: TCP ports cannot go through the gateway (got True)"
    ),
    "https-via-gateway-without-origination": (
        "services[0].ports[0].tls_origination: HTTPS through the gateway needs tls_origination "
        "(clients send plain HTTP to client_port); or set via_gateway: false (got False)"
    ),
    "wildcard-not-via-gateway": (
        "services[0].ports[0].via_gateway: a wildcard host must send every port through the "
        "gateway (got False)"
    ),
    "clients-without-gateway-port": (
        "services[0].clients: access restrictions need at least one port with via_gateway: "
        "true (got [{'namespace': 'bookinfo', 'service_account': 'bookinfo-productpage', "
        "'cluster': 'cluster-1', 'labels': None}])"
    ),
    "istio-two-gateway-ports": (
        "services[0].ports[1]: the istio flavor sends at most one port per service through the "
        "gateway (got 8080)"
    ),
    "client-port-collides-with-number": (
        "services[0].ports[1].client_port: collides with services[0].ports[0].number (got 443)"
    ),
    "duplicate-host": "services[1].host: duplicate host (got 'httpbin.org')",
    "duplicate-name": (
        "services[1].name: duplicate name (got 'httpbin.org')\n"
        "services[1].access_policy_name: duplicate access policy name (got "
        "'httpbin.org-access')"
    ),
    "client-without-namespace": "services[0].clients[0].namespace: is required (got None)",
    "client-without-service-account": (
        "services[0].clients[0].service_account: is required (a client needs service_account "
        "or labels) (got None)"
    ),
    "istio-client-without-service-account": (
        "services[0].clients[0].service_account: is required (a client needs service_account) "
        "(got None)"
    ),
    "labels-with-istio": (
        "services[0].clients[0].labels: label selectors are gloo only; use service_account "
        "(got {'account': 'productpage'})"
    ),
    "client-bad-namespace": (
        "services[0].clients[0].namespace: must be an RFC 1123 label (lowercase a-z, 0-9, '-', "
        "at most 63) (got 'Book_Info')"
    ),
    "client-namespace-too-long": (
        "services[0].clients[0].namespace: must be an RFC 1123 label (lowercase a-z, 0-9, '-', "
        "at most 63) (got 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa')"
    ),
    "client-bad-label-value": (
        "services[0].clients[0].labels.account: must be a label value string (at most 63) (got "
        "'has space')\n"
        "services[0].clients[0].service_account: is required (a client needs service_account "
        "or labels) (got None)"
    ),
    "client-unknown-key": (
        "services[0].clients[0].serviceaccount: unknown key (allowed: namespace, "
        "service_account, cluster, labels) (got 'productpage')\n"
        "services[0].clients[0].service_account: is required (a client needs service_account "
        "or labels) (got None)"
    ),
    "clients-not-a-list": "services[0].clients: must be a list (got 'bookinfo')",
    "services-namespace-invalid": (
        "services_namespace: must be an RFC 1123 label (lowercase a-z, 0-9, '-', at most 63) "
        "(got 'Global')"
    ),
    "gateway-namespace-invalid": (
        "gateway.namespace: must be an RFC 1123 label (lowercase a-z, 0-9, '-', at most 63) "
        "(got 'istio.egress')"
    ),
    "gateway-unknown-key": (
        "gateway.namespce: unknown key (allowed: namespace, name, selector, listener_port, "
        "virtual_gateway_name, istio_gateway_name, chart_ref, chart_repo_url, chart_version, "
        "values_schema, revision, image_hub, image_tag, replicas, resources, service_type, "
        "service_ports, node_selector, tolerations, dedicated_nodes, node_label, taint_nodes, "
        "access_log, atomic, wait_timeout, extra_values) (got 'istio-egress')"
    ),
    "gateway-listener-port": "gateway.listener_port: must be an integer from 1 to 65535 (got 0)",
    "gateway-empty-selector": (
        "gateway.selector: must be a non-empty mapping of label names to string values (got {})"
    ),
    "gateway-selector-value": (
        "gateway.selector.istio: must be a label value string (at most 63) (got 5)"
    ),
    "gateway-replicas-zero": "gateway.replicas: must be an integer from 1 to 1000 (got 0)",
    "gateway-service-type": (
        "gateway.service_type: must be one of ClusterIP, NodePort, LoadBalancer (got 'External')"
    ),
    "gateway-service-port": (
        "gateway.service_ports[0].port: must be an integer from 1 to 65535 (got 0)"
    ),
    "gateway-extra-values-not-dict": "gateway.extra_values: must be a mapping (got ['x'])",
    "outbound-mode": "outbound_policy.mode: must be one of REGISTRY_ONLY, ALLOW_ANY (got 'DENY')",
    "outbound-scope": "outbound_policy.scope: must be one of mesh, namespaces (got 'cluster')",
    "outbound-scope-namespaces-empty": (
        "outbound_policy.namespaces: must list namespaces when scope is namespaces (got [])"
    ),
    "outbound-namespaces-with-mesh": (
        "outbound_policy.namespaces: is only used with scope: namespaces (got ['bookinfo'])"
    ),
    "outbound-bad-namespace": (
        "outbound_policy.namespaces[0]: must be an RFC 1123 label (lowercase a-z, 0-9, '-', at "
        "most 63) (got 'book info')\n"
        "outbound_policy.namespaces: must list namespaces when scope is namespaces (got [])"
    ),
    "outbound-unknown-key": (
        "outbound_policy.mod: unknown key (allowed: mode, scope, root_namespace, namespaces, "
        "method, istiod) (got 'ALLOW_ANY')"
    ),
    "lockdown-namespaces-not-list": "lockdown.namespaces: must be a list (got 'bookinfo')",
    "lockdown-duplicate-namespace": "lockdown.namespaces[1]: duplicate name (got 'bookinfo')",
    "lockdown-gateway-namespace": (
        "lockdown.namespaces: must not include the gateway namespace (it gets its own "
        "policies) (got 'istio-egress')"
    ),
    "lockdown-allow-without-namespace": (
        "lockdown.allow[0]: needs a namespace or ip_blocks (got {'ports': []})"
    ),
    "lockdown-allow-bad-port": (
        "lockdown.allow[0].ports[0].port: must be an integer from 1 to 65535 (got 70000)"
    ),
    "lockdown-allow-bad-protocol": (
        "lockdown.allow[0].ports[0].protocol: must be one of TCP, UDP, SCTP (got 'ICMP')"
    ),
    "lockdown-dns-selector": (
        "lockdown.dns.pod_selector: must be a non-empty mapping of label names to string "
        "values (got 'kube-dns')"
    ),
    "lockdown-unknown-key": (
        "lockdown.namespace: unknown key (allowed: namespaces, dns, istiod, allow, "
        "label_namespaces) (got ['bookinfo'])"
    ),
    "trust-domain": (
        "trust_domain: must be a domain name (letters, digits, '.', '-', '_') (got 'cluster local')"
    ),
    "revision": "revision: must be a label value (the istio.io/rev label) (got '1-23/x')",
    "name-invalid": (
        "name: must be an RFC 1123 label (lowercase a-z, 0-9, '-', at most 63) (got 'Egress')"
    ),
    "adopt-not-bool": "adopt: must be a boolean (got 'yes')",
    "revision-not-string": "revision: must be a non-empty string (got 5)",
    "trust-domain-not-string": "trust_domain: must be a non-empty string (got 5)",
    "host-wildcard-alone": "services[0].host: a wildcard host needs a domain after '*.' (got '*')",
    "service-not-mapping": "services[0]: must be a mapping (got 'httpbin.org')",
    "access-policy-name-invalid": (
        "services[0].access_policy_name: must be an RFC 1123 subdomain (lowercase labels "
        "joined by '.', at most 253) (got 'Policy')"
    ),
    "duplicate-host-after-an-invalid-service": (
        "services[0].host: is required (got None)\n"
        "services[2].host: duplicate host (got 'httpbin.org')\n"
        "services[2].name: duplicate name (got 'httpbin.org')\n"
        "services[2].access_policy_name: duplicate access policy name (got "
        "'httpbin.org-access')"
    ),
    "ports-not-list": "services[0].ports: must be a list (got '443')",
    "port-not-mapping": (
        "services[0].ports[0]: must be a mapping (got 443)\n"
        "services[0].ports[0].number: is required (an integer from 1 to 65535) (got None)\n"
        "services[0].ports[0].protocol: must be one of HTTP, HTTPS, TLS, TCP (got None)\n"
        "services[0].clients: access restrictions need at least one port with via_gateway: "
        "true (got [{'namespace': 'bookinfo', 'service_account': 'bookinfo-productpage', "
        "'cluster': 'cluster-1', 'labels': None}])"
    ),
    "port-number-missing": (
        "services[0].ports[0].number: is required (an integer from 1 to 65535) (got None)"
    ),
    "port-number-65536": (
        "services[0].ports[0].number: must be an integer from 1 to 65535 (got 65536)"
    ),
    "port-protocol-missing": (
        "services[0].ports[0].protocol: must be one of HTTP, HTTPS, TLS, TCP (got None)\n"
        "services[0].clients: access restrictions need at least one port with via_gateway: "
        "true (got [{'namespace': 'bookinfo', 'service_account': 'bookinfo-productpage', "
        "'cluster': 'cluster-1', 'labels': None}])"
    ),
    "port-name-invalid": (
        "services[0].ports[0].name: must be an RFC 1123 label (lowercase a-z, 0-9, '-', at "
        "most 63) (got 'HTTPS')"
    ),
    "via-gateway-not-bool": "services[0].ports[0].via_gateway: must be a boolean (got 'yes')",
    "client-port-reserved": (
        "services[0].ports[0].client_port: is one of Istio's reserved proxy ports "
        "(15000-15090) (got 15001)"
    ),
    "sni-with-port": (
        "services[0].ports[0].sni: must be a host name without a port (got 'httpbin.org:443')"
    ),
    "duplicate-port-number": (
        "services[0].ports[1].number: duplicate port number within one service (got 443)"
    ),
    "client-not-mapping": (
        "services[0].clients[0]: must be a mapping (got 'bookinfo')\n"
        "services[0].clients[0].namespace: is required (got None)\n"
        "services[0].clients[0].service_account: is required (a client needs service_account "
        "or labels) (got None)"
    ),
    "client-cluster-invalid": (
        "services[0].clients[0].cluster: must be an RFC 1123 subdomain (lowercase labels "
        "joined by '.', at most 253) (got 'Cluster')"
    ),
    "client-labels-empty": (
        "services[0].clients[0].labels: must be a non-empty mapping of label names to string "
        "values (got {})\n"
        "services[0].clients[0].service_account: is required (a client needs service_account "
        "or labels) (got None)"
    ),
    "gateway-not-mapping": "gateway: must be a mapping (got 'istio-egress')",
    "gateway-name-too-long": (
        "gateway.name: must be an RFC 1123 label (lowercase a-z, 0-9, '-', at most 63) (got "
        "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa')"
    ),
    "gateway-virtual-gateway-name": (
        "gateway.virtual_gateway_name: must be an RFC 1123 subdomain (lowercase labels joined "
        "by '.', at most 253) (got 'VG')"
    ),
    "gateway-istio-gateway-name-too-long": (
        "gateway.istio_gateway_name: must be an RFC 1123 subdomain (lowercase labels joined by "
        "'.', at most 253) (got "
        "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.aaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaaaaa.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaa')"
    ),
    "gateway-listener-port-reserved": (
        "gateway.listener_port: is one of Istio's reserved proxy ports (15000-15090) (got 15021)"
    ),
    "gateway-selector-bad-key": (
        "gateway.selector.bad key: is not a valid label name (got 'bad key')"
    ),
    "gateway-selector-bad-prefix": (
        "gateway.selector.Bad_Prefix/app: is not a valid label name (got 'Bad_Prefix/app')"
    ),
    "gateway-selector-key-not-text": "gateway.selector.1: is not a valid label name (got 1)",
    "gateway-selector-value-too-long": (
        "gateway.selector.app: must be a label value string (at most 63) (got "
        "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa')"
    ),
    "gateway-chart-ref-empty": "gateway.chart_ref: must be a non-empty string (got '')",
    "gateway-chart-version-number": (
        "gateway.chart_version: must be a string (quote it: YAML reads 1.20 as a number) (got 1.2)"
    ),
    "gateway-image-hub-not-string": "gateway.image_hub: must be a non-empty string (got 5)",
    "gateway-replicas-1001": "gateway.replicas: must be an integer from 1 to 1000 (got 1001)",
    "gateway-resources-not-mapping": "gateway.resources: must be a mapping (got 'big')",
    "gateway-service-ports-not-list": "gateway.service_ports: must be a list (got '80')",
    "gateway-service-ports-duplicate": (
        "gateway.service_ports[1].port: duplicate port (got 80)\n"
        "gateway.service_ports[1].name: duplicate name (got 'http')"
    ),
    "gateway-service-port-target-and-node-port": (
        "gateway.service_ports[0].targetPort: must be an integer from 1 to 65535 (got 0)\n"
        "gateway.service_ports[0].nodePort: must be an integer from 1 to 65535 (got 70000)"
    ),
    "gateway-service-port-protocol": (
        "gateway.service_ports[0].protocol: must be one of TCP, UDP, SCTP (got 'ICMP')"
    ),
    "gateway-service-port-unknown-key": (
        "gateway.service_ports[0].target: unknown key (allowed: name, port, protocol, "
        "targetPort, nodePort) (got 80)"
    ),
    "gateway-node-selector-value": (
        "gateway.node_selector.pool: must be a label value string (at most 63) (got 5)"
    ),
    "gateway-tolerations-not-list": "gateway.tolerations: must be a list (got 'x')",
    "gateway-toleration-not-mapping": (
        "gateway.tolerations[0]: must be a mapping (a Kubernetes toleration) (got 'x')"
    ),
    "gateway-dedicated-nodes-duplicate": (
        "gateway.dedicated_nodes[1]: duplicate name (got 'node-1')"
    ),
    "gateway-dedicated-node-invalid": (
        "gateway.dedicated_nodes[0]: must be an RFC 1123 subdomain (lowercase labels joined by "
        "'.', at most 253) (got 'Node_1')"
    ),
    "gateway-node-label-invalid": "gateway.node_label: is not a valid label name (got 'bad label')",
    "gateway-taint-nodes-not-bool": "gateway.taint_nodes: must be a boolean (got 'yes')",
    "gateway-access-log-not-bool": "gateway.access_log: must be a boolean (got 1)",
    "gateway-atomic-not-bool": "gateway.atomic: must be a boolean (got 'no')",
    "gateway-wait-timeout-0": "gateway.wait_timeout: must be an integer from 1 to 3600 (got 0)",
    "gateway-wait-timeout-3601": (
        "gateway.wait_timeout: must be an integer from 1 to 3600 (got 3601)"
    ),
    "outbound-not-mapping": "outbound_policy: must be a mapping (got 'mesh')",
    "outbound-method": (
        "outbound_policy.method: must be one of sidecar, istiod_helm (got 'operator')"
    ),
    "outbound-root-namespace": (
        "outbound_policy.root_namespace: must be an RFC 1123 label (lowercase a-z, 0-9, '-', "
        "at most 63) (got 'Istio')"
    ),
    "outbound-istiod-helm-per-namespace": (
        "outbound_policy.scope: the istiod_helm method sets the mesh-wide policy only; use "
        "method: sidecar (got 'namespaces')"
    ),
    "outbound-istiod-release": (
        "outbound_policy.istiod.release: must be an RFC 1123 label (lowercase a-z, 0-9, '-', "
        "at most 63) (got 'Istiod')\n"
        "outbound_policy.istiod.namespace: must be an RFC 1123 label (lowercase a-z, 0-9, '-', "
        "at most 63) (got 'Istio')\n"
        "outbound_policy.istiod.chart_ref: must be a non-empty string (got '')\n"
        "outbound_policy.istiod.chart_repo_url: must be a non-empty string (got 5)\n"
        "outbound_policy.istiod.chart_version: must be a string (quote it: YAML reads 1.20 as "
        "a number) (got 1.23)"
    ),
    "outbound-istiod-unknown-key": (
        "outbound_policy.istiod.version: unknown key (allowed: release, namespace, chart_ref, "
        "chart_repo_url, chart_version) (got '1.23')"
    ),
    "lockdown-not-mapping": "lockdown: must be a mapping (got ['bookinfo'])",
    "lockdown-protected-namespace": (
        "lockdown.namespaces[1]: must not lock down a cluster or mesh control-plane namespace "
        "(istio-system, kube-node-lease, kube-public, kube-system) (got 'kube-system')"
    ),
    "lockdown-mesh-root-namespace": (
        "lockdown.namespaces[0]: must not lock down a cluster or mesh control-plane namespace "
        "(istio-system, kube-node-lease, kube-public, kube-system, mesh-root) (got 'mesh-root')"
    ),
    "lockdown-label-namespaces-not-bool": (
        "lockdown.label_namespaces: must be a boolean (got 'yes')"
    ),
    "lockdown-dns": (
        "lockdown.dns.ports[0].port: must be an integer from 1 to 65535 (got 0)\n"
        "lockdown.dns.ports[1].protocol: must be one of TCP, UDP, SCTP (got 'ICMP')\n"
        "lockdown.dns.ports[2].number: unknown key (allowed: port, protocol) (got 53)\n"
        "lockdown.dns.ports[2].port: is required (an integer from 1 to 65535) (got None)\n"
        "lockdown.dns.namespace: must be an RFC 1123 label (lowercase a-z, 0-9, '-', at most "
        "63) (got 'DNS')\n"
        "lockdown.dns.ip_blocks[0]: must be a CIDR (for example 169.254.20.10/32) (got "
        "'10.0.0.1/8')\n"
        "lockdown.dns.ip_blocks[1]: must be a CIDR (for example 169.254.20.10/32) (got 5)"
    ),
    "lockdown-dns-unknown-key": (
        "lockdown.dns.pods: unknown key (allowed: namespace, pod_selector, ip_blocks, ports) "
        "(got {})"
    ),
    "lockdown-istiod-ports-not-list": "lockdown.istiod.ports: must be a list (got 15012)",
    "lockdown-allow-not-list": "lockdown.allow: must be a list (got {'namespace': 'db'})",
    "lockdown-allow-entry": (
        "lockdown.allow[0].namespace: must be an RFC 1123 label (lowercase a-z, 0-9, '-', at "
        "most 63) (got 'DB')\n"
        "lockdown.allow[0].pod_selector.app: must be a label value string (at most 63) (got "
        "5)\n"
        "lockdown.allow[0].ip_blocks[0]: must be a CIDR (for example 169.254.20.10/32) (got "
        "'256.0.0.0/8')\n"
        "lockdown.allow[0].ports[0].proto: unknown key (allowed: port, protocol) (got 'TCP')\n"
        "lockdown.allow[0]: needs a namespace or ip_blocks (got {'namespace': 'DB', "
        "'pod_selector': {'app': 5}, 'ip_blocks': ['256.0.0.0/8'], 'ports': [{'port': 5432, "
        "'proto': 'TCP'}]})"
    ),
    "top-key-not-text": (
        "1: unknown key (allowed: name, flavor, cluster, trust_domain, revision, "
        "services_namespace, adopt, gateway, services, outbound_policy, lockdown, verify) (got "
        "'x')"
    ),
    "two-invalid-hosts": (
        "services[0].host: labels must be lowercase RFC 1123 (a-z, 0-9, '-', not starting or "
        "ending with '-') (got 'HTTPBIN.org')\n"
        "services[1].host: labels must be lowercase RFC 1123 (a-z, 0-9, '-', not starting or "
        "ending with '-') (got 'Other.org')"
    ),
    "ports-empty": "services[0].ports: must list at least one port (got [])",
    "same-number-same-client-port": (
        "services[0].ports[1].client_port: duplicate client_port within one service (got "
        "8080)\n"
        "services[0].ports[1].number: duplicate port number within one service (got 8080)"
    ),
    "origination-on-http-with-sni": (
        "services[0].ports[0].tls_origination: is only valid for HTTPS ports (got True)\n"
        "services[0].ports[0].sni: is only valid with tls_origination: true (got 'httpbin.org')"
    ),
    "sni-not-a-string": "services[0].ports[0].sni: must be a non-empty string (got 5)",
    "access-policy-name-not-a-string": (
        "services[0].access_policy_name: must be a non-empty string (got 5)"
    ),
    "client-service-account-invalid": (
        "services[0].clients[0].service_account: must be an RFC 1123 subdomain (lowercase "
        "labels joined by '.', at most 253) (got 'SA')"
    ),
    "gateway-subdomain-254": (
        "gateway.istio_gateway_name: must be an RFC 1123 subdomain (lowercase labels joined by "
        "'.', at most 253) (got "
        "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.aaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaaaaa.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaa')"
    ),
    "gateway-subdomain-label-64": (
        "gateway.virtual_gateway_name: must be an RFC 1123 subdomain (lowercase labels joined "
        "by '.', at most 253) (got "
        "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.vg')"
    ),
    "gateway-selector-key-64": (
        "gateway.selector.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa: is "
        "not a valid label name (got "
        "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa')"
    ),
    "gateway-node-label-not-a-string": "gateway.node_label: must be a non-empty string (got 5)",
    "gateway-chart-repo-url": "gateway.chart_repo_url: must be a non-empty string (got 5)",
    "gateway-values-schema": "gateway.values_schema: must be a non-empty string (got 5)",
    "gateway-revision": "gateway.revision: must be a non-empty string (got 5)",
    "gateway-image-tag": "gateway.image_tag: must be a non-empty string (got 5)",
    "gateway-service-port-without-name": "gateway.service_ports[0].name: is required (got None)",
    "istio-wildcard-host": (
        "services[0].host: the istio flavor cannot route a wildcard host through the egress "
        "gateway (a ServiceEntry with resolution NONE sends the traffic back to the gateway, "
        "and TLS origination needs one SNI); list the concrete hosts, or use flavor gloo (got "
        "'*.example.com')"
    ),
    "lockdown-ip-blocks-not-list": "lockdown.dns.ip_blocks: must be a list (got '10.0.0.0/8')",
}


@pytest.mark.parametrize(
    ("concern", "spec", "path", "value"),
    [case[1:] for case in INVALID],
    ids=[case[0] for case in INVALID],
)
def test_invalid_description_names_path_and_value(
    concern: str, spec: Any, path: str, value: Any
) -> None:
    with pytest.raises(DescriptionError) as caught:
        normalize(copy.deepcopy(spec), concern)
    lines = str(caught.value).splitlines()
    matching = [line for line in lines if line.startswith(f"{path}: ")]
    assert matching, f"no line for {path} in {lines}"
    assert any(line.endswith(f"(got {value!r})") for line in matching), matching
    assert caught.value.field == lines[0].split(": ", 1)[0]


# the cases of the Gloo wildcard/endpoints change (merged beside the table above)
MESSAGES.update(
    {
        "service-unknown-key": (
            "services[0].hosts: unknown key (allowed: host, name, access_policy_name, "
            "endpoints, ports, clients) (got ['a.com'])"
        ),
        "wildcard-not-via-gateway": (
            "services[0].ports[0].via_gateway: a wildcard host must send every port through "
            "the gateway (got False)\n"
            "services[0].host: a wildcard host needs endpoints with the gloo flavor: an "
            "ExternalService that selects no ExternalEndpoints is resolved by DNS, which "
            "cannot resolve a wildcard, so the gateway has no address to send it to; list the "
            "upstream addresses in services[0].endpoints, or list the concrete hosts (got "
            "'*.example.com')"
        ),
        "gloo-wildcard-without-endpoints": (
            "services[0].host: a wildcard host needs endpoints with the gloo flavor: an "
            "ExternalService that selects no ExternalEndpoints is resolved by DNS, which "
            "cannot resolve a wildcard, so the gateway has no address to send it to; list the "
            "upstream addresses in services[0].endpoints, or list the concrete hosts (got "
            "'*.example.com')"
        ),
        "gloo-wildcard-origination-without-sni": (
            "services[0].ports[0].sni: a wildcard host needs an explicit sni to originate TLS: "
            "Gloo presents the ExternalService's single host as SNI, here the wildcard itself, "
            "which is no server name; set the upstream's name (got None)"
        ),
        "endpoints-with-istio": (
            "services[0].endpoints: only the gloo flavor writes endpoints (Gloo "
            "ExternalEndpoints); the istio flavor resolves the host by DNS (got "
            "['203.0.113.10'])"
        ),
        "endpoints-not-a-list": ("services[0].endpoints: must be a list (got '203.0.113.10')"),
        "endpoint-not-a-string": ("services[0].endpoints[0]: must be a non-empty string (got 42)"),
        "endpoint-wildcard": (
            "services[0].endpoints[0]: must be a concrete address (an IP, or an FQDN without a "
            "wildcard): an ExternalEndpoint's address is resolved as it is (got "
            "'*.example.net')"
        ),
        "endpoint-cidr": (
            "services[0].endpoints[0]: must be an IP address or an FQDN: must be a host name "
            "without a path (got '10.0.0.0/8')"
        ),
        "endpoint-with-port": (
            "services[0].endpoints[0]: must be an IP address or an FQDN: must be a host name "
            "without a port (got 'edge.example.net:443')"
        ),
        "endpoint-duplicate": ("services[0].endpoints[1]: duplicate address (got '203.0.113.10')"),
        "endpoint-names-too-long": (
            "services[0].access_policy_name: must be an RFC 1123 subdomain (lowercase labels "
            "joined by '.', at most 253) (got None)\n"
            "services[0].name: is too long for its ExternalEndpoint names "
            "('x.bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-1' is not an "
            "RFC 1123 subdomain); set a shorter name (got "
            "'x.bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb')"
        ),
    }
)


@pytest.mark.parametrize(
    ("concern", "spec", "message"),
    [(case[1], case[2], MESSAGES.get(case[0], "")) for case in INVALID],
    ids=[case[0] for case in INVALID],
)
def test_invalid_description_whole_error_text(concern: str, spec: Any, message: str) -> None:
    """What the user reads: every line of the error, word for word."""
    with pytest.raises(DescriptionError) as caught:
        normalize(copy.deepcopy(spec), concern)
    assert str(caught.value) == message


def test_every_invalid_case_has_its_error_text() -> None:
    assert sorted(MESSAGES) == sorted(case[0] for case in INVALID)


def test_all_problems_are_reported_together() -> None:
    spec = _spec(flavor="x")
    spec["services"][0]["ports"][0]["number"] = 99999
    with pytest.raises(DescriptionError) as caught:
        normalize(spec, "routes")
    assert str(caught.value).splitlines() == [
        "flavor: must be one of gloo, istio (got 'x')",
        "services[0].ports[0].number: must be an integer from 1 to 65535 (got 99999)",
    ]
    assert caught.value.field == "flavor"
    assert caught.value.value == "x"
    assert [error[0] for error in caught.value.errors] == [
        "flavor",
        "services[0].ports[0].number",
    ]


def test_every_bad_endpoint_is_reported_not_only_the_first() -> None:
    spec = _with_service(endpoints=[42, "*.example.net", "203.0.113.10", "203.0.113.10"])
    with pytest.raises(DescriptionError) as caught:
        normalize(spec, "routes")
    assert [(path, value) for path, _problem, value in caught.value.errors] == [
        ("services[0].endpoints[0]", 42),
        ("services[0].endpoints[1]", "*.example.net"),
        ("services[0].endpoints[3]", "203.0.113.10"),
    ]


def test_error_text_matches_design_example() -> None:
    spec = _with_service(ports=[HTTPBIN_PORT, {"number": 99999, "protocol": "HTTP"}])
    with pytest.raises(
        DescriptionError,
        match=r"^services\[0\]\.ports\[1\]\.number: must be an "
        r"integer from 1 to 65535 \(got 99999\)$",
    ):
        normalize(spec, "routes")


def test_unknown_concern_and_non_mapping_spec() -> None:
    with pytest.raises(DescriptionError, match=r"^concern: .* \(got 'firewall'\)$"):
        normalize(_spec(), "firewall")
    with pytest.raises(DescriptionError, match=r"^spec: must be a mapping \(got \['x'\]\)$"):
        normalize(["x"], "routes")


# ----------------------------------------------------------------------------- valid cases


def test_defaults_for_the_procedure_example() -> None:
    spec = normalize(_spec(), "routes")
    assert spec["flavor"] == "gloo"
    assert spec["services_namespace"] == "global"
    assert spec["revision"] is None  # unrevisioned mesh unless set
    gateway = spec["gateway"]
    assert (gateway["namespace"], gateway["name"]) == ("istio-egress", "istio-egressgateway")
    assert gateway["selector"] == {"istio": "egressgateway"}
    assert gateway["listener_port"] == 443
    assert gateway["virtual_gateway_name"] == "egress-vg"
    assert gateway["istio_gateway_name"] == "meshguard-egress"
    [service] = spec["services"]
    assert service["name"] == "httpbin.org"
    assert service["access_policy_name"] == "httpbin.org-access"
    assert service["ports"] == [
        {
            "number": 443,
            "protocol": "HTTPS",
            "name": "https",
            "client_port": 80,
            "tls_origination": True,
            "sni": None,
            "ca_certificates": None,
            "via_gateway": True,
        }
    ]
    assert service["clients"] == [
        {
            "namespace": "bookinfo",
            "service_account": "bookinfo-productpage",
            "cluster": "cluster-1",
            "labels": None,
        }
    ]


def test_port_defaults_per_protocol() -> None:
    spec = _with_service(
        host="db.example.com",
        clients=None,
        ports=[
            {"number": 8080, "protocol": "HTTP"},
            {"number": 5432, "protocol": "TCP"},
            {"number": 8443, "protocol": "TLS"},
            {"number": 9443, "protocol": "HTTPS", "via_gateway": False, "tls_origination": False},
        ],
    )
    ports = normalize(spec, "routes")["services"][0]["ports"]
    summary = [(p["name"], p["client_port"], p["tls_origination"], p["via_gateway"]) for p in ports]
    assert summary == [
        ("http-8080", 8080, False, True),
        ("tcp-5432", 5432, False, False),
        ("tls-8443", 8443, False, False),
        ("https-9443", 9443, False, False),
    ]


def test_wildcard_host_default_name() -> None:
    spec = _with_service(host="*.example.com", clients=None, endpoints=["203.0.113.10"])
    spec["services"][0]["ports"][0]["sni"] = "edge.example.net"
    service = normalize(spec, "routes")["services"][0]
    assert service["name"] == "wildcard.example.com"
    assert default_object_name("*.com") == "wildcard.com"


def test_gloo_wildcard_with_endpoints_and_sni_is_accepted() -> None:
    spec = _with_service(
        host="*.example.com",
        endpoints=["edge.example.net", "2001:db8::1", "203.0.113.10"],
        ports=[
            {"number": 443, "protocol": "HTTPS", "sni": "edge.example.net", "client_port": 8080},
            HTTP_PORT,
        ],
    )
    service = normalize(spec, "routes")["services"][0]
    assert service["endpoints"] == ["edge.example.net", "2001:db8::1", "203.0.113.10"]
    assert [port["via_gateway"] for port in service["ports"]] == [True, True]
    assert endpoint_names(service) == [
        "wildcard.example.com-1",
        "wildcard.example.com-2",
        "wildcard.example.com-3",
    ]
    # without endpoints the list is empty, and a concrete host needs none
    assert normalize(_spec(), "routes")["services"][0]["endpoints"] == []


def test_gloo_wildcard_refusals_say_why() -> None:
    spec = _with_service(host="*.example.com", clients=None)  # HTTPS, no endpoints, no sni
    with pytest.raises(DescriptionError) as caught:
        normalize(spec, "routes")
    host, sni = str(caught.value).splitlines()
    assert host.startswith("services[0].host: a wildcard host needs endpoints")
    assert "resolved by DNS, which cannot resolve a wildcard" in host
    assert "services[0].endpoints" in host
    assert sni.startswith("services[0].ports[0].sni: a wildcard host needs an explicit sni")
    assert "here the wildcard itself" in sni


def test_clients_none_empty_and_gloo_labels() -> None:
    assert normalize(_with_service(clients=None), "access")["services"][0]["clients"] is None
    assert normalize(_with_service(clients=[]), "access")["services"][0]["clients"] == []
    spec = _with_client(namespace="bookinfo", labels={"account": "productpage"}, cluster="c2")
    [client] = normalize(spec, "access")["services"][0]["clients"]
    assert client == {
        "namespace": "bookinfo",
        "service_account": None,
        "cluster": "c2",
        "labels": {"account": "productpage"},
    }


def test_clients_are_sorted_and_deduplicated() -> None:
    spec = _with_service(
        clients=[
            {"namespace": "reviews", "service_account": "b"},
            {"namespace": "bookinfo", "service_account": "a"},
            {"namespace": "reviews", "service_account": "b"},
        ]
    )
    clients = normalize(spec, "access")["services"][0]["clients"]
    assert [(c["namespace"], c["service_account"]) for c in clients] == [
        ("bookinfo", "a"),
        ("reviews", "b"),
    ]


def test_outbound_policy_defaults_and_namespaces_scope() -> None:
    assert normalize({}, "outbound_policy")["outbound_policy"] == {
        "mode": "REGISTRY_ONLY",
        "scope": "mesh",
        "root_namespace": "istio-system",
        "namespaces": [],
        "method": "sidecar",
        "istiod": {
            "release": "istiod",
            "namespace": "istio-system",
            "chart_ref": "istiod",
            "chart_repo_url": "",
            "chart_version": "",
        },
    }
    policy = normalize(
        {"outbound_policy": {"scope": "namespaces", "namespaces": ["b", "a"], "mode": "ALLOW_ANY"}},
        "outbound_policy",
    )["outbound_policy"]
    assert (policy["namespaces"], policy["mode"]) == (["a", "b"], "ALLOW_ANY")


def test_lockdown_defaults() -> None:
    lockdown = normalize({}, "lockdown")["lockdown"]
    assert lockdown == {
        "namespaces": [],
        "dns": {
            "namespace": "kube-system",
            "pod_selector": {"k8s-app": "kube-dns"},
            "ip_blocks": [],
            "ports": None,
        },
        "istiod": {
            "namespace": "istio-system",
            "pod_selector": {"app": "istiod"},
            "ip_blocks": [],
            "ports": None,
        },
        "allow": [],
        "label_namespaces": True,
    }


def test_concern_reads_only_its_keys() -> None:
    # A broken lockdown section does not block the routes concern, and vice versa.
    spec = _spec(lockdown={"namespaces": "oops"})
    assert set(normalize(spec, "routes")) == {
        "name",
        "adopt",
        "trust_domain",
        "flavor",
        "cluster",
        "revision",
        "services_namespace",
        "gateway",
        "services",
    }
    assert "services" not in normalize({"lockdown": {}, "services": "oops"}, "lockdown")


def test_gateway_revision_falls_back_to_spec_revision() -> None:
    assert normalize(_spec(revision="gloo"), "gateway")["gateway"]["revision"] == "gloo"
    spec = _spec(revision="gloo", gateway={"revision": "1-23"})
    assert normalize(spec, "gateway")["gateway"]["revision"] == "1-23"


def test_normalize_does_not_mutate_input() -> None:
    spec = _spec()
    before = copy.deepcopy(spec)
    normalize(spec, "routes")
    assert spec == before


@pytest.mark.parametrize(
    "host", ["httpbin.org", "*.com", "*.example.com", "a-b.c0.example", "localhost"]
)
def test_valid_hosts(host: str) -> None:
    assert host_problem(host) is None


# ----------------------------------------------------------------------------- boundaries


@pytest.mark.parametrize(
    ("host", "problem"),
    [
        (".".join(["a" * 63] * 3 + ["a" * 61]), None),  # 253 characters
        (".".join(["a" * 63] * 3 + ["a" * 62]), "must be at most 253 characters"),
        ("a" * 63 + ".org", None),
        ("a" * 64 + ".org", "labels must be at most 63 characters"),
        ("*.org", None),
    ],
)
def test_host_lengths_at_and_above_the_limits(host: str, problem: str | None) -> None:
    assert host_problem(host) == problem


@pytest.mark.parametrize("number", [1, 65535])
def test_port_numbers_at_the_limits_are_accepted(number: int) -> None:
    spec = _with_service(ports=[{"number": number, "protocol": "TCP"}], clients=None)
    assert normalize(spec, "routes")["services"][0]["ports"][0]["number"] == number


@pytest.mark.parametrize(("key", "low", "high"), [("replicas", 1, 1000), ("wait_timeout", 1, 3600)])
def test_gateway_integers_at_the_limits_are_accepted(key: str, low: int, high: int) -> None:
    for value in (low, high):
        assert normalize(_spec(gateway={key: value}), "gateway")["gateway"][key] == value


def test_names_and_label_values_at_the_limits_are_accepted() -> None:
    subdomain = ".".join(["a" * 63] * 3 + ["a" * 61])
    gateway = normalize(
        _spec(
            gateway={"name": "a" * 63, "istio_gateway_name": subdomain, "selector": {"a": "b" * 63}}
        ),
        "routes",
    )["gateway"]
    assert (gateway["name"], gateway["istio_gateway_name"]) == ("a" * 63, subdomain)
    assert gateway["selector"] == {"a": "b" * 63}


# ----------------------------------------------------------------------------- accepted values


def test_revision_default_and_blank() -> None:
    assert normalize(_spec(revision="default"), "gateway")["revision"] == "default"
    assert normalize(_spec(revision=""), "gateway")["revision"] is None


def test_trust_domain_may_use_capitals_digits_dots_dashes_underscores() -> None:
    domain = "Corp-1.Example_Domain"
    assert normalize(_spec(trust_domain=domain), "access")["trust_domain"] == domain


def test_cidrs_are_normalised_ipv4_and_ipv6() -> None:
    lockdown = normalize(
        {"lockdown": {"allow": [{"ip_blocks": ["10.0.0.0/8", "fd00:0::/8"]}]}}, "lockdown"
    )["lockdown"]
    assert lockdown["allow"][0]["ip_blocks"] == ["10.0.0.0/8", "fd00::/8"]


def test_a_default_selector_is_a_copy() -> None:
    first = normalize({}, "gateway")["gateway"]["selector"]
    first["changed"] = "yes"
    assert normalize({}, "gateway")["gateway"]["selector"] == {"istio": "egressgateway"}


def test_service_ports_defaults_and_target_port() -> None:
    ports = normalize(
        _spec(gateway={"service_ports": [{"name": "http", "port": 80, "nodePort": 30080}]}),
        "gateway",
    )["gateway"]["service_ports"]
    assert ports == [
        {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 80, "nodePort": 30080}
    ]


def test_clients_sort_by_cluster_namespace_account_labels() -> None:
    spec = _with_service(
        clients=[
            {"namespace": "a", "service_account": "m", "cluster": "c2"},
            {"namespace": "b", "service_account": "a"},
            {"namespace": "a", "service_account": "m"},
            {"namespace": "a", "labels": {"x": "2"}},
            {"namespace": "a", "labels": {"x": "1"}},
            {"namespace": "a", "service_account": "1-ci"},
            {"namespace": "a", "labels": {"x": "1-z"}},
            {"namespace": "a", "labels": {"x": "1", "y": "2"}},
        ]
    )
    clients = normalize(spec, "access")["services"][0]["clients"]
    assert [(c["cluster"], c["namespace"], c["service_account"], c["labels"]) for c in clients] == [
        ("c2", "a", "m", None),
        ("cluster-1", "a", None, {"x": "1"}),
        ("cluster-1", "a", None, {"x": "1", "y": "2"}),  # "x=1,y=2" sorts before "x=1-z"
        ("cluster-1", "a", None, {"x": "1-z"}),
        ("cluster-1", "a", None, {"x": "2"}),
        ("cluster-1", "a", "1-ci", None),  # selectors (no account) sort before accounts
        ("cluster-1", "a", "m", None),
        ("cluster-1", "b", "a", None),
    ]


# ----------------------------------------------------------------------------- variables


def test_inventory_variables_other_than_egress_ones_are_ignored() -> None:
    variables = {
        "ansible_host": "h",
        "egress_kubeconfig": "k",
        "egress_context": "c",
        "egress_hosts": "all",
        "egress_flavor": "istio",
    }
    assert description_from_variables(variables) == {"flavor": "istio"}


def test_an_override_sorting_before_a_key_does_not_hide_it() -> None:
    variables = {
        "egress_cluster": "c1",
        "egress_override_a": {"cluster": "c2"},
        "egress_services": [],
    }
    assert description_from_variables(variables) == {"cluster": "c2", "services": []}


def test_an_unknown_egress_variable_names_every_allowed_one() -> None:
    with pytest.raises(DescriptionError) as caught:
        description_from_variables({"egress_flavour": "gloo"})
    assert str(caught.value) == (
        "egress_flavour: unknown egress variable (description keys: egress_name, egress_flavor, "
        "egress_cluster, egress_trust_domain, egress_revision, egress_services_namespace, "
        "egress_adopt, egress_gateway, egress_services, egress_outbound_policy, egress_lockdown, "
        "egress_verify; overrides: egress_override_*; others: egress_kubeconfig, egress_context, "
        "egress_hosts) (got 'gloo')"
    )
    assert (caught.value.field, caught.value.value) == ("egress_flavour", "gloo")


def test_an_override_that_is_not_a_mapping() -> None:
    with pytest.raises(DescriptionError) as caught:
        merge_overrides({}, "oops")
    assert str(caught.value) == "override: must be a mapping (got 'oops')"
    assert (caught.value.field, caught.value.value) == ("", "oops")
    with pytest.raises(DescriptionError) as caught:
        merge_overrides({}, ["x"], "egress_override_ci")
    assert str(caught.value) == "egress_override_ci: must be a mapping (got ['x'])"
    assert (caught.value.field, caught.value.value) == ("egress_override_ci", ["x"])


def test_overrides_replace_what_is_not_a_mapping_on_both_sides() -> None:
    base = {"gateway": {"selector": {"a": "1"}, "replicas": None}, "keep": {"x": [1]}}
    merged = merge_overrides(base, {"gateway": {"selector": ["x"], "replicas": {"n": 2}}})
    assert merged == {"gateway": {"selector": ["x"], "replicas": {"n": 2}}, "keep": {"x": [1]}}
    merged["keep"]["x"].append(2)
    assert base["keep"] == {"x": [1]}


def test_spec_and_concern_errors_name_their_field() -> None:
    with pytest.raises(DescriptionError) as caught:
        normalize(["x"], "routes")
    assert (caught.value.field, caught.value.value) == ("spec", ["x"])
    with pytest.raises(DescriptionError) as caught:
        normalize({}, ["routes", "firewall"])
    assert str(caught.value) == (
        "concern: must be one of outbound_policy, gateway, routes, access, lockdown "
        "(got 'firewall')"
    )
    assert (caught.value.field, caught.value.value) == ("concern", "firewall")


def test_top_level_defaults_and_given_values() -> None:
    top = {k: v for k, v in normalize({}, "gateway").items() if k != "gateway"}
    assert top == {
        "name": "egress",
        "adopt": False,
        "flavor": "gloo",
        "cluster": "cluster-1",
        "trust_domain": "cluster.local",
        "revision": None,
        "services_namespace": "global",
    }
    given = {
        "name": "team-a",
        "adopt": True,
        "flavor": "istio",
        "cluster": "east.prod",
        "trust_domain": "corp.example",
        "revision": "1-23",
        "services_namespace": "egress-services",
    }
    got = normalize(given, "gateway")
    assert {k: got[k] for k in given} == given


def test_gateway_defaults_in_full() -> None:
    assert normalize({}, "gateway")["gateway"] == {
        "namespace": "istio-egress",
        "name": "istio-egressgateway",
        "selector": {"istio": "egressgateway"},
        "listener_port": 443,
        "virtual_gateway_name": "egress-vg",
        "istio_gateway_name": "meshguard-egress",
        "chart_ref": "gateway",
        "chart_repo_url": "",
        "chart_version": "",
        "values_schema": "",
        "revision": None,
        "image_hub": None,
        "image_tag": None,
        "replicas": 1,
        "resources": None,
        "service_type": "ClusterIP",
        "service_ports": [
            {"name": "status-port", "port": 15021, "protocol": "TCP", "targetPort": 15021},
            {"name": "http2", "port": 80, "protocol": "TCP", "targetPort": 80},
            {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 443},
        ],
        "node_selector": {},
        "tolerations": [],
        "dedicated_nodes": [],
        "node_label": "meshguard.io/egress-gateway",
        "taint_nodes": False,
        "access_log": False,
        "atomic": True,
        "wait_timeout": 300,
        "extra_values": {},
    }


def test_given_gateway_values_are_kept() -> None:
    gateway = normalize(
        _spec(
            gateway={
                "service_ports": [{"name": "http", "port": 80, "targetPort": 8080}],
                "node_label": "",
                "selector": {"a" * 63: "x"},
            }
        ),
        "gateway",
    )["gateway"]
    assert gateway["service_ports"] == [
        {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}
    ]
    assert gateway["node_label"] == "meshguard.io/egress-gateway"  # "" is unset
    assert gateway["selector"] == {"a" * 63: "x"}


def test_the_result_shares_nothing_with_the_input() -> None:
    spec = _spec(
        gateway={
            "tolerations": [{"key": "egress", "operator": "Exists"}],
            "resources": {"requests": {"cpu": "1"}},
            "extra_values": {"podAnnotations": {"a": "b"}},
        }
    )
    before = copy.deepcopy(spec)
    gateway = normalize(spec, "gateway")["gateway"]
    gateway["tolerations"][0]["key"] = "changed"
    gateway["resources"]["requests"]["cpu"] = "2"
    gateway["extra_values"]["podAnnotations"]["a"] = "c"
    assert spec == before


def test_overrides_copy_the_values_they_bring() -> None:
    override = {"gateway": {"tolerations": [{"key": "a"}]}}
    merged = merge_overrides({}, override)
    merged["gateway"]["tolerations"][0]["key"] = "b"
    assert override == {"gateway": {"tolerations": [{"key": "a"}]}}


def test_verification_reads_every_section_whatever_the_concern() -> None:
    spec = normalize(_spec(), "gateway", verify=True)
    assert {"gateway", "services", "outbound_policy", "lockdown", "verify"} <= set(spec)


def test_a_gateway_alone_takes_the_revision_given() -> None:
    assert normalize_gateway({}, "1-23")["revision"] == "1-23"
    assert normalize_gateway({"revision": "canary"}, "1-23")["revision"] == "canary"


def test_a_description_error_without_a_field() -> None:
    error = DescriptionError("broken")
    assert (error.field, error.value, error.errors) == ("", None, [("", "broken", None)])
