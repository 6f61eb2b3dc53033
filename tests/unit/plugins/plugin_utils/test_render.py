"""Rendering: the procedure's objects, the istio flavor, labels, Helm values, determinism."""

from __future__ import annotations

import copy
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from ansible_collections.meshguard.egress.plugins.plugin_utils import render as rendering
from ansible_collections.meshguard.egress.plugins.plugin_utils.description import (
    DescriptionError,
    normalize,
    normalize_gateway,
)
from ansible_collections.meshguard.egress.plugins.plugin_utils.render import (
    check_values,
    deep_merge,
    endpoint_selector,
)

ROOT = Path(__file__).resolve().parents[4]


def render(spec: Any, concern: str) -> list[dict[str, Any]]:
    """Validate a raw description for one concern, then render that concern's objects."""
    return rendering.render(normalize(spec, concern), concern)


def gateway_values(gateway: Any) -> dict[str, Any]:
    return rendering.gateway_values(normalize_gateway(gateway))


ISTIO_FIXTURES = Path(
    os.environ.get("MESHGUARD_ISTIO_FIXTURES", ROOT.parent / "shared" / "fixtures" / "istio")
)
ISTIO_VERSIONS = ("1.23.4", "1.29.6")
CONCERNS = ("outbound_policy", "routes", "access", "lockdown", "gateway")

# The objects as the procedure (seed) writes them, with CLUSTER_NAME=cluster-1.
PROCEDURE_EXTERNAL_SERVICE = yaml.safe_load(
    """
apiVersion: networking.gloo.solo.io/v2
kind: ExternalService
metadata:
  name: httpbin.org
  namespace: global
spec:
  hosts:
  - "httpbin.org"
  ports:
  - clientsideTls: {}
    egressGatewayRoutes:
      portMatch: 80
      virtualGatewayRefs:
      - cluster: cluster-1
        name: egress-vg
        namespace: istio-egress
    name: https
    number: 443
    protocol: HTTPS
"""
)
PROCEDURE_ACCESS_POLICY_SPEC = yaml.safe_load(
    """
applyToDestinations:
- kind: EXTERNAL_SERVICE
  port:
    number: 443
  selector:
    cluster: cluster-1
    name: httpbin.org
    namespace: global
config:
  authz:
    allowedClients:
    - serviceAccountSelector:
        cluster: cluster-1
        labels:
          account: productpage
        namespace: bookinfo
"""
)


def procedure_spec(flavor: str = "gloo") -> dict[str, Any]:
    return {
        "flavor": flavor,
        "cluster": "cluster-1",
        "services": [
            {
                "host": "httpbin.org",
                "ports": [{"number": 443, "protocol": "HTTPS", "name": "https"}],
                "clients": [
                    {"namespace": "bookinfo", "service_account": "bookinfo-productpage"}
                    if flavor == "istio"
                    else {"namespace": "bookinfo", "labels": {"account": "productpage"}}
                ],
            }
        ],
    }


def multi_service_spec(flavor: str) -> dict[str, Any]:
    return {
        "flavor": flavor,
        "cluster": "cluster-1",
        "services": [
            {
                "host": "httpbin.org",
                "ports": [{"number": 443, "protocol": "HTTPS", "name": "https"}],
                "clients": [{"namespace": "bookinfo", "service_account": "bookinfo-productpage"}],
            },
            {
                # istio cannot route a wildcard through the gateway (refused, see below);
                # gloo routes it to the ExternalEndpoints it selects
                "host": "*.example.com" if flavor == "gloo" else "www.example.com",
                "ports": [{"number": 80, "protocol": "HTTP"}],
                **({"endpoints": ["203.0.113.10", "edge.example.net"]} if flavor == "gloo" else {}),
            },
            {
                "host": "api.example.org",
                "ports": [
                    {
                        "number": 8443,
                        "protocol": "HTTPS",
                        "client_port": 8080,
                        "sni": "api.example.org",
                    },
                    {"number": 5432, "protocol": "TCP"},
                ],
                "clients": [],
            },
        ],
        "lockdown": {
            "namespaces": ["bookinfo", "reviews"],
            "allow": [
                {"namespace": "db", "pod_selector": {"app": "pg"}, "ports": [{"port": 5432}]}
            ],
        },
        "outbound_policy": {"scope": "namespaces", "namespaces": ["bookinfo", "reviews"]},
    }


def _by_kind_name(objects: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for o in objects}


def _without_labels(obj: dict[str, Any]) -> dict[str, Any]:
    obj = copy.deepcopy(obj)
    obj["metadata"].pop("labels")
    return obj


# ----------------------------------------------------------------------------- gloo


def test_procedure_external_service_is_rendered_exactly() -> None:
    objects = _by_kind_name(render(procedure_spec(), "routes"))
    external = objects[("ExternalService", "httpbin.org")]
    assert _without_labels(external) == PROCEDURE_EXTERNAL_SERVICE


def test_procedure_virtual_gateway() -> None:
    gateway = _by_kind_name(render(procedure_spec(), "routes"))[("VirtualGateway", "egress-vg")]
    assert gateway["apiVersion"] == "networking.gloo.solo.io/v2"
    assert gateway["metadata"]["namespace"] == "istio-egress"
    assert gateway["spec"] == {
        "workloads": [
            {
                "selector": {
                    "labels": {"istio": "egressgateway"},
                    "namespace": "istio-egress",
                    "cluster": "cluster-1",
                }
            }
        ],
        "listeners": [
            {
                "port": {"number": 443},
                "tls": {"mode": "ISTIO_MUTUAL"},
                "http": {},
                "exposedExternalServices": [{"host": "httpbin.org"}],
            }
        ],
    }


def test_procedure_access_policy() -> None:
    [policy] = render(procedure_spec(), "access")
    assert policy["apiVersion"] == "security.policy.gloo.solo.io/v2"
    assert policy["kind"] == "AccessPolicy"
    assert policy["metadata"]["namespace"] == "istio-egress"
    assert policy["spec"] == PROCEDURE_ACCESS_POLICY_SPEC


def test_gloo_access_policy_by_service_account_name() -> None:
    spec = procedure_spec()
    spec["services"][0]["clients"] = [{"namespace": "bookinfo", "service_account": "pp"}]
    [policy] = render(spec, "access")
    assert policy["metadata"]["name"] == "httpbin.org-access"
    assert policy["spec"]["config"]["authz"]["allowedClients"] == [
        {"serviceAccountSelector": {"name": "pp", "namespace": "bookinfo", "cluster": "cluster-1"}}
    ]


def test_gloo_unrestricted_service_gets_no_access_policy() -> None:
    names = [o["metadata"]["name"] for o in render(multi_service_spec("gloo"), "access")]
    assert names == ["api.example.org-access", "httpbin.org-access"]


def test_gloo_origination_with_sni_and_direct_tcp_port() -> None:
    objects = _by_kind_name(render(multi_service_spec("gloo"), "routes"))
    ports = objects[("ExternalService", "api.example.org")]["spec"]["ports"]
    assert ports[0]["clientsideTls"] == {"sni": "api.example.org"}
    assert ports[0]["egressGatewayRoutes"]["portMatch"] == 8080
    assert ports[1] == {"name": "tcp-5432", "number": 5432, "protocol": "TCP"}
    wildcard = objects[("ExternalService", "wildcard.example.com")]
    assert wildcard["spec"]["hosts"] == ["*.example.com"]
    assert "selector" not in objects[("ExternalService", "api.example.org")]["spec"]
    exposed = objects[("VirtualGateway", "egress-vg")]["spec"]["listeners"][0]
    assert exposed["exposedExternalServices"] == [
        {"host": "*.example.com"},
        {"host": "api.example.org"},
        {"host": "httpbin.org"},
    ]


def test_gloo_wildcard_host_selects_its_external_endpoints() -> None:
    objects = render(multi_service_spec("gloo"), "routes")
    by = _by_kind_name(objects)
    wildcard = by[("ExternalService", "wildcard.example.com")]["spec"]
    assert wildcard["selector"] == {"meshguard.io/external-service": "wildcard.example.com"}
    assert wildcard["ports"][0]["egressGatewayRoutes"]["portMatch"] == 80
    endpoints = [o for o in objects if o["kind"] == "ExternalEndpoint"]
    assert [(o["metadata"]["name"], o["metadata"]["namespace"]) for o in endpoints] == [
        ("wildcard.example.com-1", "global"),
        ("wildcard.example.com-2", "global"),
    ]
    for endpoint, address in zip(endpoints, ["203.0.113.10", "edge.example.net"]):
        assert endpoint["apiVersion"] == "networking.gloo.solo.io/v2"
        assert endpoint["spec"] == {
            "address": address,
            "ports": [{"name": "http-80", "number": 80}],
        }
        labels = endpoint["metadata"]["labels"]
        assert {k: labels[k] for k in wildcard["selector"]} == wildcard["selector"]
        assert labels["meshguard.io/component"] == "routes"
    # the ExternalService comes right before its endpoints
    kinds = [(o["kind"], o["metadata"]["name"]) for o in objects]
    at = kinds.index(("ExternalService", "wildcard.example.com"))
    assert kinds[at + 1 : at + 3] == [
        ("ExternalEndpoint", "wildcard.example.com-1"),
        ("ExternalEndpoint", "wildcard.example.com-2"),
    ]


def test_gloo_wildcard_tls_origination_renders_the_given_sni() -> None:
    spec = procedure_spec()
    spec["services"][0].update(
        host="*.example.com",
        endpoints=["edge.example.net"],
        ports=[{"number": 443, "protocol": "HTTPS", "sni": "edge.example.net"}],
    )
    by = _by_kind_name(render(spec, "routes"))
    [port] = by[("ExternalService", "wildcard.example.com")]["spec"]["ports"]
    assert port["clientsideTls"] == {"sni": "edge.example.net"}
    assert by[("ExternalEndpoint", "wildcard.example.com-1")]["spec"]["ports"] == [
        {"name": "https-443", "number": 443}
    ]


def test_endpoint_selector_of_a_long_name_is_a_label_value() -> None:
    name = ("a" * 60) + ".example.com"
    [(key, value)] = endpoint_selector(name).items()
    assert key == "meshguard.io/external-service"
    assert len(value) <= 63 and value.startswith("a" * 52) and value[-1].isalnum()
    assert endpoint_selector(name + "x") != endpoint_selector(name)
    assert endpoint_selector("short.example.com") == {key: "short.example.com"}


def _hashed(name: str, kept: str) -> str:
    return f"{kept}-{hashlib.sha256(name.encode()).hexdigest()[:10]}"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a" * 63, "a" * 63),  # a label value's limit: kept
        ("a" * 64, _hashed("a" * 64, "a" * 52)),
        # the first 52 characters end in '.' or '-.': dropped, the value stays a label value
        ("a" * 51 + ".b" + "c" * 20, _hashed("a" * 51 + ".b" + "c" * 20, "a" * 51)),
        ("a" * 50 + "-.b" + "c" * 20, _hashed("a" * 50 + "-.b" + "c" * 20, "a" * 50)),
    ],
    ids=["63", "64", "cut-at-dot", "cut-at-dash-dot"],
)
def test_endpoint_selector_at_the_label_value_limit(name: str, expected: str) -> None:
    assert endpoint_selector(name) == {"meshguard.io/external-service": expected}
    assert len(expected) <= 63


def test_external_endpoints_share_no_ports_list() -> None:
    endpoints = [
        o for o in render(multi_service_spec("gloo"), "routes") if o["kind"] == "ExternalEndpoint"
    ]
    first, second = (endpoint["spec"]["ports"] for endpoint in endpoints)
    assert first == second and first is not second and first[0] is not second[0]


def test_no_virtual_gateway_without_gateway_ports() -> None:
    spec = procedure_spec()
    spec["services"][0]["ports"] = [{"number": 443, "protocol": "TLS"}]
    spec["services"][0]["clients"] = None
    kinds = [o["kind"] for o in render(spec, "routes")]
    assert kinds == ["ExternalService"]


# ----------------------------------------------------------------------------- istio


def test_istio_routes_objects() -> None:
    objects = render(procedure_spec("istio"), "routes")
    assert [
        (o["apiVersion"], o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"])
        for o in objects
    ] == [
        ("networking.istio.io/v1", "Gateway", "istio-egress", "meshguard-egress"),
        ("networking.istio.io/v1", "DestinationRule", "istio-egress", "istio-egressgateway-mtls"),
        ("networking.istio.io/v1", "ServiceEntry", "global", "httpbin.org"),
        ("networking.istio.io/v1", "VirtualService", "global", "httpbin.org"),
        ("networking.istio.io/v1", "DestinationRule", "global", "httpbin.org-tls"),
    ]
    by = _by_kind_name(objects)
    gateway = by[("Gateway", "meshguard-egress")]["spec"]
    assert gateway["selector"] == {"istio": "egressgateway"}
    assert gateway["servers"] == [
        {
            "port": {"number": 443, "name": "https-443", "protocol": "HTTPS"},
            "hosts": ["global/httpbin.org"],
            "tls": {"mode": "ISTIO_MUTUAL"},
        }
    ]
    mtls = by[("DestinationRule", "istio-egressgateway-mtls")]["spec"]
    assert mtls["host"] == "istio-egressgateway.istio-egress.svc.cluster.local"
    assert mtls["subsets"] == [
        {
            "name": "httpbin-org",
            "trafficPolicy": {
                "portLevelSettings": [
                    {"port": {"number": 443}, "tls": {"mode": "ISTIO_MUTUAL", "sni": "httpbin.org"}}
                ]
            },
        }
    ]
    entry = by[("ServiceEntry", "httpbin.org")]["spec"]
    assert entry == {
        "hosts": ["httpbin.org"],
        "location": "MESH_EXTERNAL",
        "resolution": "DNS",
        "ports": [
            {"number": 80, "name": "http-80", "protocol": "HTTP"},
            {"number": 443, "name": "https", "protocol": "HTTPS"},
        ],
    }
    virtual = by[("VirtualService", "httpbin.org")]["spec"]
    assert virtual["hosts"] == ["httpbin.org"]
    assert virtual["gateways"] == ["mesh", "istio-egress/meshguard-egress"]
    mesh_route, gateway_route = virtual["http"]
    assert mesh_route["match"] == [{"gateways": ["mesh"], "port": 80}]
    assert mesh_route["route"][0]["destination"] == {
        "host": "istio-egressgateway.istio-egress.svc.cluster.local",
        "subset": "httpbin-org",
        "port": {"number": 443},
    }
    assert gateway_route["match"] == [{"gateways": ["istio-egress/meshguard-egress"], "port": 443}]
    assert gateway_route["route"][0]["destination"] == {
        "host": "httpbin.org",
        "port": {"number": 443},
    }
    origination = by[("DestinationRule", "httpbin.org-tls")]["spec"]
    assert origination == {
        "host": "httpbin.org",
        "trafficPolicy": {
            "portLevelSettings": [
                {"port": {"number": 443}, "tls": {"mode": "SIMPLE", "sni": "httpbin.org"}}
            ]
        },
    }


def test_istio_refuses_a_wildcard_host_with_the_reason() -> None:
    spec = multi_service_spec("istio")
    spec["services"][1]["host"] = "*.example.com"
    with pytest.raises(DescriptionError) as err:
        render(spec, "routes")
    assert err.value.field == "services[1].host"
    assert "cannot route a wildcard host" in str(err.value)


def test_istio_service_entry_ports() -> None:
    by = _by_kind_name(render(multi_service_spec("istio"), "routes"))
    entry = by[("ServiceEntry", "www.example.com")]["spec"]
    assert (entry["resolution"], entry["hosts"]) == ("DNS", ["www.example.com"])
    assert ("DestinationRule", "www.example.com-tls") not in by
    api = by[("ServiceEntry", "api.example.org")]["spec"]["ports"]
    assert [p["number"] for p in api] == [5432, 8080, 8443]


def test_istio_authorization_policy() -> None:
    [policy] = render(multi_service_spec("istio"), "access")
    assert (policy["apiVersion"], policy["kind"]) == ("security.istio.io/v1", "AuthorizationPolicy")
    assert (policy["metadata"]["namespace"], policy["metadata"]["name"]) == (
        "istio-egress",
        "meshguard-egress-allow",
    )
    assert policy["spec"] == {
        "selector": {"matchLabels": {"istio": "egressgateway"}},
        "action": "ALLOW",
        "rules": [
            # api.example.org has clients: [] -> nobody -> no rule
            {
                "from": [
                    {
                        "source": {
                            "principals": ["cluster.local/ns/bookinfo/sa/bookinfo-productpage"]
                        }
                    }
                ],
                "to": [{"operation": {"hosts": ["httpbin.org", "httpbin.org:*"]}}],
            },
            {"to": [{"operation": {"hosts": ["www.example.com", "www.example.com:*"]}}]},
        ],
    }


# ----------------------------------------------------------------------------- other concerns


def test_outbound_policy_sidecars() -> None:
    [mesh] = render({}, "outbound_policy")
    assert (mesh["kind"], mesh["metadata"]["namespace"], mesh["metadata"]["name"]) == (
        "Sidecar",
        "istio-system",
        "default",
    )
    assert mesh["spec"] == {"outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"}}
    namespaced = render(multi_service_spec("gloo"), "outbound_policy")
    assert [o["metadata"]["namespace"] for o in namespaced] == ["bookinfo", "reviews"]


def test_lockdown_network_policies() -> None:
    objects = render(multi_service_spec("gloo"), "lockdown")
    assert [(o["metadata"]["namespace"], o["metadata"]["name"]) for o in objects] == [
        ("bookinfo", "meshguard-egress-lockdown"),
        ("reviews", "meshguard-egress-lockdown"),
        ("istio-egress", "meshguard-egress-gateway-internet"),
        ("istio-egress", "meshguard-egress-lockdown"),
    ]
    workload = objects[0]["spec"]
    assert workload["podSelector"] == {}
    assert workload["policyTypes"] == ["Egress"]
    rules = workload["egress"]
    dns, istiod, gateway, same_namespace, allow = rules
    assert dns["ports"] == [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]
    assert dns["to"][0]["namespaceSelector"] == {
        "matchLabels": {"kubernetes.io/metadata.name": "kube-system"}
    }
    assert [p["port"] for p in istiod["ports"]] == [15010, 15012, 15014]
    assert gateway["to"][0]["podSelector"] == {"matchLabels": {"istio": "egressgateway"}}
    assert [p["port"] for p in gateway["ports"]] == [443, 15443]
    assert same_namespace == {"to": [{"podSelector": {}}]}
    assert allow == {
        "to": [
            {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "db"}},
                "podSelector": {"matchLabels": {"app": "pg"}},
            }
        ],
        "ports": [{"port": 5432, "protocol": "TCP"}],
    }
    internet = objects[2]["spec"]
    assert internet["podSelector"] == {"matchLabels": {"istio": "egressgateway"}}
    assert internet["egress"] == [{}]
    assert objects[3]["spec"]["egress"] == [dns, istiod]


def test_gateway_concern_renders_the_access_log_telemetry_only_when_asked() -> None:
    assert render({"gateway": {"namespace": "egress"}}, "gateway") == []
    [telemetry] = render({"gateway": {"namespace": "egress", "access_log": True}}, "gateway")
    assert (telemetry["kind"], telemetry["metadata"]["namespace"]) == ("Telemetry", "egress")
    assert telemetry["spec"] == {
        "selector": {"matchLabels": {"istio": "egressgateway"}},
        "accessLogging": [{"providers": [{"name": "envoy"}]}],
    }


@pytest.mark.parametrize("flavor", ["gloo", "istio"])
@pytest.mark.parametrize("concern", CONCERNS)
def test_every_object_carries_managed_labels(flavor: str, concern: str) -> None:
    spec = multi_service_spec(flavor)
    spec.setdefault("gateway", {})["access_log"] = True
    objects = render(spec, concern)
    assert objects
    for obj in objects:
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "meshguard.egress"
        assert labels["meshguard.io/component"] == concern


@pytest.mark.parametrize("flavor", ["gloo", "istio"])
@pytest.mark.parametrize("concern", CONCERNS)
def test_rendering_is_deterministic(flavor: str, concern: str) -> None:
    spec = multi_service_spec(flavor)
    reordered = copy.deepcopy(spec)
    reordered["services"].reverse()
    reordered["lockdown"]["namespaces"].reverse()
    first = json.dumps(render(spec, concern))
    assert json.dumps(render(copy.deepcopy(spec), concern)) == first
    assert json.dumps(render(reordered, concern)) == first


def test_render_rejects_invalid_description() -> None:
    with pytest.raises(DescriptionError, match=r"^flavor: must be one of gloo, istio"):
        render({"flavor": "consul"}, "routes")


# ----------------------------------------------------------------------------- Helm values


def test_gateway_values_defaults() -> None:
    assert gateway_values({}) == {
        "autoscaling": {"enabled": False},
        "labels": {"app": "istio-egressgateway", "istio": "egressgateway"},
        "nodeSelector": {},
        "replicaCount": 1,
        "service": {
            "ports": [
                {"name": "status-port", "port": 15021, "protocol": "TCP", "targetPort": 15021},
                {"name": "http2", "port": 80, "protocol": "TCP", "targetPort": 80},
                {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 443},
            ],
            "type": "ClusterIP",
        },
        "tolerations": [],
    }


def full_gateway() -> dict[str, Any]:
    return {
        "name": "egress-gw",
        "namespace": "istio-egress",
        "revision": "main",
        "image_hub": "us-docker.pkg.dev/gloo-mesh/istio-abc",
        "image_tag": "1.23.4-solo",
        "replicas": 2,
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
        "selector": {"istio": "egressgateway", "team": "net"},
        "service_type": "ClusterIP",
        "service_ports": [{"name": "https", "port": 443}],
        "node_selector": {"egress": "true"},
        "tolerations": [{"key": "egress", "operator": "Exists", "effect": "NoSchedule"}],
        "extra_values": {"podAnnotations": {"x": "y"}, "service": {"annotations": {"a": "b"}}},
    }


def test_gateway_values_all_keys() -> None:
    values = gateway_values(full_gateway())
    assert values["revision"] == "main"
    assert values["global"] == {
        "hub": "us-docker.pkg.dev/gloo-mesh/istio-abc",
        "tag": "1.23.4-solo",
    }
    assert values["replicaCount"] == 2
    assert values["autoscaling"] == {"enabled": False}
    # pods carry the selector; the chart's app/istio labels are explicit and consistent
    assert values["labels"] == {"app": "egress-gw", "istio": "egressgateway", "team": "net"}
    assert values["service"] == {
        "annotations": {"a": "b"},
        "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 443}],
        "type": "ClusterIP",
    }
    assert values["nodeSelector"] == {"egress": "true"}
    assert values["tolerations"] == full_gateway()["tolerations"]
    assert values["resources"] == {"requests": {"cpu": "100m", "memory": "128Mi"}}
    assert values["podAnnotations"] == {"x": "y"}
    assert list(values) == sorted(values)


def test_gateway_values_extra_values_win() -> None:
    values = gateway_values({"replicas": 2, "extra_values": {"replicaCount": 3}})
    assert values["replicaCount"] == 3


def test_gateway_values_rejects_invalid_gateway() -> None:
    with pytest.raises(DescriptionError, match=r"^gateway\.replicas: .* \(got 0\)$"):
        gateway_values({"replicas": 0})


def test_deep_merge_does_not_mutate() -> None:
    base = {"a": {"b": 1, "c": [1]}}
    merged = deep_merge(base, {"a": {"b": 2}, "d": 3})
    assert merged == {"a": {"b": 2, "c": [1]}, "d": 3}
    assert base == {"a": {"b": 1, "c": [1]}}


def _schema(version: str) -> str:
    path = ISTIO_FIXTURES / version / "gateway-values.schema.json"
    if not path.is_file():
        pytest.skip(f"Istio fixtures not found at {path} (set MESHGUARD_ISTIO_FIXTURES)")
    return str(path)


@pytest.mark.parametrize("version", ISTIO_VERSIONS)
@pytest.mark.parametrize("gateway", [{}, full_gateway()], ids=["defaults", "all-keys"])
def test_gateway_values_validate_against_istio_chart_schema(
    version: str, gateway: dict[str, Any]
) -> None:
    check_values(gateway_values(gateway), _schema(version))


@pytest.mark.parametrize("version", ISTIO_VERSIONS)
def test_istio_default_values_pass_check(version: str) -> None:
    defaults = yaml.safe_load((Path(_schema(version)).parent / "gateway-values.yaml").read_text())
    inner = defaults.get("defaults") or defaults.get("_internal_defaults_do_not_set")
    check_values(inner, _schema(version))


@pytest.mark.parametrize("version", ISTIO_VERSIONS)
@pytest.mark.parametrize(
    ("extra_values", "path", "value"),
    [
        ({"replicaCount": "two"}, "values.replicaCount", "two"),
        ({"autoscaling": {"enabled": "no"}}, "values.autoscaling.enabled", "no"),
        (
            {"service": {"ports": [{"name": "x", "port": "443"}]}},
            "values.service.ports[0].port",
            "443",
        ),
        ({"kind": "StatefulSet"}, "values.kind", "StatefulSet"),
        ({"imagePullPolicy": "Sometimes"}, "values.imagePullPolicy", "Sometimes"),
    ],
)
def test_chart_schema_rejects_bad_extra_values(
    version: str, extra_values: dict[str, Any], path: str, value: Any
) -> None:
    values = gateway_values({"extra_values": extra_values})
    with pytest.raises(DescriptionError) as caught:
        check_values(values, _schema(version))
    assert caught.value.field == path
    assert str(caught.value).startswith(f"{path}: rejected by the chart schema")
    assert str(caught.value).endswith(f"(got {value!r})")


def test_chart_schema_rejects_unknown_key_in_1_29() -> None:
    values = gateway_values({"extra_values": {"replicas": 2}})
    with pytest.raises(DescriptionError) as caught:
        check_values(values, _schema("1.29.6"))
    assert str(caught.value) == "values.replicas: unknown key rejected by the chart schema (got 2)"


def test_check_values_unreadable_schema(tmp_path: Path) -> None:
    with pytest.raises(DescriptionError, match=r"^schema_path: cannot read"):
        check_values({}, str(tmp_path / "missing.json"))
