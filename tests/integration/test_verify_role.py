"""The verify role, run with ansible-playbook against the real Envoy gateway fixture."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from envoy_gateway import (
    CLIENT_HEADER,
    REPO,
    EnvoyGateway,
    ansible_env,
    istio_json_log_line,
)

pytest_plugins = ("envoy_gateway",)  # the envoy_gateway fixture

PLAYBOOK = """
- hosts: localhost
  connection: local
  gather_facts: false
  roles:
    - meshguard.egress.verify
"""

pytestmark = pytest.mark.integration


def role_vars(gw: EnvoyGateway, junit: Path, clients: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "ansible_python_interpreter": str(REPO / ".venv" / "bin" / "python"),
        "verify_services": [
            {
                "host": "httpbin.org",
                "ports": [{"number": 443, "protocol": "HTTPS", "client_port": 80}],
                "clients": clients,
            }
        ],
        "verify_sources": [
            {
                "namespace": "bookinfo",
                "service_account": sa,
                "headers": {CLIENT_HEADER: f"bookinfo/{sa}"},
            }
            for sa in ("productpage", "reviews")
        ],
        "verify_denied_clients": [{"namespace": "bookinfo", "service_account": "reviews"}],
        "verify_lockdown_namespaces": ["bookinfo"],
        "verify_bypass_url": f"http://127.0.0.1:{gw.closed_port}/",
        "verify_connect_to": [f"httpbin.org:80:127.0.0.1:{gw.http_port}"],
        "verify_path": "/get",
        "verify_deadline": 2,
        "verify_connect_timeout": 1,
        "verify_access_log_path": str(gw.json_log),
        "verify_junit_path": str(junit),
    }


def run_role(tmp_path: Path, variables: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    (tmp_path / "site.yml").write_text(PLAYBOOK)
    (tmp_path / "vars.json").write_text(json.dumps(variables))
    argv = [
        str(REPO / ".venv" / "bin" / "ansible-playbook"),
        "-i",
        "localhost,",
        str(tmp_path / "site.yml"),
        "-e",
        f"@{tmp_path / 'vars.json'}",
    ]
    return subprocess.run(
        argv, cwd=REPO, env=ansible_env(), capture_output=True, text=True, check=False
    )


def junit_cases(path: Path) -> tuple[ET.Element, dict[str, bool]]:
    suite = ET.parse(path).getroot().find("testsuite")
    assert suite is not None
    return suite, {c.get("name", ""): c.find("failure") is None for c in suite.iter("testcase")}


def test_role_passes_and_writes_junit(envoy_gateway: EnvoyGateway, tmp_path: Path) -> None:
    junit = tmp_path / "out" / "verify.xml"
    clients = [{"namespace": "bookinfo", "service_account": "productpage"}]
    done = run_role(tmp_path, role_vars(envoy_gateway, junit, clients))
    assert done.returncode == 0, done.stdout + done.stderr
    suite, cases = junit_cases(junit)
    assert suite.get("tests") == "3" and suite.get("failures") == "0"
    assert cases == {
        "bookinfo/productpage -> httpbin.org:80": True,
        "bookinfo/reviews -> httpbin.org:80": True,
        f"bookinfo bypass -> http://127.0.0.1:{envoy_gateway.closed_port}/": True,
    }
    assert "egress verification: 3/3 expectations hold" in done.stdout
    assert "PASS  access log: httpbin.org/get" in done.stdout
    assert "changed=0" in done.stdout


def test_role_fails_and_reports_mismatch(envoy_gateway: EnvoyGateway, tmp_path: Path) -> None:
    junit = tmp_path / "verify.xml"
    clients = [
        {"namespace": "bookinfo", "service_account": sa} for sa in ("productpage", "reviews")
    ]  # the gateway still denies reviews
    variables = role_vars(envoy_gateway, junit, clients)
    variables["verify_denied_clients"] = []
    done = run_role(tmp_path, variables)
    assert done.returncode != 0
    suite, cases = junit_cases(junit)
    assert suite.get("tests") == "3" and suite.get("failures") == "1"
    assert cases["bookinfo/reviews -> httpbin.org:80"] is False
    assert "expected allowed, got denied" in done.stdout


def test_role_fails_when_an_allowed_request_is_missing_from_the_access_log(
    envoy_gateway: EnvoyGateway, tmp_path: Path
) -> None:
    """Every probe holds, but the log read is not the gateway's that carried the request."""
    other_gateway_log = tmp_path / "other-gateway.log"
    after_the_role_starts = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(
        minutes=5
    )
    line = istio_json_log_line("httpbin.org", "/somewhere-else", after_the_role_starts)
    other_gateway_log.write_text(line + "\n")
    junit = tmp_path / "verify.xml"
    clients = [{"namespace": "bookinfo", "service_account": "productpage"}]
    variables = role_vars(envoy_gateway, junit, clients)
    variables["verify_access_log_path"] = str(other_gateway_log)
    done = run_role(tmp_path, variables)
    suite, _cases = junit_cases(junit)
    assert suite.get("failures") == "0"  # the probes themselves held
    assert done.returncode != 0, done.stdout
    assert "FAIL  access log: httpbin.org/get (0 records)" in done.stdout
    assert "requests not found in the access log" in done.stdout
