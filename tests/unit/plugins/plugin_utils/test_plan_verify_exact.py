"""The verification half of the plan, value for value: the probes egress_probe receives,
the access-log expectations and settings, and the reasons a user reads for each row."""

from __future__ import annotations

import copy
from typing import Any

from test_plan import example

from ansible_collections.meshguard.egress.plugins.plugin_utils.plan import build_plan

PRODUCTPAGE = {
    "container": "curl",
    "label_selector": "app=productpage",
    "namespace": "bookinfo",
    "service_account": "bookinfo-productpage",
}
COMMON = {"connect_timeout": 3, "connect_to": [], "headers": {}, "timeout": 5}


def plan(spec: dict[str, Any]) -> dict[str, Any]:
    return build_plan(copy.deepcopy(spec), verify=True)


def test_the_example_gives_exactly_these_probes() -> None:
    assert plan(example())["probes"] == [
        {
            **COMMON,
            "expect": "allowed",
            "name": "bookinfo/bookinfo-productpage -> httpbin.org:80",
            "source": PRODUCTPAGE,
            "url": "http://httpbin.org/get",
        },
        {
            **COMMON,
            "expect": "denied",
            "name": "bookinfo/bookinfo-reviews -> httpbin.org:80",
            "source": {
                "debug_image": "curlimages/curl",
                "label_selector": "app=reviews",
                "namespace": "bookinfo",
                "service_account": "bookinfo-reviews",
            },
            "url": "http://httpbin.org/get",
        },
        {
            **COMMON,
            "expect": "blocked",
            "name": "bookinfo/bookinfo-productpage -> unregistered.meshguard.invalid:80 "
            "(unregistered)",
            "source": PRODUCTPAGE,
            "url": "http://unregistered.meshguard.invalid/get",
        },
        {
            **COMMON,
            "expect": "unreachable",
            "name": "bookinfo/(bypass pod) -> httpbin.org:443 (bypass)",
            "source": {"bypass_image": "docker.io/curlimages/curl:8.11.1", "namespace": "bookinfo"},
            "url": "https://httpbin.org/",
        },
    ]


def test_probe_settings_reach_every_probe() -> None:
    spec = example()
    spec["verify"].update(probe_timeout=9, connect_timeout=2, connect_to=["::gw:443"])
    spec["verify"]["sources"][0]["headers"] = {"x-test": "1"}
    probes = plan(spec)["probes"]
    assert {(p["timeout"], p["connect_timeout"], tuple(p["connect_to"])) for p in probes} == {
        (9, 2, ("::gw:443",))
    }
    assert [p["headers"] for p in probes] == [{"x-test": "1"}, {}, {"x-test": "1"}, {}]


def test_the_reasons_of_the_example_rows() -> None:
    assert [(row["name"], row["reason"]) for row in plan(example())["expectations"]] == [
        (
            "bookinfo/bookinfo-productpage -> httpbin.org:80",
            "bookinfo/bookinfo-productpage is listed in services[0].clients",
        ),
        (
            "bookinfo/bookinfo-reviews -> httpbin.org:80",
            "services[0].clients does not list bookinfo/bookinfo-reviews: the gateway denies it",
        ),
        (
            "bookinfo/bookinfo-productpage -> unregistered.meshguard.invalid:80 (unregistered)",
            "REGISTRY_ONLY: the sidecar sends a host no service registers to a black hole",
        ),
        (
            "bookinfo/(bypass pod) -> httpbin.org:443 (bypass)",
            "bookinfo is locked down: a pod without a sidecar may reach only DNS, istiod and "
            "the gateway",
        ),
    ]


def _direct_port(spec: dict[str, Any]) -> dict[str, Any]:
    """A second host, reached directly (not through the gateway), by everyone."""
    spec["services"].append(
        {
            "host": "direct.example.com",
            "ports": [
                {"number": 8443, "protocol": "HTTPS", "name": "direct", "via_gateway": False}
            ],
        }
    )
    return spec


def test_a_direct_port_in_a_locked_down_namespace_is_blocked_and_says_why() -> None:
    rows = plan(_direct_port(example()))["expectations"]
    direct = [r for r in rows if r["name"].endswith("direct.example.com:8443")]
    assert [(r["url"], r["expect"], r["reason"]) for r in direct] == [
        (
            "https://direct.example.com:8443/get",
            "blocked",
            "the port does not go through the gateway and bookinfo is locked down: its "
            "NetworkPolicy allows only DNS, istiod and the gateway",
        )
    ] * 2


def test_a_direct_port_outside_the_locked_down_namespaces_is_allowed_and_says_why() -> None:
    spec = _direct_port(example())
    spec["lockdown"]["namespaces"] = ["other"]
    direct = [r for r in plan(spec)["expectations"] if r["name"].endswith(":8443")]
    assert {(r["expect"], r["reason"]) for r in direct} == {
        ("allowed", "the port does not go through the gateway and the namespace is not locked down")
    }


def test_registry_only_scoped_to_namespaces_probes_only_those() -> None:
    spec = example()
    spec["outbound_policy"].update(scope="namespaces", namespaces=["bookinfo"])
    unregistered = [r for r in plan(spec)["expectations"] if "(unregistered)" in r["name"]]
    assert [r["name"].split(" ->")[0] for r in unregistered] == ["bookinfo/bookinfo-productpage"]
    spec["outbound_policy"]["namespaces"] = ["elsewhere"]
    assert [r for r in plan(spec)["expectations"] if "(unregistered)" in r["name"]] == []


def test_access_log_settings_and_expectations() -> None:
    spec = example()
    spec["gateway"]["selector"] = {"app": "egress", "istio": "egressgateway"}
    spec["services"][0]["ports"][0]["client_port"] = 8080
    spec["verify"].update(access_log_container="proxy", access_log_path="/tmp/access.log")
    access_log = plan(spec)["access_log"]
    assert access_log == {
        "check": True,
        "namespace": "istio-egress",
        "label_selector": "app=egress,istio=egressgateway",
        "container": "proxy",
        "path": "/tmp/access.log",
        # the host without the client port; one entry although two sources were allowed
        "expect_requests": [{"authority": "httpbin.org", "path": "/get"}],
    }


def test_access_log_expects_every_allowed_host_through_the_gateway_once() -> None:
    spec = example()
    second = copy.deepcopy(spec["services"][0])
    second.update(host="api.example.com", name="api.example.com", access_policy_name="api")
    spec["services"].append(second)
    spec["services"][0]["clients"] = None  # everyone: reviews is allowed too
    spec["verify"]["path"] = "/status/200"
    assert plan(spec)["access_log"]["expect_requests"] == [
        {"authority": "httpbin.org", "path": "/status/200"},
        {"authority": "api.example.com", "path": "/status/200"},
    ]


def test_a_direct_host_is_not_expected_in_the_gateway_log() -> None:
    spec = _direct_port(example())
    spec["lockdown"]["namespaces"] = []  # so the direct requests are allowed
    assert plan(spec)["access_log"]["expect_requests"] == [
        {"authority": "httpbin.org", "path": "/get"}
    ]


def test_access_log_check_follows_the_setting() -> None:
    spec = example()
    spec["verify"]["access_log"] = False
    assert plan(spec)["access_log"]["check"] is False


def test_a_direct_http_port_is_requested_over_http_and_a_tcp_port_not_at_all() -> None:
    spec = example()
    spec["lockdown"]["namespaces"] = []
    spec["services"].append(
        {
            "host": "plain.example.com",
            "ports": [
                {"number": 5432, "protocol": "TCP", "name": "db", "via_gateway": False},
                {"number": 8080, "protocol": "HTTP", "name": "web", "via_gateway": False},
            ],
        }
    )
    rows = [r for r in plan(spec)["expectations"] if "plain.example.com" in r["name"]]
    assert [(r["name"], r["url"]) for r in rows] == [
        (
            "bookinfo/bookinfo-productpage -> plain.example.com:8080",
            "http://plain.example.com:8080/get",
        ),
        (
            "bookinfo/bookinfo-reviews -> plain.example.com:8080",
            "http://plain.example.com:8080/get",
        ),
    ]


def test_a_wildcard_service_first_does_not_hide_the_concrete_ones_after_it() -> None:
    spec = example()
    wildcard = copy.deepcopy(spec["services"][0])
    wildcard.update(host="*.wild.example", name="wild", access_policy_name="wild")
    wildcard["endpoints"] = ["upstream.example"]  # what Gloo needs for a wildcard
    wildcard["ports"][0]["sni"] = "upstream.example"
    spec["services"].insert(0, wildcard)
    names = [r["name"] for r in plan(spec)["expectations"]]
    assert "bookinfo/bookinfo-productpage -> httpbin.org:80" in names
    assert not any("wild" in name for name in names)


def test_unregistered_host_probes_skip_only_the_namespaces_out_of_scope() -> None:
    spec = example()
    spec["outbound_policy"].update(scope="namespaces", namespaces=["shop"])
    spec["verify"]["sources"] = [
        {"namespace": "bookinfo", "service_account": "bookinfo-productpage", "pod": "a"},
        {"namespace": "shop", "service_account": "cart", "pod": "b"},
        {"namespace": "shop", "service_account": "cart", "pod": "c"},
    ]
    unregistered = [r for r in plan(spec)["expectations"] if "(unregistered)" in r["name"]]
    assert [r["source"].get("pod") for r in unregistered] == ["b"]  # one per namespace
