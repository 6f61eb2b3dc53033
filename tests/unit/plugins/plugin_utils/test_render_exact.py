"""Rendering, object for object: the istio flavor's routes with a service that has ports
outside the gateway, the gloo origination settings, the lockdown policies, the outbound
Sidecar and the access-log Telemetry in full; Helm values details (pod labels, keys of mixed
types); copies that do not share state; and the chart-schema check's drafts, messages and
order."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.meshguard.egress.plugins.plugin_utils import render as rendering
from ansible_collections.meshguard.egress.plugins.plugin_utils.description import (
    DescriptionError,
    normalize,
    normalize_gateway,
)
from ansible_collections.meshguard.egress.plugins.plugin_utils.render import (
    check_values,
    deep_merge,
    subset_name,
)

GATEWAY_HOST = "istio-egressgateway.istio-egress.svc.cluster.local"


def render(spec: Any, concern: str) -> list[dict[str, Any]]:
    return rendering.render(normalize(spec, concern), concern)


def labels(component: str) -> dict[str, str]:
    return {"app.kubernetes.io/managed-by": "meshguard.egress", "meshguard.io/component": component}


def meta(name: str, namespace: str, component: str) -> dict[str, Any]:
    return {"name": name, "labels": labels(component), "namespace": namespace}


# --------------------------------------------------------------------------- istio routes

# a-db sorts first and has no port through the gateway; httpbin.org's first port is direct
# TCP, its second goes through the gateway with its own SNI, CA and client port
ISTIO_SPEC = {
    "flavor": "istio",
    "services": [
        {
            "host": "a-db.example.com",
            "ports": [{"number": 5432, "protocol": "TCP", "client_port": 15432}],
        },
        {
            "host": "httpbin.org",
            "ports": [
                {"number": 8080, "protocol": "TCP"},
                {
                    "number": 443,
                    "protocol": "HTTPS",
                    "client_port": 8000,
                    "sni": "origin.httpbin.org",
                    "ca_certificates": "/etc/ca.pem",
                },
            ],
        },
    ],
}


def test_istio_routes_in_full() -> None:
    assert render(ISTIO_SPEC, "routes") == [
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "Gateway",
            "metadata": meta("meshguard-egress", "istio-egress", "routes"),
            "spec": {
                "selector": {"istio": "egressgateway"},
                "servers": [
                    {
                        "port": {"number": 443, "name": "https-443", "protocol": "HTTPS"},
                        "hosts": ["global/httpbin.org"],
                        "tls": {"mode": "ISTIO_MUTUAL"},
                    }
                ],
            },
        },
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "DestinationRule",
            "metadata": meta("istio-egressgateway-mtls", "istio-egress", "routes"),
            "spec": {
                "host": GATEWAY_HOST,
                "subsets": [
                    {
                        "name": "httpbin-org",
                        "trafficPolicy": {
                            "portLevelSettings": [
                                {
                                    "port": {"number": 443},
                                    "tls": {"mode": "ISTIO_MUTUAL", "sni": "httpbin.org"},
                                }
                            ]
                        },
                    }
                ],
            },
        },
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "ServiceEntry",
            "metadata": meta("a-db.example.com", "global", "routes"),
            "spec": {
                "hosts": ["a-db.example.com"],
                "location": "MESH_EXTERNAL",
                "resolution": "DNS",
                # client_port of a port outside the gateway is not a port of the entry
                "ports": [{"number": 5432, "name": "tcp-5432", "protocol": "TCP"}],
            },
        },
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "ServiceEntry",
            "metadata": meta("httpbin.org", "global", "routes"),
            "spec": {
                "hosts": ["httpbin.org"],
                "location": "MESH_EXTERNAL",
                "resolution": "DNS",
                "ports": [
                    {"number": 443, "name": "https-443", "protocol": "HTTPS"},
                    {"number": 8000, "name": "http-8000", "protocol": "HTTP"},
                    {"number": 8080, "name": "tcp-8080", "protocol": "TCP"},
                ],
            },
        },
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": meta("httpbin.org", "global", "routes"),
            "spec": {
                "hosts": ["httpbin.org"],
                "gateways": ["mesh", "istio-egress/meshguard-egress"],
                "http": [
                    {
                        "name": "mesh-to-gateway-8000",
                        "match": [{"gateways": ["mesh"], "port": 8000}],
                        "route": [
                            {
                                "destination": {
                                    "host": GATEWAY_HOST,
                                    "subset": "httpbin-org",
                                    "port": {"number": 443},
                                },
                                "weight": 100,
                            }
                        ],
                    },
                    {
                        "name": "gateway-to-external-443",
                        "match": [{"gateways": ["istio-egress/meshguard-egress"], "port": 443}],
                        "route": [
                            {
                                "destination": {"host": "httpbin.org", "port": {"number": 443}},
                                "weight": 100,
                            }
                        ],
                    },
                ],
            },
        },
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "DestinationRule",
            "metadata": meta("httpbin.org-tls", "global", "routes"),
            "spec": {
                "host": "httpbin.org",
                "trafficPolicy": {
                    "portLevelSettings": [
                        {
                            "port": {"number": 443},
                            "tls": {
                                "mode": "SIMPLE",
                                "sni": "origin.httpbin.org",
                                "caCertificates": "/etc/ca.pem",
                            },
                        }
                    ]
                },
            },
        },
    ]


def test_gloo_origination_with_a_ca() -> None:
    spec = {
        "services": [
            {
                "host": "httpbin.org",
                "ports": [
                    {
                        "number": 443,
                        "protocol": "HTTPS",
                        "sni": "origin.httpbin.org",
                        "ca_certificates": "/etc/ca.pem",
                    }
                ],
            }
        ]
    }
    by_kind = {o["kind"]: o for o in render(spec, "routes")}
    assert by_kind["ExternalService"]["spec"]["ports"] == [
        {
            "name": "https-443",
            "number": 443,
            "protocol": "HTTPS",
            "clientsideTls": {"sni": "origin.httpbin.org", "caCertificates": "/etc/ca.pem"},
            "egressGatewayRoutes": {
                "portMatch": 80,
                "virtualGatewayRefs": [
                    {"cluster": "cluster-1", "name": "egress-vg", "namespace": "istio-egress"}
                ],
            },
        }
    ]


@pytest.mark.parametrize(
    ("name", "subset"),
    [
        ("httpbin.org", "httpbin-org"),
        # 62 + 2: cut at 63, which leaves a trailing '-' that must go
        ("x" * 62 + ".y", "x" * 62),
        ("x" * 63, "x" * 63),
        ("x" * 64, "x" * 63),
    ],
)
def test_subset_names_are_labels_of_at_most_63(name: str, subset: str) -> None:
    assert subset_name(name) == subset


# --------------------------------------------------------------------------- other concerns


def test_outbound_sidecar_in_full() -> None:
    assert render({}, "outbound_policy") == [
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "Sidecar",
            "metadata": meta("default", "istio-system", "outbound_policy"),
            "spec": {"outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"}},
        }
    ]


def test_access_log_telemetry_in_full() -> None:
    assert render({"gateway": {"access_log": True}}, "gateway") == [
        {
            "apiVersion": "telemetry.istio.io/v1",
            "kind": "Telemetry",
            "metadata": meta("meshguard-egress-access-log", "istio-egress", "gateway"),
            "spec": {
                "selector": {"matchLabels": {"istio": "egressgateway"}},
                "accessLogging": [{"providers": [{"name": "envoy"}]}],
            },
        }
    ]


DNS_RULE = {
    "to": [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
        }
    ],
    "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}],
}
ISTIOD_RULE = {
    "to": [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "istio-system"}},
            "podSelector": {"matchLabels": {"app": "istiod"}},
        }
    ],
    "ports": [
        {"port": 15010, "protocol": "TCP"},
        {"port": 15012, "protocol": "TCP"},
        {"port": 15014, "protocol": "TCP"},
    ],
}


def test_lockdown_policies_in_full() -> None:
    objects = render({"lockdown": {"namespaces": ["bookinfo"]}}, "lockdown")
    assert objects == [
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": meta("meshguard-egress-lockdown", "bookinfo", "lockdown"),
            "spec": {
                "podSelector": {},
                "policyTypes": ["Egress"],
                "egress": [
                    DNS_RULE,
                    ISTIOD_RULE,
                    {
                        "to": [
                            {
                                "namespaceSelector": {
                                    "matchLabels": {"kubernetes.io/metadata.name": "istio-egress"}
                                },
                                "podSelector": {"matchLabels": {"istio": "egressgateway"}},
                            }
                        ],
                        "ports": [
                            {"port": 443, "protocol": "TCP"},
                            {"port": 15443, "protocol": "TCP"},
                        ],
                    },
                    {"to": [{"podSelector": {}}]},
                ],
            },
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": meta("meshguard-egress-gateway-internet", "istio-egress", "lockdown"),
            "spec": {
                "podSelector": {"matchLabels": {"istio": "egressgateway"}},
                "policyTypes": ["Egress"],
                "egress": [{}],
            },
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": meta("meshguard-egress-lockdown", "istio-egress", "lockdown"),
            "spec": {
                "podSelector": {},
                "policyTypes": ["Egress"],
                "egress": [DNS_RULE, ISTIOD_RULE],
            },
        },
    ]


def test_lockdown_policies_of_two_namespaces_share_nothing() -> None:
    first, second = render({"lockdown": {"namespaces": ["a", "b"]}}, "lockdown")[:2]
    first["spec"]["egress"][0]["ports"].append({"port": 5353, "protocol": "UDP"})
    assert second["spec"]["egress"][0] == DNS_RULE


# --------------------------------------------------------------------------- Helm values


def gateway_values(gateway: Any) -> dict[str, Any]:
    return rendering.gateway_values(normalize_gateway(gateway))


@pytest.mark.parametrize(
    ("name", "pod_labels"),
    [
        ("istio-egressgateway", {"app": "istio-egressgateway", "istio": "egressgateway"}),
        ("egress-gw", {"app": "egress-gw", "istio": "egress-gw"}),
        ("istio", {"app": "istio", "istio": "istio"}),
    ],
)
def test_the_chart_pod_labels_follow_the_release_name(name: str, pod_labels: dict) -> None:
    selector = {"example.com/egress": "yes"}
    values = gateway_values({"name": name, "selector": selector})
    assert values["labels"] == {**pod_labels, **selector}


def test_values_keys_of_mixed_types_are_sorted_as_text() -> None:
    values = gateway_values({"extra_values": {"podAnnotations": {"b": "x", 2: "y"}}})
    assert list(values["podAnnotations"]) == [2, "b"]


def test_deep_merge_result_shares_nothing_with_its_inputs() -> None:
    base = {"a": {"b": {"c": 1}}, "keep": {"x": [1]}}
    override = {"a": {"d": [{"e": 1}]}}
    merged = deep_merge(base, override)
    assert merged == {"a": {"b": {"c": 1}, "d": [{"e": 1}]}, "keep": {"x": [1]}}
    merged["keep"]["x"].append(2)
    merged["a"]["d"][0]["e"] = 2
    assert base == {"a": {"b": {"c": 1}}, "keep": {"x": [1]}}
    assert override == {"a": {"d": [{"e": 1}]}}


# --------------------------------------------------------------------------- chart schema


def write(tmp_path: Path, schema: dict[str, Any]) -> str:
    path = tmp_path / "values.schema.json"
    path.write_text(json.dumps(schema))
    return str(path)


def schema_error(values: Any, schema_path: str) -> DescriptionError:
    with pytest.raises(DescriptionError) as caught:
        check_values(values, schema_path)
    return caught.value


REF_WITH_SIBLING = {
    "$defs": {"object": {"type": "object"}},
    "$ref": "#/$defs/object",
    "required": ["replicaCount"],
}


@pytest.mark.parametrize(
    "draft",
    [
        "https://json-schema.org/draft/2020-12/schema",
        "https://json-schema.org/draft/2020-12/schema#",
        "https://json-schema.org/draft/2019-09/schema#",
    ],
)
def test_a_schema_that_names_a_newer_draft_gets_it(tmp_path: Path, draft: str) -> None:
    """Since draft 2019-09 ``$ref`` no longer hides its siblings: ``required`` applies."""
    error = schema_error({}, write(tmp_path, {"$schema": draft, **REF_WITH_SIBLING}))
    assert str(error) == (
        "values: rejected by the chart schema: 'replicaCount' is a required property (got {})"
    )


@pytest.mark.parametrize(
    "draft", ["http://json-schema.org/schema#", "http://json-schema.org/draft-07/schema#", ""]
)
def test_an_unknown_or_draft_7_schema_is_read_as_helm_reads_it(tmp_path: Path, draft: str) -> None:
    schema = {"$schema": draft, **REF_WITH_SIBLING} if draft else REF_WITH_SIBLING
    check_values({}, write(tmp_path, schema))  # Draft 7: $ref replaces ``required``


def test_a_draft_4_schema_gets_draft_4(tmp_path: Path) -> None:
    """Draft 4's ``exclusiveMaximum`` is a boolean beside ``maximum``."""
    schema = {
        "$schema": "http://json-schema.org/draft-04/schema#",
        "properties": {"replicaCount": {"maximum": 10, "exclusiveMaximum": True}},
    }
    error = schema_error({"replicaCount": 10}, write(tmp_path, schema))
    assert str(error) == (
        "values.replicaCount: rejected by the chart schema: 10 is greater than or equal to "
        "the maximum of 10 (got 10)"
    )


def test_every_rejected_path_in_path_order_with_the_first_as_field(tmp_path: Path) -> None:
    schema = {
        "type": "object",
        "properties": {"zone": {"type": "string"}, "arch": {"type": "string"}},
        "required": ["name"],
    }
    error = schema_error({"zone": 1, "arch": 2}, write(tmp_path, schema))
    assert str(error).splitlines() == [
        "values: rejected by the chart schema: 'name' is a required property "
        "(got {'zone': 1, 'arch': 2})",
        "values.arch: rejected by the chart schema: 2 is not of type 'string' (got 2)",
        "values.zone: rejected by the chart schema: 1 is not of type 'string' (got 1)",
    ]
    assert (error.field, error.value) == ("values", {"zone": 1, "arch": 2})
    assert [(path, value) for path, _problem, value in error.errors] == [
        ("values", {"zone": 1, "arch": 2}),
        ("values.arch", 2),
        ("values.zone", 1),
    ]


def test_unknown_keys_without_a_properties_list(tmp_path: Path) -> None:
    schema = {"type": "object", "additionalProperties": False}
    error = schema_error({"b": 1, 2: "x"}, write(tmp_path, schema))
    assert str(error).splitlines() == [
        "values.2: unknown key rejected by the chart schema (got 'x')",
        "values.b: unknown key rejected by the chart schema (got 1)",
    ]


def test_an_unreadable_schema_names_its_path(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.json")
    error = schema_error({}, missing)
    assert str(error) == (
        f"schema_path: cannot read the chart schema: [Errno 2] No such file or directory: "
        f"{missing!r} (got {missing!r})"
    )
    assert (error.field, error.value) == ("schema_path", missing)


def test_without_jsonschema_the_error_says_what_it_is_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "jsonschema", None)  # import jsonschema -> ImportError
    error = schema_error({}, write(tmp_path, {}))
    assert (error.field, error.value) == ("gateway.values_schema", None)
    assert str(error).startswith(
        "meshguard.egress needs the Python library 'jsonschema' to check the gateway chart "
        "values against the chart's values.schema.json, but it cannot be imported by "
        f"{sys.executable} (Python "
    ), str(error)
