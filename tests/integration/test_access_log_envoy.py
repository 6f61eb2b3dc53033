"""gateway_access_log parses what a real Envoy wrote (Istio JSON, Istio text, Envoy default)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / ".venv" / "collections"))
from envoy_gateway import EnvoyGateway, run_module

from ansible_collections.meshguard.egress.plugins.module_utils._probe import (
    Probe,
    run_batch,
    run_script_locally,
)

pytest_plugins = ("envoy_gateway",)  # the envoy_gateway fixture

REQUESTS = ("allowed", "denied", "blocked_http", "no_healthy_upstream", "allowed_tls")

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def traffic(envoy_gateway: EnvoyGateway) -> EnvoyGateway:
    urls = envoy_gateway.urls()
    probes = [Probe(n, urls[n]["url"], "allowed", headers=urls[n]["headers"]) for n in REQUESTS]
    run_batch(probes, run_script_locally)
    ends = time.monotonic() + 10
    while time.monotonic() < ends:  # Envoy flushes access logs asynchronously
        logs = (envoy_gateway.json_log, envoy_gateway.text_log, envoy_gateway.envoy_log)
        if all(p.exists() and len(p.read_text().splitlines()) >= len(REQUESTS) for p in logs):
            break
        time.sleep(0.2)
    return envoy_gateway


def _by_authority(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["authority"]: r for r in records}


@pytest.mark.parametrize("log", ["json_log", "text_log", "envoy_log"])
def test_parses_every_record(traffic: EnvoyGateway, log: str, tmp_path: Path) -> None:
    result = run_module("gateway_access_log", {"path": str(getattr(traffic, log))}, tmp_path)
    records = _by_authority(result["records"])
    assert result["changed"] is False and result["skipped_lines"] == 0
    assert {r["response_code"] for r in result["records"]} >= {200, 403, 502, 503}
    assert records["httpbin.org"]["method"] == "GET" and records["httpbin.org"]["path"] == "/get"
    assert records["nohealthy.example"]["response_flags"] == "UH"
    assert all(isinstance(r["duration"], int) for r in result["records"])
    if log != "envoy_log":  # Envoy's default format has no upstream cluster
        assert records["secure.example"]["upstream_cluster"] == "outbound|443||secure.example"


def test_filters_and_expectations(traffic: EnvoyGateway, tmp_path: Path) -> None:
    args = {
        "path": str(traffic.json_log),
        "filter": {"authority": "HTTPBIN.org", "response_code": [200]},
        "expect_requests": [{"authority": "secure.example", "path": "/g*"}],
    }
    result = run_module("gateway_access_log", args, tmp_path)
    assert result.get("failed") is not True, result.get("msg")
    assert result["count"] == 1 and result["found"] is True
    assert result["matched"][0]["upstream_cluster"] == "outbound|80||httpbin.org"
    assert result["expectations"][0]["found"] is True


def test_missing_request_fails(traffic: EnvoyGateway, tmp_path: Path) -> None:
    args = {
        "path": str(traffic.json_log),
        "expect_requests": [{"authority": "httpbin.org", "path": "/never"}],
    }
    result = run_module("gateway_access_log", args, tmp_path)
    assert result["failed"] is True and "/never" in result["msg"]
    assert result["expectations"][0]["count"] == 0
