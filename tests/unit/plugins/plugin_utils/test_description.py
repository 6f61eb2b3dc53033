"""The egress description: every semantic check names the field path and the bad value."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ansible_collections.meshguard.egress.plugins.plugin_utils.description import (
    DescriptionError,
    default_object_name,
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


@pytest.mark.parametrize(
    ("concern", "spec", "message"),
    [(case[1], case[2], MESSAGES[case[0]]) for case in INVALID],
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
    spec = _with_service(host="*.example.com", clients=None)
    service = normalize(spec, "routes")["services"][0]
    assert service["name"] == "wildcard.example.com"
    assert default_object_name("*.com") == "wildcard.com"


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
