"""The plan: every documented setting reaches its object or value, unknown keys are refused
with their path, overrides merge, and the verification expectations say why."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from ansible_collections.meshguard.egress.plugins.plugin_utils.description import (
    DescriptionError,
    description_from_variables,
)
from ansible_collections.meshguard.egress.plugins.plugin_utils.plan import build_plan
from ansible_collections.meshguard.egress.plugins.plugin_utils.schema import SCHEMA, Field

ROOT = Path(__file__).resolve().parents[4]
EXAMPLE = ROOT / "playbooks" / "inventory" / "example" / "group_vars" / "all" / "egress.yml"


def example_variables() -> dict[str, Any]:
    variables = yaml.safe_load(EXAMPLE.read_text())
    return {k: v for k, v in variables.items() if k not in ("egress_kubeconfig", "egress_context")}


def example() -> dict[str, Any]:
    return description_from_variables(example_variables())


def objects(plan: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [o for o in plan["objects"] if o["kind"] == kind]


def problems(spec: Any, **kwargs: Any) -> list[tuple[str, Any]]:
    with pytest.raises(DescriptionError) as err:
        build_plan(spec, **kwargs)
    return [(path, value) for path, _problem, value in err.value.errors]


# ----------------------------------------------------------------- settings that were dropped


def test_lockdown_dns_and_istiod_reach_the_network_policies() -> None:
    spec = example()
    spec["lockdown"]["dns"] = {
        "namespace": "openshift-dns",
        "pod_selector": {"dns.operator.openshift.io/daemonset-dns": "default"},
        "ports": [{"port": 5353, "protocol": "UDP"}, {"port": 5353, "protocol": "TCP"}],
        "ip_blocks": ["169.254.20.10/32"],
    }
    spec["lockdown"]["istiod"] = {
        "namespace": "istio-config",
        "pod_selector": {"app": "istiod-main"},
    }
    [policy] = [
        o
        for o in objects(build_plan(spec), "NetworkPolicy")
        if o["metadata"]["namespace"] == "bookinfo"
    ]
    dns_rule, istiod_rule = policy["spec"]["egress"][:2]
    assert dns_rule == {
        "to": [
            {
                "namespaceSelector": {
                    "matchLabels": {"kubernetes.io/metadata.name": "openshift-dns"}
                },
                "podSelector": {
                    "matchLabels": {"dns.operator.openshift.io/daemonset-dns": "default"}
                },
            },
            {"ipBlock": {"cidr": "169.254.20.10/32"}},
        ],
        "ports": [{"port": 5353, "protocol": "UDP"}, {"port": 5353, "protocol": "TCP"}],
    }
    assert istiod_rule["to"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "istio-config"
    }
    assert istiod_rule["to"][0]["podSelector"]["matchLabels"] == {"app": "istiod-main"}
    assert [p["port"] for p in istiod_rule["ports"]] == [15010, 15012, 15014]


def test_lockdown_allow_entry_with_an_ip_block() -> None:
    spec = example()
    spec["lockdown"]["allow"] = [{"ip_blocks": ["10.96.0.0/12"], "ports": [{"port": 8080}]}]
    [policy] = [
        o
        for o in objects(build_plan(spec), "NetworkPolicy")
        if o["metadata"]["namespace"] == "bookinfo"
    ]
    assert policy["spec"]["egress"][-1] == {
        "to": [{"ipBlock": {"cidr": "10.96.0.0/12"}}],
        "ports": [{"port": 8080, "protocol": "TCP"}],
    }


def test_gateway_service_node_selector_and_tolerations_reach_the_values() -> None:
    spec = example()
    spec["gateway"].update(
        service_type="NodePort",
        service_ports=[{"name": "tls", "port": 8443, "nodePort": 30443}],
        node_selector={"pool": "egress"},
        tolerations=[{"key": "egress", "operator": "Exists"}],
        dedicated_nodes=["node-a"],
        taint_nodes=True,
    )
    values = build_plan(spec)["release"]["values"]
    assert values["service"] == {
        "type": "NodePort",
        "ports": [
            {"name": "tls", "port": 8443, "protocol": "TCP", "targetPort": 8443, "nodePort": 30443}
        ],
    }
    assert values["nodeSelector"] == {"meshguard.io/egress-gateway": "true", "pool": "egress"}
    assert values["tolerations"] == [
        {"key": "egress", "operator": "Exists"},
        {
            "key": "meshguard.io/egress-gateway",
            "operator": "Equal",
            "value": "true",
            "effect": "NoSchedule",
        },
    ]


def test_gateway_install_settings_reach_the_release() -> None:
    spec = example()
    spec["gateway"].update(chart_repo_url="https://charts.example", atomic=False, wait_timeout=42)
    release = build_plan(spec)["release"]
    assert (release["chart_ref"], release["chart_version"]) == (
        "oci://us-docker.pkg.dev/gloo-mesh/istio-helm-REPO_KEY/gateway",
        "1.23.4",
    )
    assert (release["chart_repo_url"], release["atomic"], release["wait_timeout"]) == (
        "https://charts.example",
        False,
        42,
    )


def test_outbound_policy_method_can_be_set_from_the_description() -> None:
    spec = example()
    spec["outbound_policy"] = {
        "method": "istiod_helm",
        "istiod": {"release": "istiod-main", "chart_version": "1.23.4"},
    }
    plan = build_plan(spec)
    assert objects(plan, "Sidecar") == []
    assert plan["istiod"] == {
        "release": "istiod-main",
        "namespace": "istio-system",
        "chart_ref": "istiod",
        "chart_repo_url": "",
        "chart_version": "1.23.4",
        "mode": "REGISTRY_ONLY",
    }


def test_every_object_is_labelled_with_its_owner() -> None:
    spec = example()
    spec["name"] = "team-a"
    plan = build_plan(spec)
    assert plan["objects"]
    for obj in plan["objects"]:
        assert obj["metadata"]["labels"]["meshguard.io/description"] == "team-a"
    for namespace in plan["namespaces"]:
        assert namespace["labels"]["meshguard.io/description"] == "team-a"


# ----------------------------------------------------------------- unknown keys, everywhere


def _mapping_paths(field: Field, path: str) -> list[str]:
    paths = []
    for child in field.fields:
        if child.fields and not child.free_form:
            child_path = f"{path}.{child.key}" if path else child.key
            paths.append(child_path)
            paths += _mapping_paths(child, child_path)
    return paths


MAPPINGS = _mapping_paths(SCHEMA, "")


def _container(spec: dict[str, Any], path: str) -> tuple[dict[str, Any], str]:
    """The dict at ``path`` in ``spec`` (first element of lists), created when missing."""
    node: Any = spec
    field = SCHEMA
    shown = ""
    for key in path.split("."):
        field = field.child(key)
        shown = f"{shown}.{key}" if shown else key
        if field.type == "list":
            if not node.get(key):
                node[key] = [{}]
            node = node[key][0]
            shown += "[0]"
        else:
            node = node.setdefault(key, {})
    return node, shown


@pytest.mark.parametrize("path", MAPPINGS)
def test_a_typo_in_any_mapping_is_refused_with_its_path(path: str) -> None:
    spec = example()
    spec["outbound_policy"]["istiod"] = {}
    spec["lockdown"]["allow"] = [{"namespace": "x"}]
    spec["services"][0]["ports"][0]["number"] = 443
    spec["gateway"]["service_ports"] = [{"name": "a", "port": 1}]
    spec["lockdown"]["dns"] = {"ports": [{"port": 53}]}
    node, shown = _container(spec, path)
    node["replicsa"] = 3
    assert (f"{shown}.replicsa", 3) in problems(spec, verify=True)


def test_every_mapping_of_the_schema_is_covered() -> None:
    assert {"gateway", "services", "services.ports", "services.clients", "outbound_policy"} <= set(
        MAPPINGS
    )
    assert {"lockdown.dns", "lockdown.allow", "verify", "verify.sources"} <= set(MAPPINGS)


def test_an_unknown_egress_variable_is_refused() -> None:
    variables = example_variables()
    variables["egress_gatway"] = {"replicas": 2}
    with pytest.raises(DescriptionError) as err:
        description_from_variables(variables)
    assert err.value.field == "egress_gatway"
    assert "unknown egress variable" in str(err.value)


def test_egress_gateway_replicsa_typo_names_the_field() -> None:
    variables = example_variables()
    variables["egress_gateway"]["replicsa"] = 3
    assert ("gateway.replicsa", 3) in problems(description_from_variables(variables))


# ----------------------------------------------------------------- partial overrides


def test_an_override_changes_one_setting_and_keeps_the_rest() -> None:
    variables = example_variables()
    variables["egress_override_test_cluster"] = {"gateway": {"chart_ref": "/charts/gateway"}}
    spec = description_from_variables(variables)
    release = build_plan(spec)["release"]
    assert release["chart_ref"] == "/charts/gateway"
    assert release["values"]["global"] == {
        "hub": "us-docker.pkg.dev/gloo-mesh/istio-REPO_KEY",
        "tag": "1.23.4-solo",
    }
    assert release["values"]["resources"] == {"requests": {"cpu": "100m", "memory": "128Mi"}}


def test_overrides_apply_in_name_order_and_lists_replace() -> None:
    variables = example_variables()
    variables["egress_override_b"] = {"gateway": {"replicas": 3}, "lockdown": {"namespaces": ["b"]}}
    variables["egress_override_a"] = {
        "gateway": {"replicas": 2},
        "lockdown": {"namespaces": ["a", "c"]},
    }
    spec = description_from_variables(variables)
    assert spec["gateway"]["replicas"] == 3
    assert spec["gateway"]["namespace"] == "istio-egress"
    assert spec["lockdown"]["namespaces"] == ["b"]


def test_an_override_that_is_not_a_mapping_is_refused() -> None:
    variables = example_variables()
    variables["egress_override_x"] = ["gateway"]
    with pytest.raises(DescriptionError) as err:
        description_from_variables(variables)
    assert err.value.field == "egress_override_x"


# ----------------------------------------------------------------- what would hurt the cluster


@pytest.mark.parametrize(
    "namespace", ["kube-system", "kube-public", "kube-node-lease", "istio-system"]
)
def test_control_plane_namespaces_cannot_be_locked_down(namespace: str) -> None:
    spec = example()
    spec["lockdown"]["namespaces"] = ["bookinfo", namespace]
    assert (
        "lockdown.namespaces[1]" if namespace > "bookinfo" else "lockdown.namespaces[0]",
        namespace,
    ) in problems(spec)


def test_the_mesh_root_namespace_cannot_be_locked_down() -> None:
    spec = example()
    spec["outbound_policy"]["root_namespace"] = "istio-config"
    spec["lockdown"]["namespaces"] = ["istio-config"]
    assert ("lockdown.namespaces[0]", "istio-config") in problems(spec)


@pytest.mark.parametrize("port", [15000, 15001, 15006, 15008, 15020, 15021, 15090])
def test_reserved_proxy_ports_are_refused(port: int) -> None:
    spec = example()
    spec["gateway"]["listener_port"] = port
    spec["services"][0]["ports"][0]["client_port"] = port
    found = problems(spec)
    assert ("gateway.listener_port", port) in found
    assert ("services[0].ports[0].client_port", port) in found


@pytest.mark.parametrize("port", [14999, 15091, 8443])
def test_ports_beside_the_reserved_ones_are_accepted(port: int) -> None:
    spec = example()
    spec["gateway"]["listener_port"] = port
    spec["services"][0]["ports"][0]["client_port"] = port
    assert build_plan(spec)["objects"]


def test_a_chart_version_read_as_a_number_is_refused() -> None:
    spec = example()
    spec["gateway"]["chart_version"] = 1.2
    assert ("gateway.chart_version", 1.2) in problems(spec)


# ----------------------------------------------------------------- expectations


def rows(spec: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [
        (r["name"], r["url"], r["expect"]) for r in build_plan(spec, verify=True)["expectations"]
    ]


def test_the_example_expects_what_the_procedure_shows() -> None:
    assert rows(example()) == [
        ("bookinfo/bookinfo-productpage -> httpbin.org:80", "http://httpbin.org/get", "allowed"),
        ("bookinfo/bookinfo-reviews -> httpbin.org:80", "http://httpbin.org/get", "denied"),
        (
            "bookinfo/bookinfo-productpage -> unregistered.meshguard.invalid:80 (unregistered)",
            "http://unregistered.meshguard.invalid/get",
            "blocked",
        ),
        (
            "bookinfo/(bypass pod) -> httpbin.org:443 (bypass)",
            "https://httpbin.org/",
            "unreachable",
        ),
    ]
    reasons = [r["reason"] for r in build_plan(example(), verify=True)["expectations"]]
    assert reasons[0] == "bookinfo/bookinfo-productpage is listed in services[0].clients"
    assert "does not list bookinfo/bookinfo-reviews" in reasons[1]


def test_probes_are_egress_probe_arguments_with_one_source_key() -> None:
    plan = build_plan(example(), verify=True)
    for probe in plan["probes"]:
        assert not ({"pod", "label_selector"} <= set(probe["source"]))
        assert None not in probe["source"].values()
        assert "reason" not in probe


def test_a_port_outside_the_gateway_is_not_expected_denied() -> None:
    spec = example()
    spec["services"][0]["ports"].append({"number": 8443, "protocol": "TLS", "via_gateway": False})
    direct = [r for r in rows(spec) if ":8443" in r[1]]
    assert direct == [
        (
            "bookinfo/bookinfo-productpage -> httpbin.org:8443",
            "https://httpbin.org:8443/get",
            "blocked",
        ),
        (
            "bookinfo/bookinfo-reviews -> httpbin.org:8443",
            "https://httpbin.org:8443/get",
            "blocked",
        ),
    ]
    spec["lockdown"]["namespaces"] = []
    assert {r[2] for r in rows(spec) if ":8443" in r[1]} == {"allowed"}


def test_an_unrestricted_service_is_allowed_for_every_source() -> None:
    spec = example()
    spec["services"][0]["clients"] = None
    assert [r[2] for r in rows(spec)][:2] == ["allowed", "allowed"]


def test_no_unregistered_probe_under_allow_any() -> None:
    spec = example()
    spec["outbound_policy"]["mode"] = "ALLOW_ANY"
    assert all("unregistered" not in r[0] for r in rows(spec))


def bypass_rows(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in build_plan(spec, verify=True)["expectations"] if "(bypass)" in r["name"]]


def bypass_row(namespace: str, image: str, name: str | None = None) -> dict[str, Any]:
    return {
        "name": name or f"{namespace}/(bypass pod) -> httpbin.org:443 (bypass)",
        "url": "https://httpbin.org/",
        "expect": "unreachable",
        "reason": f"{namespace} is locked down: a pod without a sidecar may reach only DNS, "
        "istiod and the gateway",
        "service_account": None,
        "source": {"namespace": namespace, "bypass_image": image},
        "headers": {},
        "timeout": 5,
        "connect_timeout": 3,
        "connect_to": [],
    }


NOT_ENFORCED = (
    "NetworkPolicies are not enforced on this cluster (verify.network_policies_enforced: "
    "false), so a bypass outcome proves nothing"
)


def test_every_locked_down_namespace_gets_a_bypass_pod_probe() -> None:
    spec = example()
    spec["lockdown"]["namespaces"] = ["bookinfo", "shop"]
    assert bypass_rows(spec) == [
        bypass_row("bookinfo", "docker.io/curlimages/curl:8.11.1"),
        bypass_row("shop", "docker.io/curlimages/curl:8.11.1"),
    ]
    probes = [p for p in build_plan(spec, verify=True)["probes"] if "(bypass)" in p["name"]]
    assert [p["source"] for p in probes] == [
        {"namespace": "bookinfo", "bypass_image": "docker.io/curlimages/curl:8.11.1"},
        {"namespace": "shop", "bypass_image": "docker.io/curlimages/curl:8.11.1"},
    ]
    assert all("not_proven" not in p for p in probes)


def test_the_bypass_image_can_be_set_or_turned_off() -> None:
    spec = example()
    spec["verify"]["bypass_image"] = "localhost/meshguard/curl:7.88.1"
    assert bypass_rows(spec) == [bypass_row("bookinfo", "localhost/meshguard/curl:7.88.1")]
    spec["verify"]["bypass_image"] = ""
    assert bypass_rows(spec) == []
    spec["verify"]["bypass_image"] = None  # null is the default, as an absent key
    assert bypass_rows(spec) == [bypass_row("bookinfo", "docker.io/curlimages/curl:8.11.1")]


def test_no_bypass_probe_without_a_locked_down_namespace_or_a_concrete_host() -> None:
    spec = example()
    spec["lockdown"]["namespaces"] = []
    assert bypass_rows(spec) == []
    spec = example()
    spec["services"][0]["host"] = "*.httpbin.org"  # with what Gloo needs for a wildcard
    spec["services"][0]["endpoints"] = ["upstream.example"]
    spec["services"][0]["ports"][0]["sni"] = "httpbin.org"
    assert bypass_rows(spec) == []


def test_bypass_sources_must_be_unreachable_in_locked_down_namespaces() -> None:
    spec = example()
    spec["verify"]["bypass_image"] = ""
    spec["verify"]["bypass_sources"] = [
        {"namespace": "bookinfo", "service_account": "default", "pod": "bypass"},
        {"namespace": "other", "service_account": "default", "pod": "bypass"},
    ]
    bypass = [r for r in rows(spec) if "bypass" in r[0]]
    assert bypass == [
        ("bookinfo/default -> httpbin.org:443 (bypass)", "https://httpbin.org/", "unreachable")
    ]
    [row] = bypass_rows(spec)
    assert row["source"] == {"namespace": "bookinfo", "pod": "bypass", "service_account": "default"}


def test_bypass_sources_are_kept_beside_the_automatic_bypass_pods() -> None:
    spec = example()
    spec["verify"]["bypass_sources"] = [
        {"namespace": "bookinfo", "service_account": "legacy", "label_selector": "app=legacy"}
    ]
    assert [r["name"] for r in bypass_rows(spec)] == [
        "bookinfo/(bypass pod) -> httpbin.org:443 (bypass)",
        "bookinfo/legacy -> httpbin.org:443 (bypass)",
    ]


def test_without_enforced_network_policies_every_bypass_row_is_not_proven() -> None:
    spec = example()
    spec["verify"]["network_policies_enforced"] = False
    spec["verify"]["bypass_sources"] = [
        {"namespace": "bookinfo", "service_account": "legacy", "pod": "legacy-0"}
    ]
    plan = build_plan(spec, verify=True)
    auto = {
        **bypass_row("bookinfo", "docker.io/curlimages/curl:8.11.1"),
        "not_proven": NOT_ENFORCED,
    }
    given = {
        **bypass_row("bookinfo", "", "bookinfo/legacy -> httpbin.org:443 (bypass)"),
        "service_account": "legacy",
        "source": {"namespace": "bookinfo", "pod": "legacy-0", "service_account": "legacy"},
        "not_proven": NOT_ENFORCED,
    }
    assert bypass_rows(spec) == [auto, given]
    by_name = {p["name"]: p for p in plan["probes"]}
    assert by_name[auto["name"]]["not_proven"] == NOT_ENFORCED
    assert by_name[given["name"]]["not_proven"] == NOT_ENFORCED
    # the other rows are proven as usual
    others = [p for p in plan["probes"] if "(bypass)" not in p["name"]]
    assert others and all("not_proven" not in p for p in others)


def test_network_policies_enforced_must_be_a_boolean() -> None:
    spec = example()
    spec["verify"]["network_policies_enforced"] = "no"
    assert ("verify.network_policies_enforced", "no") in problems(spec, verify=True)


def test_a_bypass_image_with_spaces_is_refused() -> None:
    spec = example()
    spec["verify"]["bypass_image"] = "curl image"
    assert ("verify.bypass_image", "curl image") in problems(spec, verify=True)


def test_pod_sources_carry_the_service_account_they_claim() -> None:
    plan = build_plan(example(), verify=True)
    sources = [(p["name"], p["source"]) for p in plan["probes"]]
    assert sources[:2] == [
        (
            "bookinfo/bookinfo-productpage -> httpbin.org:80",
            {
                "namespace": "bookinfo",
                "label_selector": "app=productpage",
                "container": "curl",
                "service_account": "bookinfo-productpage",
            },
        ),
        (
            "bookinfo/bookinfo-reviews -> httpbin.org:80",
            {
                "namespace": "bookinfo",
                "label_selector": "app=reviews",
                "debug_image": "curlimages/curl",
                "service_account": "bookinfo-reviews",
            },
        ),
    ]


def test_controller_sources_carry_no_service_account() -> None:
    spec = example()
    spec["verify"]["sources"] = [
        {"namespace": "bookinfo", "service_account": "bookinfo-productpage", "controller": True}
    ]
    probes = build_plan(spec, verify=True)["probes"]
    assert [p["source"] for p in probes if "(bypass)" not in p["name"]] == [{}, {}]


def test_the_access_log_expects_each_allowed_gateway_request_once() -> None:
    plan = build_plan(example(), verify=True)
    assert plan["access_log"]["check"] is True
    assert plan["access_log"]["expect_requests"] == [{"authority": "httpbin.org", "path": "/get"}]
    spec = example()
    spec["gateway"]["access_log"] = False
    assert build_plan(spec, verify=True)["access_log"]["check"] is False


def test_a_source_needs_exactly_one_of_pod_and_label_selector() -> None:
    spec = example()
    spec["verify"]["sources"][0]["pod"] = "productpage-1"
    assert problems(spec, verify=True)[0][0] == "verify.sources[0]"


def test_the_plan_does_not_change_the_description() -> None:
    spec = example()
    before = copy.deepcopy(spec)
    build_plan(spec, verify=True)
    assert spec == before
