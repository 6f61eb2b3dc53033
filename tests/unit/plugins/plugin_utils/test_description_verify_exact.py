"""The verification settings of a description: every refusal word for word (path, message,
value), and each limit accepted at its edge."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from test_plan import example

from ansible_collections.meshguard.egress.plugins.plugin_utils.description import (
    DescriptionError,
    normalize,
)

CONCERNS = ["outbound_policy", "gateway", "routes", "access", "lockdown"]

CASES = {
    "deadline-negative": (
        {"deadline": -1},
        "verify.deadline: must be an integer from 0 to 3600 (got -1)",
    ),
    "deadline-too-big": (
        {"deadline": 3601},
        "verify.deadline: must be an integer from 0 to 3600 (got 3601)",
    ),
    "probe-timeout-zero": (
        {"probe_timeout": 0},
        "verify.probe_timeout: must be an integer from 1 to 600 (got 0)",
    ),
    "probe-timeout-too-big": (
        {"probe_timeout": 601},
        "verify.probe_timeout: must be an integer from 1 to 600 (got 601)",
    ),
    "connect-timeout-zero": (
        {"connect_timeout": 0},
        "verify.connect_timeout: must be an integer from 1 to 600 (got 0)",
    ),
    "access-log-not-bool": (
        {"access_log": "yes please"},
        "verify.access_log: must be a boolean (got 'yes please')",
    ),
    "unregistered-host-bad": (
        {"unregistered_host": "not a host"},
        "verify.unregistered_host: labels must be lowercase RFC 1123 (a-z, 0-9, '-', not "
        "starting or ending with '-') (got 'not a host')",
    ),
    "path-relative": ({"path": "get"}, "verify.path: must start with '/' (got 'get')"),
    "bypass-image-spaces": (
        {"bypass_image": "curl image"},
        "verify.bypass_image: must be an image reference (no spaces) (got 'curl image')",
    ),
    "bypass-image-not-string": (
        {"bypass_image": 5},
        "verify.bypass_image: must be a non-empty string (got 5)",
    ),
    "enforced-not-bool": (
        {"network_policies_enforced": "no"},
        "verify.network_policies_enforced: must be a boolean (got 'no')",
    ),
    "junit-suite-not-string": (
        {"junit_suite": 5},
        "verify.junit_suite: must be a non-empty string (got 5)",
    ),
    "connect-to-not-list": ({"connect_to": "a:b"}, "verify.connect_to: must be a list (got 'a:b')"),
    "sources-not-list": (
        {"sources": "bookinfo"},
        "verify.sources: must be a list (got 'bookinfo')",
    ),
    "source-not-mapping": (
        {"sources": ["bookinfo"]},
        "verify.sources[0]: must be a mapping (got 'bookinfo')\nverify.sources[0].namespace: is "
        "required (got None)\nverify.sources[0].service_account: is required (got "
        "None)\nverify.sources[0]: needs exactly one of pod or label_selector (or controller: "
        "true) (got 'bookinfo')",
    ),
    "source-pod-and-selector": (
        {
            "sources": [
                {
                    "namespace": "bookinfo",
                    "service_account": "a",
                    "pod": "p",
                    "label_selector": "app=x",
                }
            ]
        },
        "verify.sources[0]: needs exactly one of pod or label_selector (or controller: true) "
        "(got {'namespace': 'bookinfo', 'service_account': 'a', 'pod': 'p', 'label_selector': "
        "'app=x'})",
    ),
    "source-neither": (
        {"sources": [{"namespace": "bookinfo", "service_account": "a"}]},
        "verify.sources[0]: needs exactly one of pod or label_selector (or controller: true) "
        "(got {'namespace': 'bookinfo', 'service_account': 'a'})",
    ),
    "source-no-namespace": (
        {"sources": [{"service_account": "a", "pod": "p"}]},
        "verify.sources[0].namespace: is required (got None)",
    ),
    "source-no-account": (
        {"sources": [{"namespace": "bookinfo", "pod": "p"}]},
        "verify.sources[0].service_account: is required (got None)",
    ),
    "source-controller-not-bool": (
        {"sources": [{"namespace": "bookinfo", "service_account": "a", "controller": "yes"}]},
        "verify.sources[0].controller: must be a boolean (got 'yes')\nverify.sources[0]: needs "
        "exactly one of pod or label_selector (or controller: true) (got {'namespace': "
        "'bookinfo', 'service_account': 'a', 'controller': 'yes'})",
    ),
    "source-debug-image-not-string": (
        {
            "sources": [
                {"namespace": "bookinfo", "service_account": "a", "pod": "p", "debug_image": 5}
            ]
        },
        "verify.sources[0].debug_image: must be a non-empty string (got 5)",
    ),
    "source-container-not-string": (
        {
            "sources": [
                {"namespace": "bookinfo", "service_account": "a", "pod": "p", "container": 5}
            ]
        },
        "verify.sources[0].container: must be a non-empty string (got 5)",
    ),
    "source-headers-not-mapping": (
        {
            "sources": [
                {"namespace": "bookinfo", "service_account": "a", "pod": "p", "headers": "x"}
            ]
        },
        "verify.sources[0].headers: must be a mapping (got 'x')",
    ),
    "source-unknown-key": (
        {"sources": [{"namespace": "bookinfo", "service_account": "a", "pod": "p", "image": "x"}]},
        "verify.sources[0].image: unknown key (allowed: namespace, service_account, pod, "
        "label_selector, container, debug_image, headers, controller) (got 'x')",
    ),
    "bypass-source-neither": (
        {"bypass_sources": [{"namespace": "bookinfo", "service_account": "a"}]},
        "verify.bypass_sources[0]: needs exactly one of pod or label_selector (or controller: "
        "true) (got {'namespace': 'bookinfo', 'service_account': 'a'})",
    ),
}


def _normalize(verify: dict[str, Any]) -> dict[str, Any]:
    spec = example()
    spec["verify"] = {**spec["verify"], **copy.deepcopy(verify)}
    return normalize(spec, CONCERNS, verify=True)


@pytest.mark.parametrize(("verify", "message"), list(CASES.values()), ids=list(CASES))
def test_invalid_verify_settings_whole_error_text(verify: dict[str, Any], message: str) -> None:
    with pytest.raises(DescriptionError) as caught:
        _normalize(verify)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    "verify",
    [
        {"deadline": 0},
        {"deadline": 3600},
        {"probe_timeout": 1},
        {"probe_timeout": 600},
        {"connect_timeout": 1},
        {"connect_timeout": 600},
        {"bypass_image": ""},
        {"network_policies_enforced": False},
        {"path": "/"},
    ],
    ids=str,
)
def test_verify_settings_at_their_limits_are_kept(verify: dict[str, Any]) -> None:
    normalized = _normalize(verify)["verify"]
    assert {key: normalized[key] for key in verify} == verify


def test_verify_defaults() -> None:
    spec = example()
    del spec["verify"]
    verify = normalize(spec, CONCERNS, verify=True)["verify"]
    assert {k: verify[k] for k in ("deadline", "probe_timeout", "connect_timeout", "path")} == {
        "deadline": 60,
        "probe_timeout": 5,
        "connect_timeout": 3,
        "path": "/get",
    }
    assert verify["bypass_image"] == "docker.io/curlimages/curl:8.11.1"
    assert verify["network_policies_enforced"] is True
    assert verify["access_log"] is True  # the example turns gateway.access_log on
    assert verify["sources"] == [] and verify["bypass_sources"] == []


DEFAULT_VERIFY = {
    "sources": [],
    "bypass_sources": [],
    "bypass_image": "docker.io/curlimages/curl:8.11.1",
    "network_policies_enforced": True,
    "unregistered_host": "unregistered.meshguard.invalid",
    "path": "/get",
    "connect_to": [],
    "deadline": 60,
    "probe_timeout": 5,
    "connect_timeout": 3,
    "access_log": True,
    "access_log_container": "istio-proxy",
    "access_log_path": None,
    "junit_path": "",
    "junit_suite": "meshguard.egress.verify",
}


@pytest.mark.parametrize("verify", [None, {}], ids=["absent", "empty"])
def test_verify_defaults_whole(verify: Any) -> None:
    spec = example()
    if verify is None:
        del spec["verify"]
    else:
        spec["verify"] = verify
    assert normalize(spec, CONCERNS, verify=True)["verify"] == DEFAULT_VERIFY


def test_empty_strings_are_the_defaults() -> None:
    """An empty inventory variable means unset: each text setting falls back to its default."""
    spec = example()
    spec["verify"] = {
        key: ""
        for key in (
            "unregistered_host",
            "path",
            "access_log_container",
            "access_log_path",
            "junit_path",
            "junit_suite",
        )
    }
    assert normalize(spec, CONCERNS, verify=True)["verify"] == DEFAULT_VERIFY


def test_every_setting_given_is_kept() -> None:
    given = {
        "bypass_image": "localhost/curl:1",
        "network_policies_enforced": False,
        "unregistered_host": "blocked.example.com",
        "path": "/status/200",
        "connect_to": ["httpbin.org:443:127.0.0.1:8443"],
        "deadline": 7,
        "probe_timeout": 9,
        "connect_timeout": 2,
        "access_log": False,
        "access_log_container": "proxy",
        "access_log_path": "/tmp/access.log",
        "junit_path": "/tmp/report.xml",
        "junit_suite": "suite",
    }
    spec = example()
    spec["verify"] = copy.deepcopy(given)
    verify = normalize(spec, CONCERNS, verify=True)["verify"]
    assert verify == {**given, "sources": [], "bypass_sources": []}


def test_connect_to_entries_become_strings() -> None:
    assert _normalize({"connect_to": [8443]})["verify"]["connect_to"] == ["8443"]


@pytest.mark.parametrize("gateway_log", [True, False])
def test_access_log_check_follows_the_gateway_unless_set(gateway_log: bool) -> None:
    spec = example()
    spec["gateway"]["access_log"] = gateway_log
    spec["verify"] = {}
    assert normalize(spec, CONCERNS, verify=True)["verify"]["access_log"] is gateway_log
    spec["verify"] = {"access_log": not gateway_log}
    assert normalize(spec, CONCERNS, verify=True)["verify"]["access_log"] is (not gateway_log)


def test_sources_normalized_whole() -> None:
    sources = _normalize(
        {
            "sources": [
                {
                    "namespace": "bookinfo",
                    "service_account": "bookinfo-productpage",
                    "label_selector": "app=productpage",
                    "container": "curl",
                    "headers": {"x-a": "1"},
                },
                {
                    "namespace": "bookinfo",
                    "service_account": "sa-b",
                    "pod": "reviews-0",
                    "debug_image": "curlimages/curl",
                },
                {"namespace": "other", "service_account": "sa-c", "controller": True},
            ],
            "bypass_sources": [{"namespace": "bookinfo", "service_account": "x", "pod": "raw"}],
        }
    )["verify"]
    blank = {
        "pod": None,
        "label_selector": None,
        "container": None,
        "debug_image": None,
        "headers": {},
        "controller": False,
    }
    assert sources["sources"] == [
        {
            **blank,
            "namespace": "bookinfo",
            "service_account": "bookinfo-productpage",
            "label_selector": "app=productpage",
            "container": "curl",
            "headers": {"x-a": "1"},
        },
        {
            **blank,
            "namespace": "bookinfo",
            "service_account": "sa-b",
            "pod": "reviews-0",
            "debug_image": "curlimages/curl",
        },
        {**blank, "namespace": "other", "service_account": "sa-c", "controller": True},
    ]
    assert sources["bypass_sources"] == [
        {**blank, "namespace": "bookinfo", "service_account": "x", "pod": "raw"}
    ]


def test_source_headers_are_a_copy() -> None:
    headers = {"x-a": "1"}
    spec = example()
    spec["verify"] = {
        "sources": [
            {"namespace": "bookinfo", "service_account": "a", "pod": "p", "headers": headers}
        ]
    }
    normalized = normalize(spec, CONCERNS, verify=True)["verify"]["sources"][0]["headers"]
    normalized["x-b"] = "2"
    assert headers == {"x-a": "1"}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"pod": "p"}, "verify.sources[0].pod: is not used with controller: true (got 'p')"),
        (
            {"label_selector": "app=x", "debug_image": "curl"},
            "verify.sources[0].label_selector: is not used with controller: true (got 'app=x')",
        ),
        (
            {"container": "c"},
            "verify.sources[0].container: is not used with controller: true (got 'c')",
        ),
        (
            {"debug_image": "curl"},
            "verify.sources[0].debug_image: is not used with controller: true (got 'curl')",
        ),
    ],
    ids=["pod", "selector-first", "container", "debug-image"],
)
def test_controller_source_refuses_pod_settings(extra: dict[str, Any], message: str) -> None:
    source = {"namespace": "bookinfo", "service_account": "a", "controller": True, **extra}
    with pytest.raises(DescriptionError) as caught:
        _normalize({"sources": [source]})
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("verify", "message"),
    [
        (
            {"connect_timeout": 601},
            "verify.connect_timeout: must be an integer from 1 to 600 (got 601)",
        ),
        ({"deadline": True}, "verify.deadline: must be an integer from 0 to 3600 (got True)"),
        ({"path": 5}, "verify.path: must be a non-empty string (got 5)"),
        (
            {"unregistered_host": 5},
            "verify.unregistered_host: must be a non-empty string (got 5)",
        ),
        (
            {"access_log_path": 5},
            "verify.access_log_path: must be a non-empty string (got 5)",
        ),
        ({"junit_path": 5}, "verify.junit_path: must be a non-empty string (got 5)"),
        (
            {"access_log_container": 5},
            "verify.access_log_container: must be a non-empty string (got 5)",
        ),
        (
            {"bypass_image": "curl\timage"},
            "verify.bypass_image: must be an image reference (no spaces) (got 'curl\\timage')",
        ),
        (
            {"sources": [{"namespace": "Book", "service_account": "a", "pod": "p"}]},
            "verify.sources[0].namespace: must be an RFC 1123 label (lowercase a-z, 0-9, '-', at "
            "most 63) (got 'Book')",
        ),
        (
            {"verbose": True},
            "verify.verbose: unknown key (allowed: sources, bypass_sources, bypass_image, "
            "network_policies_enforced, unregistered_host, path, connect_to, deadline, "
            "probe_timeout, connect_timeout, access_log, access_log_container, access_log_path, "
            "junit_path, junit_suite) (got True)",
        ),
        (
            {"sources": [{"namespace": "bookinfo", "service_account": "a", "pod": 5}]},
            "verify.sources[0].pod: must be a non-empty string (got 5)\nverify.sources[0]: needs "
            "exactly one of pod or label_selector (or controller: true) (got {'namespace': "
            "'bookinfo', 'service_account': 'a', 'pod': 5})",
        ),
        (
            {"sources": [{"namespace": "bookinfo", "service_account": "a", "label_selector": 5}]},
            "verify.sources[0].label_selector: must be a non-empty string (got 5)\n"
            "verify.sources[0]: needs exactly one of pod or label_selector (or controller: "
            "true) (got {'namespace': 'bookinfo', 'service_account': 'a', 'label_selector': 5})",
        ),
        (
            {
                "sources": [
                    {"namespace": "bookinfo", "service_account": "a", "pod": "p"},
                    {"namespace": "bookinfo", "service_account": "a", "pod": "p", "x": 1},
                ]
            },
            "verify.sources[1].x: unknown key (allowed: namespace, service_account, pod, "
            "label_selector, container, debug_image, headers, controller) (got 1)",
        ),
    ],
    ids=[
        "connect-timeout-too-big",
        "deadline-bool",
        "path-not-string",
        "unregistered-host-not-string",
        "access-log-path-not-string",
        "junit-path-not-string",
        "container-not-string",
        "bypass-image-tab",
        "source-namespace-bad",
        "unknown-verify-key",
        "source-pod-not-string",
        "source-selector-not-string",
        "second-source-path",
    ],
)
def test_more_invalid_verify_settings(verify: dict[str, Any], message: str) -> None:
    with pytest.raises(DescriptionError) as caught:
        _normalize(verify)
    assert str(caught.value) == message
