"""Unit tests of the egress audit checks (plugins/module_utils/_audit.py).

Each test starts from a locked-down mesh (what the collection writes for the example
description, plus the mesh ConfigMap a real mesh has), which gives no finding at or above
warning, changes one thing, and asserts the exact findings it causes.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / ".venv" / "collections"))
from ansible_collections.meshguard.egress.plugins.module_utils import _audit

GW_LABELS = {"istio": "egressgateway"}
GW_HOST = "istio-egressgateway.istio-egress.svc.cluster.local"
NS_LABEL = "kubernetes.io/metadata.name"


def obj(kind: str, name: str, namespace: str | None = None, spec: Any = None, **meta: Any):
    metadata: dict[str, Any] = {"name": name, **meta}
    if namespace is not None:
        metadata["namespace"] = namespace
    out: dict[str, Any] = {"kind": kind, "metadata": metadata}
    if spec is not None:
        out["spec"] = spec
    return out


def namespace(name: str, **labels: str) -> dict[str, Any]:
    return obj("Namespace", name, labels={NS_LABEL: name, **labels})


def mesh_configmap(mesh: str, name: str = "istio-main", ns: str = "istio-system"):
    out = obj("ConfigMap", name, ns)
    out["data"] = {"mesh": mesh}
    return out


def peer(ns: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "namespaceSelector": {"matchLabels": {NS_LABEL: ns}},
        "podSelector": {"matchLabels": labels},
    }


def ports(*pairs: tuple[int, str]) -> list[dict[str, Any]]:
    return [{"port": p, "protocol": proto} for p, proto in pairs]


DNS_RULE = {"to": [peer("kube-system", {"k8s-app": "kube-dns"})], "ports": ports((53, "UDP"))}
ISTIOD_RULE = {"to": [peer("istio-system", {"app": "istiod"})], "ports": ports((15012, "TCP"))}


def netpol(name: str, ns: str, egress: list[dict[str, Any]], selector=None, types=("Egress",)):
    spec: dict[str, Any] = {"podSelector": selector or {}, "egress": egress}
    if types is not None:
        spec["policyTypes"] = list(types)
    return obj("NetworkPolicy", name, ns, spec)


def lockdown(ns: str) -> dict[str, Any]:
    return netpol(
        "lockdown",
        ns,
        [
            DNS_RULE,
            ISTIOD_RULE,
            {"to": [peer("istio-egress", GW_LABELS)], "ports": ports((443, "TCP"))},
            {"to": [{"podSelector": {}}]},
        ],
    )


def istio_mesh() -> dict[str, list[dict[str, Any]]]:
    """The istio flavor of the example description, converged, with a real mesh's config."""
    return {
        "Namespace": [
            namespace("istio-system"),
            namespace("kube-system"),
            namespace("istio-egress"),
            namespace("global"),
            namespace("bookinfo", **{"istio.io/rev": "main"}),
        ],
        "ConfigMap": [mesh_configmap("accessLogFile: /dev/stdout\n")],
        "Sidecar": [
            obj(
                "Sidecar",
                "default",
                "istio-system",
                {"outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"}},
            )
        ],
        "ServiceEntry": [
            obj(
                "ServiceEntry",
                "httpbin.org",
                "global",
                {
                    "hosts": ["httpbin.org"],
                    "location": "MESH_EXTERNAL",
                    "resolution": "DNS",
                    "ports": [
                        {"number": 80, "name": "http-80", "protocol": "HTTP"},
                        {"number": 443, "name": "https", "protocol": "HTTPS"},
                    ],
                },
            )
        ],
        "VirtualService": [
            obj(
                "VirtualService",
                "httpbin.org",
                "global",
                {
                    "hosts": ["httpbin.org"],
                    "gateways": ["mesh", "istio-egress/meshguard-egress"],
                    "http": [
                        {
                            "match": [{"gateways": ["mesh"], "port": 80}],
                            "route": [{"destination": {"host": GW_HOST, "port": {"number": 443}}}],
                        },
                        {
                            "match": [{"gateways": ["istio-egress/meshguard-egress"], "port": 443}],
                            "route": [
                                {"destination": {"host": "httpbin.org", "port": {"number": 443}}}
                            ],
                        },
                    ],
                },
            )
        ],
        "Gateway": [
            obj(
                "Gateway",
                "meshguard-egress",
                "istio-egress",
                {
                    "selector": dict(GW_LABELS),
                    "servers": [
                        {
                            "port": {"number": 443, "name": "https-443", "protocol": "HTTPS"},
                            "hosts": ["global/httpbin.org"],
                            "tls": {"mode": "ISTIO_MUTUAL"},
                        }
                    ],
                },
            )
        ],
        "AuthorizationPolicy": [
            obj(
                "AuthorizationPolicy",
                "meshguard-egress-allow",
                "istio-egress",
                {
                    "selector": {"matchLabels": dict(GW_LABELS)},
                    "action": "ALLOW",
                    "rules": [
                        {
                            "from": [
                                {
                                    "source": {
                                        "principals": [
                                            "cluster.local/ns/bookinfo/sa/bookinfo-productpage"
                                        ]
                                    }
                                }
                            ],
                            "to": [{"operation": {"hosts": ["httpbin.org", "httpbin.org:*"]}}],
                        }
                    ],
                },
            )
        ],
        "NetworkPolicy": [
            lockdown("bookinfo"),
            netpol("gateway-internet", "istio-egress", [{}], {"matchLabels": dict(GW_LABELS)}),
            netpol("lockdown", "istio-egress", [DNS_RULE, ISTIOD_RULE]),
        ],
    }


def gloo_mesh() -> dict[str, list[dict[str, Any]]]:
    """The gloo flavor of the example description, converged."""
    inv = istio_mesh()
    for kind in ("ServiceEntry", "VirtualService", "Gateway", "AuthorizationPolicy"):
        inv[kind] = []
    vg_ref = {"cluster": "cluster-1", "name": "egress-vg", "namespace": "istio-egress"}
    inv["VirtualGateway"] = [
        obj(
            "VirtualGateway",
            "egress-vg",
            "istio-egress",
            {
                "workloads": [
                    {
                        "selector": {
                            "labels": dict(GW_LABELS),
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
            },
        )
    ]
    inv["ExternalService"] = [
        obj(
            "ExternalService",
            "httpbin.org",
            "global",
            {
                "hosts": ["httpbin.org"],
                "ports": [
                    {
                        "name": "https",
                        "number": 443,
                        "protocol": "HTTPS",
                        "clientsideTls": {},
                        "egressGatewayRoutes": {"portMatch": 80, "virtualGatewayRefs": [vg_ref]},
                    }
                ],
            },
        )
    ]
    inv["AccessPolicy"] = [
        obj(
            "AccessPolicy",
            "egress-access-policy",
            "istio-egress",
            {
                "applyToDestinations": [
                    {
                        "kind": "EXTERNAL_SERVICE",
                        "port": {"number": 443},
                        "selector": {
                            "name": "httpbin.org",
                            "namespace": "global",
                            "cluster": "cluster-1",
                        },
                    }
                ],
                "config": {
                    "authz": {
                        "allowedClients": [
                            {
                                "serviceAccountSelector": {
                                    "cluster": "cluster-1",
                                    "namespace": "bookinfo",
                                    "name": "bookinfo-productpage",
                                }
                            }
                        ]
                    }
                },
            },
        )
    ]
    return inv


def run(inv: dict[str, Any], missing=(), **options: Any) -> list[dict[str, Any]]:
    return [f.as_dict() for f in _audit.audit(inv, options, missing)]


def serious(findings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [f for f in findings if _audit.severity_rank(f["severity"]) >= 1]


def only(findings: list[dict[str, Any]], check_id: str) -> list[dict[str, Any]]:
    return [f for f in findings if f["id"] == check_id]


def refs(finding: dict[str, Any]) -> list[str]:
    return [_audit.ref_text(o) for o in finding["objects"]]


# --------------------------------------------------------------------------- baselines


@pytest.mark.parametrize("mesh", [istio_mesh, gloo_mesh])
def test_the_converged_example_has_no_finding_at_or_above_warning(mesh) -> None:
    findings = run(mesh())
    assert serious(findings) == [], findings
    # the root Sidecar carries REGISTRY_ONLY, the mesh config does not: an info
    assert [f["id"] for f in findings if f["id"] != "routing.port_direct"] == [
        "outbound.mesh_config_allow_any"
    ]


def test_the_istio_flavors_origination_port_is_an_info_because_lockdown_drops_it() -> None:
    (finding,) = only(run(istio_mesh()), "routing.port_direct")
    assert finding["severity"] == "info"
    assert "port 443 of httpbin.org" in finding["message"]
    assert refs(finding) == ["ServiceEntry/global/httpbin.org", "VirtualService/global/httpbin.org"]


def test_without_lockdown_the_unrouted_port_is_an_error() -> None:
    inv = istio_mesh()
    inv["NetworkPolicy"] = [
        p for p in inv["NetworkPolicy"] if p["metadata"]["namespace"] != "bookinfo"
    ]
    (finding,) = only(run(inv), "routing.port_direct")
    assert finding["severity"] == "error"
    assert "namespaces without lockdown: bookinfo" in finding["message"]


def test_every_finding_names_a_known_check_and_carries_its_fix() -> None:
    with pytest.raises(ValueError, match="unknown check"):
        _audit.Finding("nope", "error", "m")
    with pytest.raises(ValueError, match="unknown severity"):
        _audit.Finding("drift.missing", "fatal", "m")
    assert _audit.Finding("drift.missing", "error", "m").fix == _audit.CHECKS["drift.missing"].fix


# --------------------------------------------------------------------------- outbound


def test_missing_mesh_config_is_a_warning_and_defaults_to_allow_any() -> None:
    inv = istio_mesh()
    inv["ConfigMap"] = []
    inv["Sidecar"] = []
    findings = run(inv)
    (missing,) = only(findings, "outbound.mesh_config_missing")
    assert missing["severity"] == "warning"
    assert refs(missing) == ["Namespace/istio-system"]
    (allow_any,) = only(findings, "outbound.mesh_allow_any")
    assert allow_any["severity"] == "critical"
    assert "defaults to ALLOW_ANY" in allow_any["message"]
    assert refs(allow_any) == ["Namespace/bookinfo"]


def test_configmaps_without_mesh_key_or_in_other_namespaces_are_not_mesh_configs() -> None:
    inv = istio_mesh()
    inv["ConfigMap"] = [
        {**mesh_configmap("x: 1", "istio-ca-root-cert"), "data": {"root-cert.pem": "x"}},
        mesh_configmap("accessLogFile: /dev/stdout", "istio", "other"),
        mesh_configmap("accessLogFile: /dev/stdout", "kube-root-ca", "istio-system"),
    ]
    assert only(run(inv), "outbound.mesh_config_missing")


def test_unparsable_mesh_config_is_reported() -> None:
    inv = istio_mesh()
    inv["ConfigMap"] = [mesh_configmap("accessLogFile: [unclosed")]
    (finding,) = only(run(inv), "outbound.mesh_config_missing")
    assert "cannot parse" in finding["message"]
    assert refs(finding) == ["ConfigMap/istio-system/istio-main"]


def test_mesh_allow_any_without_root_sidecar_is_critical_and_lists_namespaces() -> None:
    inv = istio_mesh()
    inv["Sidecar"] = []
    (finding,) = only(run(inv), "outbound.mesh_allow_any")
    assert finding["severity"] == "critical"
    assert refs(finding) == ["ConfigMap/istio-system/istio-main", "Namespace/bookinfo"]
    assert "pods in bookinfo can reach any external host" in finding["message"]


def test_mesh_allow_any_with_no_affected_namespace_is_a_warning() -> None:
    inv = istio_mesh()
    inv["Sidecar"] = [
        obj("Sidecar", "default", "bookinfo", {"outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"}})
    ]
    (finding,) = only(run(inv), "outbound.mesh_allow_any")
    assert finding["severity"] == "warning"
    assert refs(finding) == ["ConfigMap/istio-system/istio-main"]


def test_mesh_config_registry_only_needs_no_root_sidecar() -> None:
    inv = istio_mesh()
    inv["Sidecar"] = []
    inv["ConfigMap"] = [
        mesh_configmap("outboundTrafficPolicy:\n  mode: REGISTRY_ONLY\naccessLogFile: /dev/stdout")
    ]
    findings = run(inv)
    assert not only(findings, "outbound.mesh_allow_any")
    assert not only(findings, "outbound.mesh_config_allow_any")


def test_root_sidecar_setting_allow_any_is_named() -> None:
    inv = istio_mesh()
    inv["Sidecar"][0]["spec"]["outboundTrafficPolicy"]["mode"] = "ALLOW_ANY"
    (finding,) = only(run(inv), "outbound.mesh_allow_any")
    assert "root Sidecar Sidecar/istio-system/default sets ALLOW_ANY" in finding["message"]
    assert "Sidecar/istio-system/default" in refs(finding)


def test_root_namespace_comes_from_the_mesh_config() -> None:
    inv = istio_mesh()
    inv["ConfigMap"] = [mesh_configmap("rootNamespace: istio-config\naccessLogFile: /dev/stdout")]
    inv["Namespace"].append(namespace("istio-config"))
    findings = run(inv)
    # the Sidecar in istio-system no longer is the root one
    (allow_any,) = only(findings, "outbound.mesh_allow_any")
    assert allow_any["severity"] == "critical"
    (outside,) = only(findings, "outbound.sidecar_outside_root")
    assert outside["severity"] == "warning"
    assert refs(outside) == ["Sidecar/istio-system/default"]
    assert "the root namespace is istio-config" in outside["message"]


def test_namespace_sidecar_allow_any_is_an_error() -> None:
    inv = istio_mesh()
    inv["Sidecar"].append(
        obj("Sidecar", "default", "bookinfo", {"outboundTrafficPolicy": {"mode": "ALLOW_ANY"}})
    )
    (finding,) = only(run(inv), "outbound.namespace_allow_any")
    assert finding["severity"] == "error"
    assert refs(finding) == ["Sidecar/bookinfo/default"]
    # a namespace Sidecar in an injected namespace is not "outside the root"
    assert not only(run(inv), "outbound.sidecar_outside_root")


def test_sidecar_allow_any_in_a_namespace_without_injection_is_a_warning() -> None:
    inv = istio_mesh()
    inv["Namespace"].append(namespace("staging"))
    inv["Sidecar"].append(
        obj("Sidecar", "open", "staging", {"outboundTrafficPolicy": {"mode": "ALLOW_ANY"}})
    )
    (finding,) = only(run(inv), "outbound.namespace_allow_any")
    assert finding["severity"] == "warning"
    assert "no sidecar injection yet" in finding["message"]


def test_workload_sidecar_allow_any() -> None:
    inv = istio_mesh()
    inv["Sidecar"].append(
        obj(
            "Sidecar",
            "reviews",
            "bookinfo",
            {
                "workloadSelector": {"labels": {"app": "reviews"}},
                "outboundTrafficPolicy": {"mode": "ALLOW_ANY"},
            },
        )
    )
    findings = run(inv)
    (finding,) = only(findings, "outbound.workload_allow_any")
    assert (finding["severity"], refs(finding)) == ("error", ["Sidecar/bookinfo/reviews"])
    assert "{'app': 'reviews'}" in finding["message"]
    assert not only(findings, "outbound.namespace_allow_any")


def test_namespace_sidecar_without_mode_inherits_the_mesh_configs_allow_any() -> None:
    inv = istio_mesh()
    inv["Sidecar"].append(obj("Sidecar", "default", "bookinfo", {"egress": [{"hosts": ["./*"]}]}))
    (finding,) = only(run(inv), "outbound.sidecar_inherits_allow_any")
    assert finding["severity"] == "error"
    assert refs(finding) == ["Sidecar/bookinfo/default", "ConfigMap/istio-system/istio-main"]


def test_sidecar_without_mode_is_fine_when_the_mesh_config_is_registry_only() -> None:
    inv = istio_mesh()
    inv["ConfigMap"] = [
        mesh_configmap("outboundTrafficPolicy: {mode: REGISTRY_ONLY}\naccessLogFile: /dev/stdout")
    ]
    inv["Sidecar"].append(obj("Sidecar", "default", "bookinfo", {"egress": [{"hosts": ["./*"]}]}))
    assert serious(run(inv)) == []


def test_default_sidecar_outside_root_in_a_namespace_without_injection() -> None:
    inv = istio_mesh()
    inv["Namespace"].append(namespace("istio-config"))
    inv["Sidecar"].append(
        obj(
            "Sidecar",
            "default",
            "istio-config",
            {"outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"}},
        )
    )
    findings = serious(run(inv))
    assert [f["id"] for f in findings] == ["outbound.sidecar_outside_root"]
    assert refs(findings[0]) == ["Sidecar/istio-config/default"]


def test_revisions_pick_their_own_mesh_config() -> None:
    inv = istio_mesh()
    inv["ConfigMap"].append(
        mesh_configmap("outboundTrafficPolicy: {mode: ALLOW_ANY}", "istio-canary")
    )
    inv["Namespace"].append(namespace("shop", **{"istio.io/rev": "canary"}))
    inv["NetworkPolicy"].append(lockdown("shop"))
    inv["Sidecar"].append(obj("Sidecar", "default", "shop", {}))
    findings = run(inv)
    (inherits,) = only(findings, "outbound.sidecar_inherits_allow_any")
    assert refs(inherits) == ["Sidecar/shop/default", "ConfigMap/istio-system/istio-canary"]


def test_injection_label_disabled_and_pods_with_sidecars() -> None:
    inv = istio_mesh()
    inv["Sidecar"] = []
    inv["Namespace"].append(namespace("legacy", **{"istio-injection": "disabled"}))
    inv["Namespace"].append(namespace("podded"))
    inv["Pod"] = [
        obj("Pod", "p", "podded", {"containers": [{"name": "app"}, {"name": "istio-proxy"}]})
    ]
    (finding,) = only(run(inv), "outbound.mesh_allow_any")
    assert refs(finding)[1:] == ["Namespace/bookinfo", "Namespace/podded"]


# --------------------------------------------------------------------------- routing


def test_service_entry_without_gateway_route() -> None:
    inv = istio_mesh()
    inv["ServiceEntry"].append(
        obj(
            "ServiceEntry",
            "api",
            "global",
            {"hosts": ["api.example.com"], "resolution": "DNS", "ports": [{"number": 443}]},
        )
    )
    (finding,) = only(run(inv), "routing.service_entry_direct")
    # the lockdown drops the direct connection: a warning (it does not work), not an error
    assert (finding["severity"], refs(finding)) == ("warning", ["ServiceEntry/global/api"])
    inv["NetworkPolicy"] = [
        p for p in inv["NetworkPolicy"] if p["metadata"]["namespace"] != "bookinfo"
    ]
    (finding,) = only(run(inv), "routing.service_entry_direct")
    assert finding["severity"] == "error"


def test_mesh_internal_service_entries_and_routes_to_the_host_itself() -> None:
    inv = istio_mesh()
    inv["ServiceEntry"].append(
        obj("ServiceEntry", "db", "global", {"hosts": ["db.corp"], "location": "MESH_INTERNAL"})
    )
    # a VirtualService that routes the host to itself does not go through a gateway
    inv["ServiceEntry"].append(
        obj(
            "ServiceEntry",
            "api",
            "global",
            {"hosts": ["api.example.com"], "ports": [{"number": 80}]},
        )
    )
    inv["VirtualService"].append(
        obj(
            "VirtualService",
            "api",
            "global",
            {
                "hosts": ["api.example.com"],
                "http": [{"route": [{"destination": {"host": "api.example.com"}}]}],
            },
        )
    )
    findings = only(run(inv), "routing.service_entry_direct")
    assert [refs(f) for f in findings] == [["ServiceEntry/global/api"]]


def test_wildcard_service_entry_without_gateway_is_an_error_even_when_locked_down() -> None:
    inv = istio_mesh()
    inv["ServiceEntry"].append(
        obj(
            "ServiceEntry",
            "wild",
            "global",
            {"hosts": ["*.example.com"], "resolution": "NONE", "ports": [{"number": 443}]},
        )
    )
    (finding,) = only(run(inv), "routing.service_entry_direct")
    assert finding["severity"] == "error"
    assert "wildcard bypasses REGISTRY_ONLY" in finding["message"]


def test_wildcard_with_dns_resolution_is_unroutable() -> None:
    inv = istio_mesh()
    inv["ServiceEntry"].append(
        obj(
            "ServiceEntry",
            "wild",
            "global",
            {"hosts": ["*.example.com"], "resolution": "DNS", "ports": [{"number": 443}]},
        )
    )
    (finding,) = only(run(inv), "routing.wildcard_unroutable")
    assert (finding["severity"], refs(finding)) == ("error", ["ServiceEntry/global/wild"])


def test_wildcard_routed_to_itself_at_the_gateway_is_unroutable() -> None:
    inv = istio_mesh()
    inv["ServiceEntry"].append(
        obj(
            "ServiceEntry",
            "wild",
            "global",
            {"hosts": ["*.example.com"], "resolution": "NONE", "ports": [{"number": 80}]},
        )
    )
    inv["VirtualService"].append(
        obj(
            "VirtualService",
            "wild",
            "global",
            {
                "hosts": ["*.example.com"],
                "gateways": ["mesh", "istio-egress/meshguard-egress"],
                "http": [
                    {
                        "match": [{"gateways": ["mesh"], "port": 80}],
                        "route": [{"destination": {"host": GW_HOST}}],
                    },
                    {
                        "match": [{"gateways": ["istio-egress/meshguard-egress"]}],
                        "route": [{"destination": {"host": "*.example.com"}}],
                    },
                ],
            },
        )
    )
    findings = run(inv)
    (finding,) = only(findings, "routing.wildcard_unroutable")
    assert refs(finding) == ["VirtualService/global/wild", "ServiceEntry/global/wild"]
    assert not only(findings, "routing.service_entry_direct")


def test_external_service_without_egress_gateway_routes() -> None:
    inv = gloo_mesh()
    inv["ExternalService"].append(
        obj(
            "ExternalService",
            "direct",
            "global",
            {"hosts": ["direct.example.com"], "ports": [{"number": 443, "protocol": "HTTPS"}]},
        )
    )
    (finding,) = only(run(inv), "routing.external_service_direct")
    assert (finding["severity"], refs(finding)) == ("warning", ["ExternalService/global/direct"])


def test_external_service_with_one_direct_port() -> None:
    inv = gloo_mesh()
    inv["ExternalService"][0]["spec"]["ports"].append({"number": 8443, "protocol": "HTTPS"})
    (finding,) = only(run(inv), "routing.port_direct")
    assert finding["severity"] == "info"
    assert "port 8443" in finding["message"]


def test_external_service_routed_to_a_gateway_that_does_not_expose_it() -> None:
    inv = gloo_mesh()
    inv["VirtualGateway"][0]["spec"]["listeners"][0]["exposedExternalServices"] = [
        {"host": "other.example.com"}
    ]
    findings = run(inv)
    (finding,) = only(findings, "routing.not_exposed")
    assert finding["severity"] == "warning"
    assert refs(finding) == [
        "ExternalService/global/httpbin.org",
        "VirtualGateway/istio-egress/egress-vg",
    ]


def test_references_to_another_cluster_do_not_count() -> None:
    inv = gloo_mesh()
    (finding,) = only(run(inv, cluster="cluster-2"), "routing.external_service_direct")
    assert refs(finding) == ["ExternalService/global/httpbin.org"]


# --------------------------------------------------------------------------- access


def test_gloo_host_without_access_policy() -> None:
    inv = gloo_mesh()
    inv["AccessPolicy"] = []
    (finding,) = only(run(inv), "access.host_without_policy")
    assert finding["severity"] == "error"
    assert refs(finding) == [
        "VirtualGateway/istio-egress/egress-vg",
        "ExternalService/global/httpbin.org",
    ]


def test_gloo_policy_for_another_external_service_or_in_dry_run_does_not_count() -> None:
    inv = gloo_mesh()
    inv["AccessPolicy"][0]["spec"]["applyToDestinations"][0]["selector"]["name"] = "other"
    assert only(run(inv), "access.host_without_policy")
    inv = gloo_mesh()
    inv["AccessPolicy"][0]["spec"]["config"]["authz"]["dryRun"] = True
    assert only(run(inv), "access.host_without_policy")


def test_gloo_gateway_exposing_everything() -> None:
    inv = gloo_mesh()
    inv["VirtualGateway"][0]["spec"]["listeners"][0]["exposedExternalServices"] = []
    inv["ExternalService"].append(
        obj("ExternalService", "x", "global", {"hosts": ["x.example.com"], "ports": []})
    )
    findings = only(run(inv), "access.host_without_policy")
    assert [refs(f)[1] for f in findings] == ["ExternalService/global/x"]
    assert "exposes every ExternalService" in findings[0]["message"]


@pytest.mark.parametrize(
    "clients",
    [[], [{"serviceAccountSelector": {"cluster": "cluster-1"}}], [{"serviceAccountSelector": {}}]],
)
def test_gloo_policy_allowing_everyone(clients) -> None:
    inv = gloo_mesh()
    inv["AccessPolicy"][0]["spec"]["config"]["authz"]["allowedClients"] = clients
    (finding,) = only(run(inv), "access.allow_everyone")
    assert finding["severity"] == "error"
    assert refs(finding) == [
        "AccessPolicy/istio-egress/egress-access-policy",
        "ExternalService/global/httpbin.org",
    ]


def test_gloo_policy_for_a_namespace_or_labels_is_not_everyone() -> None:
    inv = gloo_mesh()
    inv["AccessPolicy"][0]["spec"]["config"]["authz"]["allowedClients"] = [
        {"serviceAccountSelector": {"namespace": "bookinfo"}},
        {"serviceAccountSelector": {"labels": {"account": "productpage"}}},
    ]
    assert not only(run(inv), "access.allow_everyone")


def test_istio_gateway_without_authorization_policy() -> None:
    inv = istio_mesh()
    inv["AuthorizationPolicy"] = []
    (finding,) = only(run(inv), "access.host_without_policy")
    assert (finding["severity"], refs(finding)) == (
        "error",
        ["Gateway/istio-egress/meshguard-egress"],
    )
    assert "httpbin.org" in finding["message"]


def test_istio_policy_selecting_other_pods_or_dry_run_does_not_count() -> None:
    inv = istio_mesh()
    inv["AuthorizationPolicy"][0]["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    assert only(run(inv), "access.host_without_policy")
    inv = istio_mesh()
    inv["AuthorizationPolicy"][0]["metadata"]["annotations"] = {"istio.io/dry-run": "true"}
    assert only(run(inv), "access.host_without_policy")


def test_istio_root_namespace_policy_applies_to_the_gateway() -> None:
    inv = istio_mesh()
    inv["AuthorizationPolicy"][0]["metadata"]["namespace"] = "istio-system"
    assert not only(run(inv), "access.host_without_policy")


@pytest.mark.parametrize(
    "rule",
    [
        {},
        {"to": [{"operation": {"hosts": ["httpbin.org"]}}]},
        {"from": [{"source": {"principals": ["*"]}}]},
        {"from": [{"source": {"notPrincipals": ["cluster.local/ns/x/sa/y"]}}]},
    ],
)
def test_istio_rule_allowing_everyone(rule) -> None:
    inv = istio_mesh()
    inv["AuthorizationPolicy"][0]["spec"]["rules"].append(rule)
    (finding,) = only(run(inv), "access.allow_everyone")
    assert finding["severity"] == "error"
    assert refs(finding) == [
        "AuthorizationPolicy/istio-egress/meshguard-egress-allow",
        "Gateway/istio-egress/meshguard-egress",
    ]


def test_istio_rule_for_another_host_or_a_namespace_is_not_everyone_to_this_host() -> None:
    inv = istio_mesh()
    rules = inv["AuthorizationPolicy"][0]["spec"]["rules"]
    rules.append({"to": [{"operation": {"hosts": ["other.example.com"]}}]})
    rules.append({"from": [{"source": {"namespaces": ["bookinfo"]}}]})
    assert not only(run(inv), "access.allow_everyone")


# --------------------------------------------------------------------------- lockdown


def test_mesh_namespace_without_egress_policy() -> None:
    inv = istio_mesh()
    inv["NetworkPolicy"] = [
        p for p in inv["NetworkPolicy"] if p["metadata"]["namespace"] != "bookinfo"
    ]
    (finding,) = only(run(inv), "lockdown.namespace_without_egress_policy")
    assert (finding["severity"], refs(finding)) == ("error", ["Namespace/bookinfo"])


def test_egress_policy_for_some_pods_only_or_ingress_only_is_not_a_default_deny() -> None:
    inv = istio_mesh()
    inv["NetworkPolicy"][0]["spec"]["podSelector"] = {"matchLabels": {"app": "reviews"}}
    (finding,) = only(run(inv), "lockdown.namespace_without_egress_policy")
    assert refs(finding) == ["Namespace/bookinfo", "NetworkPolicy/bookinfo/lockdown"]
    inv = istio_mesh()
    inv["NetworkPolicy"][0]["spec"]["policyTypes"] = ["Ingress"]
    assert only(run(inv), "lockdown.namespace_without_egress_policy")


def test_policy_without_policy_types_but_with_egress_counts() -> None:
    inv = istio_mesh()
    del inv["NetworkPolicy"][0]["spec"]["policyTypes"]
    assert serious(run(inv)) == []


@pytest.mark.parametrize(
    "rule",
    [
        {},
        {"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": ports((443, "TCP"))},
        {"to": [{"ipBlock": {"cidr": "::/0"}}]},
    ],
)
def test_rule_admitting_any_address(rule) -> None:
    inv = istio_mesh()
    inv["NetworkPolicy"].append(netpol("open", "bookinfo", [rule], {"matchLabels": {"app": "x"}}))
    findings = run(inv)
    (finding,) = only(findings, "lockdown.egress_open")
    assert (finding["severity"], refs(finding)) == ("error", ["NetworkPolicy/bookinfo/open"])
    # and a ServiceEntry port that is not routed is now an error: pods can leave directly
    assert only(findings, "routing.port_direct")[0]["severity"] == "error"


def test_specific_ip_block_and_dns_to_anywhere() -> None:
    inv = istio_mesh()
    inv["NetworkPolicy"].append(
        netpol("corp", "bookinfo", [{"to": [{"ipBlock": {"cidr": "203.0.113.0/24"}}]}])
    )
    assert not only(run(inv), "lockdown.egress_open")
    inv["NetworkPolicy"].append(netpol("dns", "bookinfo", [{"ports": ports((53, "UDP"))}]))
    (finding,) = only(run(inv), "lockdown.egress_open")
    assert finding["severity"] == "info"


def test_policy_blocking_dns() -> None:
    inv = istio_mesh()
    inv["NetworkPolicy"][0]["spec"]["egress"].remove(DNS_RULE)
    (finding,) = only(run(inv), "lockdown.blocks_dns")
    assert finding["severity"] == "error"
    assert refs(finding) == ["Namespace/bookinfo", "NetworkPolicy/bookinfo/lockdown"]


def test_dns_rule_with_tcp_only_or_the_wrong_namespace_label_blocks_dns() -> None:
    inv = istio_mesh()
    inv["NetworkPolicy"][0]["spec"]["egress"][0] = {
        "to": DNS_RULE["to"],
        "ports": ports((53, "TCP")),
    }
    assert only(run(inv), "lockdown.blocks_dns")
    # Kubernetes < 1.21 does not label namespaces with their name: the selector misses
    inv = istio_mesh()
    inv["Namespace"] = [n for n in inv["Namespace"] if n["metadata"]["name"] != "kube-system"]
    inv["Namespace"].append(obj("Namespace", "kube-system", labels={}))
    assert only(run(inv), "lockdown.blocks_dns")


def test_dns_pods_read_from_the_cluster_decide() -> None:
    inv = istio_mesh()
    inv["NetworkPolicy"][0]["spec"]["egress"][0] = {
        "to": [peer("kube-system", {"app": "coredns"})],
        "ports": ports((53, "UDP")),
    }
    # without Pods, the DNS pods are assumed to carry dns_pod_labels only
    assert only(run(inv), "lockdown.blocks_dns")
    labels = {"k8s-app": "kube-dns", "app": "coredns"}
    inv["Pod"] = [obj("Pod", "coredns-1", "kube-system", {}, labels=labels)]
    assert not only(run(inv), "lockdown.blocks_dns")


def test_policy_blocking_istiod() -> None:
    inv = istio_mesh()
    inv["NetworkPolicy"][0]["spec"]["egress"].remove(ISTIOD_RULE)
    (finding,) = only(run(inv), "lockdown.blocks_istiod")
    assert (finding["severity"], refs(finding)) == (
        "error",
        ["Namespace/bookinfo", "NetworkPolicy/bookinfo/lockdown"],
    )


def test_istiod_on_port_range_or_all_ports() -> None:
    inv = istio_mesh()
    inv["NetworkPolicy"][0]["spec"]["egress"][1] = {
        "to": ISTIOD_RULE["to"],
        "ports": [{"port": 15010, "endPort": 15014, "protocol": "TCP"}],
    }
    assert not only(run(inv), "lockdown.blocks_istiod")
    inv["NetworkPolicy"][0]["spec"]["egress"][1] = {"to": ISTIOD_RULE["to"]}
    assert not only(run(inv), "lockdown.blocks_istiod")


def test_gateway_pods_blocked_from_dns() -> None:
    inv = istio_mesh()
    inv["NetworkPolicy"][1]["spec"]["egress"] = [{"ports": ports((443, "TCP"))}]
    # the namespace's default-deny policy still allows DNS to every pod, the gateway's too
    assert not only(run(inv), "lockdown.blocks_dns")
    inv["NetworkPolicy"][2]["spec"]["egress"] = [ISTIOD_RULE]
    findings = run(inv)
    (finding,) = only(findings, "lockdown.blocks_dns")
    assert refs(finding) == [
        "Gateway/istio-egress/meshguard-egress",
        "NetworkPolicy/istio-egress/gateway-internet",
        "NetworkPolicy/istio-egress/lockdown",
    ]


def test_gateway_namespace_without_default_deny() -> None:
    inv = istio_mesh()
    inv["NetworkPolicy"] = [p for p in inv["NetworkPolicy"] if p["metadata"]["name"] != "lockdown"]
    inv["NetworkPolicy"].append(lockdown("bookinfo"))
    (finding,) = only(run(inv), "lockdown.gateway_namespace_open")
    assert (finding["severity"], refs(finding)) == (
        "warning",
        ["Namespace/istio-egress", "Gateway/istio-egress/meshguard-egress"],
    )


def test_gateway_namespace_internet_policy_for_every_pod() -> None:
    inv = istio_mesh()
    inv["NetworkPolicy"][1]["spec"]["podSelector"] = {}
    (finding,) = only(run(inv), "lockdown.gateway_namespace_open")
    assert refs(finding) == [
        "NetworkPolicy/istio-egress/gateway-internet",
        "Gateway/istio-egress/meshguard-egress",
    ]


# --------------------------------------------------------------------------- observability


def test_access_log_off() -> None:
    inv = istio_mesh()
    inv["ConfigMap"] = [mesh_configmap("rootNamespace: istio-system\n")]
    (finding,) = only(run(inv, missing=["Telemetry"]), "observability.access_log_off")
    assert finding["severity"] == "warning"
    assert refs(finding) == [
        "Gateway/istio-egress/meshguard-egress",
        "ConfigMap/istio-system/istio-main",
    ]
    assert "Telemetry CRD is not installed" in finding["message"]


def test_telemetry_turns_access_logging_on_or_off() -> None:
    inv = istio_mesh()
    inv["ConfigMap"] = [mesh_configmap("rootNamespace: istio-system\n")]
    inv["Telemetry"] = [
        obj(
            "Telemetry",
            "mesh-default",
            "istio-system",
            {"accessLogging": [{"providers": [{"name": "envoy"}]}]},
        )
    ]
    assert not only(run(inv), "observability.access_log_off")
    inv["Telemetry"].append(
        obj(
            "Telemetry",
            "quiet-gateway",
            "istio-egress",
            {"selector": {"matchLabels": dict(GW_LABELS)}, "accessLogging": [{"disabled": True}]},
        )
    )
    (finding,) = only(run(inv), "observability.access_log_off")
    assert "Telemetry/istio-egress/quiet-gateway disables accessLogging" in finding["message"]
    assert refs(finding)[-1] == "Telemetry/istio-egress/quiet-gateway"


def test_telemetry_without_provider_needs_a_default_provider() -> None:
    inv = istio_mesh()
    inv["ConfigMap"] = [mesh_configmap("rootNamespace: istio-system\n")]
    inv["Telemetry"] = [obj("Telemetry", "t", "istio-system", {"accessLogging": [{}]})]
    assert only(run(inv), "observability.access_log_off")
    inv["ConfigMap"] = [mesh_configmap("defaultProviders: {accessLogging: [envoy]}\n")]
    assert not only(run(inv), "observability.access_log_off")


def test_gloo_gateway_access_log_off() -> None:
    inv = gloo_mesh()
    inv["ConfigMap"] = [mesh_configmap("accessLogFile: ''\n")]
    (finding,) = only(run(inv), "observability.access_log_off")
    assert refs(finding)[0] == "VirtualGateway/istio-egress/egress-vg"


# --------------------------------------------------------------------------- drift and output


def test_drift_missing_changed_unplanned() -> None:
    planned = [
        obj(
            "NetworkPolicy", "lockdown", "bookinfo", {"podSelector": {}, "policyTypes": ["Egress"]}
        ),
        obj(
            "Sidecar",
            "default",
            "istio-system",
            {"outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"}},
        ),
        obj("Namespace", "global"),
    ]
    live = {
        ("NetworkPolicy", "bookinfo", "lockdown"): obj(
            "NetworkPolicy",
            "lockdown",
            "bookinfo",
            {"podSelector": {}, "policyTypes": ["Egress"], "egress": []},
            uid="1",
        ),
        ("Sidecar", "istio-system", "default"): obj(
            "Sidecar", "default", "istio-system", {"outboundTrafficPolicy": {"mode": "ALLOW_ANY"}}
        ),
    }
    owned = [obj("Sidecar", "stray", "bookinfo", {}), live[("Sidecar", "istio-system", "default")]]

    def lookup(o):
        m = o["metadata"]
        return live.get((o["kind"], m.get("namespace", ""), m["name"]))

    findings = [f.as_dict() for f in _audit.drift_findings(planned, lookup, owned)]
    assert [(f["id"], f["severity"], refs(f)) for f in findings] == [
        ("drift.changed", "warning", ["Sidecar/istio-system/default"]),
        ("drift.missing", "error", ["Namespace/global"]),
        ("drift.unplanned", "warning", ["Sidecar/bookinfo/stray"]),
    ]
    assert (
        'spec.outboundTrafficPolicy.mode: planned "REGISTRY_ONLY", found "ALLOW_ANY"'
        in (findings[0]["message"])
    )


def test_summary_table_and_check_results() -> None:
    inv = istio_mesh()
    inv["AuthorizationPolicy"] = []
    findings = _audit.audit(inv)
    summary = _audit.summarize(findings)
    assert summary == {"info": 2, "warning": 0, "error": 1, "critical": 0, "total": 3}
    lines = _audit.table(findings)
    assert lines[0].startswith("ERROR    access.host_without_policy")
    assert lines[2].strip().startswith("fix: Add an AccessPolicy")
    assert _audit.table([]) == ["no findings"]
    results = {r["id"]: r for r in _audit.check_results(findings, "error", {"drift.missing": "x"})}
    assert list(results) == list(_audit.CHECKS)
    assert results["access.host_without_policy"]["failed"] is True
    assert results["outbound.mesh_config_allow_any"]["failed"] is False
    assert len(results["outbound.mesh_config_allow_any"]["findings"]) == 1
    assert results["drift.missing"]["skipped"] == "x"
    info = {r["id"]: r for r in _audit.check_results(findings, "info")}
    assert info["outbound.mesh_config_allow_any"]["failed"] is True


def test_incomplete_and_order() -> None:
    finding = _audit.incomplete_finding({"Sidecar": "403 forbidden", "Pod": "403 forbidden"})
    assert finding.severity == "error"
    assert [o["kind"] for o in finding.objects] == ["Pod", "Sidecar"]
    ordered = _audit.sort_findings(
        [
            _audit.Finding("drift.missing", "error", "b"),
            _audit.Finding("audit.incomplete", "error", "a"),
            _audit.Finding("lockdown.egress_open", "critical", "c"),
        ]
    )
    assert [f.id for f in ordered] == ["lockdown.egress_open", "audit.incomplete", "drift.missing"]


def test_inputs_are_not_modified() -> None:
    inv = istio_mesh()
    before = copy.deepcopy(inv)
    run(inv)
    assert inv == before


def test_selector_and_host_matching() -> None:
    labels = {"app": "a", "tier": "web"}
    assert _audit.selector_matches({}, labels)
    assert _audit.selector_matches(None, labels)
    assert _audit.selector_matches({"matchLabels": {"app": "a"}}, labels)
    assert not _audit.selector_matches({"matchLabels": {"app": "b"}}, labels)

    def expr(op, vals=None):
        return {"matchExpressions": [{"key": "tier", "operator": op, "values": vals}]}

    assert _audit.selector_matches(expr("In", ["web"]), labels)
    assert not _audit.selector_matches(expr("NotIn", ["web"]), labels)
    assert _audit.selector_matches(expr("Exists"), labels)
    assert not _audit.selector_matches(expr("DoesNotExist"), labels)
    assert _audit.host_matches("*.example.com", "api.example.com")
    assert _audit.host_matches("*.example.com", "*.api.example.com")
    assert not _audit.host_matches("*.example.com", "example.com")
    assert _audit.host_matches("*", "anything")
    assert not _audit.host_matches("api.example.com", "*.example.com")


def test_gateway_pods_read_from_the_cluster_with_more_labels() -> None:
    # what the DaemonSet controller creates: the selector's labels and more
    pod_labels = {**GW_LABELS, "app": "istio-egressgateway", "controller-revision-hash": "1"}
    for mesh in (istio_mesh(), gloo_mesh()):
        mesh["Pod"] = [obj("Pod", "gw-1", "istio-egress", {}, labels=pod_labels)]
        assert serious(run(mesh)) == []
        mesh["ConfigMap"] = [mesh_configmap("{}")]
        (finding,) = only(run(mesh), "observability.access_log_off")
        assert "gateway pods {'istio': 'egressgateway'}" in finding["message"]


def test_docs_list_every_check_with_its_fix() -> None:
    docs = Path(__file__).resolve().parents[2] / "docs"
    guide = (docs / "audit.md").read_text()
    troubleshooting = (docs / "troubleshooting.md").read_text()
    for check in _audit.CHECKS.values():
        anchor = check.id.replace(".", "-").replace("_", "-")
        assert f'<a id="{anchor}"></a>`{check.id}`' in guide, check.id
        assert check.fix in guide, check.id
        assert f"[`{check.id}`](audit.md#{anchor})" in troubleshooting, check.id


def test_owned_objects_are_those_of_the_plans_owner() -> None:
    def owned(name: str, owner: str | None) -> dict[str, Any]:
        labels = {"app.kubernetes.io/managed-by": "meshguard.egress"}
        if owner:
            labels["meshguard.io/description"] = owner
        return obj("NetworkPolicy", name, "bookinfo", {}, labels=labels)

    inventory = {
        "NetworkPolicy": [owned("mine", "egress"), owned("theirs", "other"), owned("old", None)],
        "Sidecar": [{**owned("sc", "egress"), "kind": "Sidecar"}],
    }
    plan = [owned("mine", "egress")]
    assert [_audit._name(o) for o in _audit.owned_objects(inventory, plan)] == ["mine"]
    unnamed = [owned("mine", None)]
    assert [_audit._name(o) for o in _audit.owned_objects(inventory, unnamed)] == [
        "mine",
        "theirs",
        "old",
    ]


def test_drift_of_a_list_names_the_missing_items() -> None:
    rule_dns = {"to": [{"podSelector": {}}], "ports": [{"port": 53, "protocol": "UDP"}]}
    rule_pods = {"to": [{"podSelector": {}}]}
    planned = obj("NetworkPolicy", "p", "ns", {"egress": [rule_dns, rule_pods]})
    live = obj("NetworkPolicy", "p", "ns", {"egress": [{**rule_pods, "extra": 1}]})
    (finding,) = _audit.drift_findings([planned], lambda o: live)
    assert "spec.egress: planned 2 items, found 1; missing {" in finding.message
    assert '"port": 53' in finding.message
    assert "not planned" not in finding.message  # the live rule matches a planned one
