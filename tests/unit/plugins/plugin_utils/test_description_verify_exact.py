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
