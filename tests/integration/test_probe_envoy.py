"""egress_probe against a real Envoy egress gateway, with the controller as probe source."""

from __future__ import annotations

import sys
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from envoy_gateway import DEFAULT_CLIENTS, EnvoyGateway, run_module

pytest_plugins = ("envoy_gateway",)  # the envoy_gateway fixture

# name of the request in EnvoyGateway.urls() -> (expectation, outcome it must get, detail part)
OUTCOMES = {
    "allowed": ("allowed", "allowed", "200 via Envoy"),
    "allowed_tls": ("allowed", "allowed", "200 via Envoy"),
    "denied": ("denied", "denied", "RBAC: access denied"),
    "upstream_403": ("denied", "error", "403 from the upstream"),
    "blocked_http": ("blocked", "blocked", "502 from Envoy"),
    "blocked_https": ("blocked", "blocked", "curl exit 35"),
    "no_healthy_upstream": ("allowed", "error", "503"),
    "refused": ("unreachable", "unreachable", "curl exit 7"),
    "connect_timeout": ("unreachable", "unreachable", "curl exit 28"),
    "plain_upstream": ("allowed", "error", "without Envoy evidence"),
}

pytestmark = pytest.mark.integration


def _probe(gw: EnvoyGateway, name: str, expect: str, **extra: Any) -> dict[str, Any]:
    request = gw.urls()[name]
    return {
        "name": name,
        "url": request["url"],
        "headers": request["headers"],
        "expect": expect,
        "connect_timeout": 1,
        "timeout": 3,
        **extra,
    }


@pytest.fixture(scope="module")
def matrix_result(envoy_gateway: EnvoyGateway, tmp_path_factory: pytest.TempPathFactory):
    probes = [_probe(envoy_gateway, name, spec[0]) for name, spec in OUTCOMES.items()]
    args = {"probes": probes, "deadline": 0, "fail_on_mismatch": False}
    return run_module("egress_probe", args, tmp_path_factory.mktemp("ansible"))


@pytest.mark.parametrize("name", list(OUTCOMES))
def test_outcome_is_classified(matrix_result: dict[str, Any], name: str) -> None:
    expect, outcome, detail = OUTCOMES[name]
    result = next(r for r in matrix_result["probes"] if r["name"] == name)
    assert result["outcome"] == outcome, result
    assert detail in result["detail"], result
    assert result["held"] is (expect == outcome)
    assert result["attempts"] == 1


def test_matrix_reports_evidence_and_never_changed(matrix_result: dict[str, Any]) -> None:
    by_name = {r["name"]: r for r in matrix_result["probes"]}
    assert matrix_result["changed"] is False
    assert by_name["allowed"]["headers"]["server"] == "envoy"
    assert "x-envoy-upstream-service-time" in by_name["allowed"]["headers"]
    assert by_name["denied"]["body_excerpt"] == "RBAC: access denied"
    assert by_name["refused"]["status"] is None and by_name["refused"]["curl_exit"] == 7
    assert matrix_result["summary"]["failed"] == 3
    assert "upstream_403" in matrix_result["mismatches"]


def test_mismatch_fails_with_table(envoy_gateway: EnvoyGateway, tmp_path: Path) -> None:
    args = {"probes": [_probe(envoy_gateway, "denied", "allowed")], "deadline": 0}
    result = run_module("egress_probe", args, tmp_path)
    assert result["failed"] is True and result["changed"] is False
    assert "1 of 1 probes did not hold" in result["msg"]
    assert "| allowed  | denied" in result["msg"]
    assert result["probes"][0]["attempts"] == 1  # deadline 0: one round, whatever the load


def test_runs_in_check_mode(envoy_gateway: EnvoyGateway, tmp_path: Path) -> None:
    args = {"probes": [_probe(envoy_gateway, "allowed", "allowed")]}
    result = run_module("egress_probe", args, tmp_path, check=True)
    assert result.get("failed") is not True, result
    assert result["probes"][0]["outcome"] == "allowed" and result["changed"] is False


RBAC_DENIED = "http.egress_http.rbac.denied"  # Envoy counts each request its RBAC denies
COMPLETED = "http.egress_http.downstream_rq_completed"  # and each request it answered
EVENT_TIMEOUT = 120.0  # a failure bound for awaited events, not a synchronisation delay


def wait_for(condition: Any, what: str) -> None:
    """Poll ``condition`` until it holds; fail after EVENT_TIMEOUT seconds."""
    deadline = time.monotonic() + EVENT_TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {EVENT_TIMEOUT:.0f}s")
        time.sleep(0.02)


def test_retry_holds_when_policy_changes_mid_probe(
    envoy_gateway: EnvoyGateway,
    tmp_path: Path,
) -> None:
    args = {
        "probes": [
            _probe(envoy_gateway, "denied", "allowed"),
            _probe(envoy_gateway, "allowed", "allowed"),
        ],
        "deadline": EVENT_TIMEOUT,
        "retry_delay": 0.5,
        "max_retry_delay": 1,
    }
    denied_before = envoy_gateway.counter(RBAC_DENIED)
    completed_before = envoy_gateway.counter(COMPLETED)
    results: list[dict[str, Any]] = []
    probing = threading.Thread(
        target=lambda: results.append(run_module("egress_probe", args, tmp_path))
    )
    probing.start()
    try:  # Envoy is restarted from this thread: it gets SIGTERM when its parent thread ends
        # the policy changes once Envoy has answered the module's whole first round: the
        # denied attempt, and the allowed one (restarting Envoy earlier would cut it off)
        wait_for(
            lambda: (
                (
                    envoy_gateway.counter(RBAC_DENIED) > denied_before
                    and envoy_gateway.counter(COMPLETED) >= completed_before + 2
                )
                or not probing.is_alive()
            ),
            "the module's first round (one denied, one allowed attempt)",
        )
        assert probing.is_alive(), results
        envoy_gateway.reconfigure(DEFAULT_CLIENTS + ("bookinfo/reviews",))
        probing.join()
    finally:
        envoy_gateway.reconfigure(DEFAULT_CLIENTS)
    reviews, productpage = results[0]["probes"]
    assert results[0].get("failed") is not True, results[0].get("msg")
    assert reviews["held"] and reviews["attempts"] >= 2 and reviews["seconds_to_hold"] > 0.5
    assert productpage["attempts"] == 1, "a probe that held is not re-run"


def test_retry_holds_when_upstream_recovers(
    envoy_gateway: EnvoyGateway,
    tmp_path: Path,
) -> None:
    probe = _probe(envoy_gateway, "allowed", "allowed")
    probe["url"] = probe["url"].replace("/get", "/flip")
    upstream = envoy_gateway.upstream
    upstream.flipped.clear()
    upstream.flip_refused.clear()
    args = {"probes": [probe], "deadline": EVENT_TIMEOUT, "retry_delay": 0.5}
    results: list[dict[str, Any]] = []
    probing = threading.Thread(
        target=lambda: results.append(run_module("egress_probe", args, tmp_path))
    )
    probing.start()
    try:  # the upstream recovers once it has refused the module's first attempt
        wait_for(
            lambda: upstream.flip_refused.is_set() or not probing.is_alive(),
            "the module's first (503) attempt",
        )
        upstream.flipped.set()
    finally:
        upstream.flipped.set()
        probing.join()
    [result] = results[0]["probes"]
    assert result["held"] and result["attempts"] >= 2, result


def test_junit_report(envoy_gateway: EnvoyGateway, tmp_path: Path) -> None:
    report = tmp_path / "reports" / "egress.xml"
    args = {
        "probes": [
            _probe(envoy_gateway, "allowed", "allowed"),
            _probe(envoy_gateway, "denied", "allowed"),
        ],
        "deadline": 0,
        "fail_on_mismatch": False,
        "junit_path": str(report),
    }
    result = run_module("egress_probe", args, tmp_path)
    suite = ET.parse(report).getroot().find("testsuite")
    assert result["junit_path"] == str(report) and result["changed"] is False
    assert suite is not None and suite.get("tests") == "2" and suite.get("failures") == "1"
    failed = [c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None]
    assert failed == ["denied"]
