"""The plan's own fields, value for value: which concerns it covers, the namespaces it creates
(with their labels), the gateway's release, the nodes and the namespaces to label; each
depends on the concerns asked for. (The objects are the render tests' business; the
verification part has its own tests in test_plan.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from ansible_collections.meshguard.egress.plugins.plugin_utils.description import (
    DescriptionError,
    description_from_variables,
    normalize,
)
from ansible_collections.meshguard.egress.plugins.plugin_utils.plan import build_plan

ROOT = Path(__file__).resolve().parents[4]
EXAMPLE = ROOT / "playbooks" / "inventory" / "example" / "group_vars" / "all" / "egress.yml"
MANAGED = {"app.kubernetes.io/managed-by": "meshguard.egress", "meshguard.io/description": "egress"}


def example() -> dict[str, Any]:
    variables = yaml.safe_load(EXAMPLE.read_text())
    return description_from_variables(
        {k: v for k, v in variables.items() if k not in ("egress_kubeconfig", "egress_context")}
    )


GATEWAY_NAMESPACE = {
    "name": "istio-egress",
    "labels": {
        **MANAGED,
        "meshguard.io/component": "gateway",
        "istio.io/rev": "main",
        "kubernetes.io/metadata.name": "istio-egress",
    },
}
SERVICES_NAMESPACE = {
    "name": "global",
    "labels": {
        **MANAGED,
        "meshguard.io/component": "routes",
        "kubernetes.io/metadata.name": "global",
    },
}


def test_the_example_plan_field_by_field() -> None:
    plan = build_plan(example())
    assert sorted(plan) == [
        "adopt",
        "concerns",
        "description",
        "flavor",
        "istiod",
        "label_namespaces",
        "name",
        "namespaces",
        "nodes",
        "objects",
        "release",
    ]
    assert (plan["name"], plan["flavor"], plan["adopt"]) == ("egress", "gloo", False)
    assert plan["concerns"] == ["outbound_policy", "gateway", "routes", "access", "lockdown"]
    assert plan["namespaces"] == [SERVICES_NAMESPACE, GATEWAY_NAMESPACE]
    release = dict(plan["release"])
    values = release.pop("values")
    assert release == {
        "name": "istio-egressgateway",
        "namespace": "istio-egress",
        "chart_ref": "oci://us-docker.pkg.dev/gloo-mesh/istio-helm-REPO_KEY/gateway",
        "chart_repo_url": "",
        "chart_version": "1.23.4",
        "values_schema": "",
        "atomic": True,
        "wait_timeout": 300,
    }
    assert values["revision"] == "main" and values["replicaCount"] == 1
    assert plan["nodes"] == {"names": [], "label": "meshguard.io/egress-gateway", "taint": False}
    assert plan["label_namespaces"] == ["bookinfo", "istio-egress", "istio-system", "kube-system"]
    assert plan["istiod"] is None
    assert plan["description"] == normalize(example())
    assert "expectations" not in plan and "probes" not in plan  # verify defaults to False


def test_gateway_settings_reach_the_release_and_the_nodes() -> None:
    spec = example()
    spec["gateway"].update(
        name="egress-gw",
        namespace="egress",
        values_schema="/charts/gateway/values.schema.json",
        dedicated_nodes=["node-b", "node-a"],
        node_label="example.com/egress",
        taint_nodes=True,
    )
    plan = build_plan(spec, "gateway")
    assert (plan["release"]["name"], plan["release"]["namespace"]) == ("egress-gw", "egress")
    assert plan["release"]["values_schema"] == "/charts/gateway/values.schema.json"
    assert plan["nodes"] == {
        "names": ["node-a", "node-b"],
        "label": "example.com/egress",
        "taint": True,
    }


def test_one_concern_as_a_string() -> None:
    plan = build_plan(example(), "gateway")
    assert plan["concerns"] == ["gateway"]
    assert plan["namespaces"] == [GATEWAY_NAMESPACE]
    assert plan["release"]["name"] == "istio-egressgateway"
    assert plan["label_namespaces"] == []


def test_routes_alone_create_the_services_namespace_only() -> None:
    plan = build_plan(example(), "routes")
    assert plan["concerns"] == ["routes"]
    assert plan["namespaces"] == [SERVICES_NAMESPACE]
    assert (plan["release"], plan["nodes"], plan["istiod"]) == (None, None, None)
    assert plan["label_namespaces"] == []


def test_concerns_follow_the_apply_order_whatever_the_order_asked() -> None:
    plan = build_plan(example(), ["lockdown", "routes", "gateway"])
    assert plan["concerns"] == ["gateway", "routes", "lockdown"]
    assert plan["namespaces"] == [SERVICES_NAMESPACE, GATEWAY_NAMESPACE]
    assert plan["label_namespaces"] == ["bookinfo", "istio-egress", "istio-system", "kube-system"]


def test_lockdown_alone() -> None:
    plan = build_plan(example(), ["lockdown"])
    assert plan["namespaces"] == []  # the gateway and services namespaces are not its own
    assert (plan["release"], plan["nodes"]) == (None, None)
    assert plan["label_namespaces"] == ["bookinfo", "istio-egress", "istio-system", "kube-system"]


def test_a_concern_name_that_is_part_of_another_is_refused() -> None:
    with pytest.raises(DescriptionError) as caught:
        build_plan(example(), "rout")
    assert str(caught.value) == (
        "concern: must be one of outbound_policy, gateway, routes, access, lockdown (got 'rout')"
    )


def test_only_the_concerns_asked_for_are_validated() -> None:
    spec = example()
    spec["lockdown"] = {"namespaces": "oops"}
    assert build_plan(spec, "routes")["concerns"] == ["routes"]
    with pytest.raises(DescriptionError, match=r"^lockdown\.namespaces: must be a list"):
        build_plan(spec)


def test_an_unrevisioned_gateway_namespace_has_no_revision_label() -> None:
    spec = example()
    del spec["revision"]
    [namespace] = build_plan(spec, "gateway")["namespaces"]
    assert namespace["labels"] == {
        **MANAGED,
        "meshguard.io/component": "gateway",
        "kubernetes.io/metadata.name": "istio-egress",
    }


def test_gateway_and_services_in_one_namespace_keep_the_gateway_labels() -> None:
    spec = example()
    spec["services_namespace"] = "istio-egress"
    plan = build_plan(spec, ["gateway", "routes"])
    assert plan["namespaces"] == [GATEWAY_NAMESPACE]


def test_label_namespaces_collects_every_namespace_the_policies_select() -> None:
    spec = example()
    spec["lockdown"].update(
        namespaces=["shop", "bookinfo"],
        dns={"namespace": "dns-system"},
        istiod={"namespace": "istio-config"},
        allow=[
            {"namespace": "monitoring"},
            {"namespace": "shop"},
            {"ip_blocks": ["10.0.0.0/8"]},  # no namespace: nothing to label
        ],
    )
    assert build_plan(spec, "lockdown")["label_namespaces"] == [
        "bookinfo",
        "dns-system",
        "istio-config",
        "istio-egress",
        "monitoring",
        "shop",
    ]


def test_label_namespaces_off() -> None:
    spec = example()
    spec["lockdown"]["label_namespaces"] = False
    assert build_plan(spec, "lockdown")["label_namespaces"] == []


def test_istiod_release_with_the_istiod_helm_method() -> None:
    spec = example()
    spec["outbound_policy"].update(method="istiod_helm", mode="ALLOW_ANY")
    assert build_plan(spec, "outbound_policy")["istiod"] == {
        "release": "istiod",
        "namespace": "istio-system",
        "chart_ref": "istiod",
        "chart_repo_url": "",
        "chart_version": "",
        "mode": "ALLOW_ANY",
    }
    assert build_plan(spec, "gateway")["istiod"] is None  # only the outbound concern has it
