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
    REPO,
    EnvoyGateway,
    ansible_env,
    istio_json_log_line,
    verify_description,
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


def run_role(tmp_path: Path, variables: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    (tmp_path / "site.yml").write_text(PLAYBOOK)
    variables = {"ansible_python_interpreter": str(REPO / ".venv" / "bin" / "python"), **variables}
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


EXPECTED_CASES = {
    "bookinfo/productpage -> httpbin.org:80",
    "bookinfo/reviews -> httpbin.org:80",
    "bookinfo/productpage -> unregistered.meshguard.invalid:80 (unregistered)",
    "bookinfo/bypass -> httpbin.org:443 (bypass)",
}


def test_role_passes_and_writes_junit(envoy_gateway: EnvoyGateway, tmp_path: Path) -> None:
    junit = tmp_path / "out" / "verify.xml"
    clients = [{"namespace": "bookinfo", "service_account": "productpage"}]
    done = run_role(tmp_path, verify_description(envoy_gateway, junit, clients))
    assert done.returncode == 0, done.stdout + done.stderr
    suite, cases = junit_cases(junit)
    assert suite.get("tests") == "4" and suite.get("failures") == "0"
    assert cases == dict.fromkeys(EXPECTED_CASES, True)
    assert "egress verification: 4/4 expectations hold" in done.stdout
    assert "got denied" in done.stdout and "got blocked" in done.stdout
    assert "is listed in services[0].clients" in done.stdout
    assert "PASS  access log: httpbin.org/get" in done.stdout
    assert "changed=0" in done.stdout


def test_without_network_policy_enforcement_the_bypass_row_is_not_proven(
    envoy_gateway: EnvoyGateway, tmp_path: Path
) -> None:
    """verify.network_policies_enforced false: the bypass probe still runs (once), its
    outcome is shown, and it neither passes nor fails the role."""
    junit = tmp_path / "verify.xml"
    clients = [{"namespace": "bookinfo", "service_account": "productpage"}]
    variables = verify_description(envoy_gateway, junit, clients)
    variables["egress_verify"]["network_policies_enforced"] = False
    done = run_role(tmp_path, variables)
    assert done.returncode == 0, done.stdout + done.stderr
    suite, cases = junit_cases(junit)
    assert cases == dict.fromkeys(EXPECTED_CASES, True)  # no failure element
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("4", "0", "1")
    [skipped] = [c for c in suite.iter("testcase") if c.find("skipped") is not None]
    assert skipped.get("name") == "bookinfo/bypass -> httpbin.org:443 (bypass)"
    reason = (
        "NetworkPolicies are not enforced on this cluster (verify.network_policies_enforced: "
        "false), so a bypass outcome proves nothing"
    )
    assert skipped.find("skipped").get("message") == f"not proven: {reason}"  # type: ignore[union-attr]
    assert "observed: unreachable (connection refused (curl exit 7))" in (
        skipped.find("skipped").text or ""  # type: ignore[union-attr]
    )
    assert "egress verification: 3/3 expectations hold, 1 not proven" in done.stdout
    assert (
        "NOT PROVEN  bookinfo/bypass -> httpbin.org:443 (bypass): expected unreachable, "
        "got unreachable" in done.stdout
    )
    assert f"not proven: {reason}" in done.stdout


def test_role_fails_when_the_description_allows_a_client_the_gateway_denies(
    envoy_gateway: EnvoyGateway, tmp_path: Path
) -> None:
    """reviews added as a client: the plan now expects 200, the gateway still denies it."""
    junit = tmp_path / "verify.xml"
    clients = [
        {"namespace": "bookinfo", "service_account": sa} for sa in ("productpage", "reviews")
    ]
    done = run_role(tmp_path, verify_description(envoy_gateway, junit, clients))
    assert done.returncode != 0
    suite, cases = junit_cases(junit)
    assert suite.get("tests") == "4" and suite.get("failures") == "1"
    assert cases["bookinfo/reviews -> httpbin.org:80"] is False
    assert "expected allowed, got denied" in done.stdout


def test_role_fails_when_the_access_policy_is_removed_from_the_description(
    envoy_gateway: EnvoyGateway, tmp_path: Path
) -> None:
    """No clients list: the plan expects everyone allowed; the gateway denies reviews."""
    junit = tmp_path / "verify.xml"
    variables = verify_description(envoy_gateway, junit, [])
    del variables["egress_services"][0]["clients"]
    done = run_role(tmp_path, variables)
    assert done.returncode != 0
    _suite, cases = junit_cases(junit)
    assert [name for name, ok in cases.items() if not ok] == ["bookinfo/reviews -> httpbin.org:80"]


def test_role_skips_the_access_log_when_logging_is_off(
    envoy_gateway: EnvoyGateway, tmp_path: Path
) -> None:
    junit = tmp_path / "verify.xml"
    variables = verify_description(
        envoy_gateway, junit, [{"namespace": "bookinfo", "service_account": "productpage"}]
    )
    variables["egress_verify"]["access_log"] = False
    variables["egress_verify"]["access_log_path"] = str(tmp_path / "missing.log")
    done = run_role(tmp_path, variables)
    assert done.returncode == 0, done.stdout
    assert "SKIP  access log: gateway access logging is off" in done.stdout


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
    variables = verify_description(envoy_gateway, junit, clients)
    variables["egress_verify"]["access_log_path"] = str(other_gateway_log)
    done = run_role(tmp_path, variables)
    suite, _cases = junit_cases(junit)
    assert suite.get("failures") == "0"  # the probes themselves held
    assert done.returncode != 0, done.stdout
    assert "FAIL  access log: httpbin.org/get (0 records)" in done.stdout
    assert "requests not found in the access log" in done.stdout
