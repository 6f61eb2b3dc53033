"""The egress description: every semantic check names the field path and the bad value."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ansible_collections.meshguard.egress.plugins.plugin_utils.description import (
    DescriptionError,
    default_object_name,
    endpoint_names,
    host_problem,
    normalize,
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
