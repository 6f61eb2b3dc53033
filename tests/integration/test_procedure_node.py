"""The procedure end to end from real pods: the shipped playbooks with the example inventory
on the test bed's node, with the stand-in data plane (hack/standin_mesh.py) playing istiod.

* On the session's node: site.yml, verify.yml and teardown.yml exactly as the README runs
  them (example inventory, the embedded overrides), for both flavors; a re-run converges
  with changed=0.
* A description converged wrong (reviews added as a client; the access policy removed) makes
  the Envoys do the wrong thing on the wire, and verify.yml with the intended description
  fails on exactly the rows that should fail.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import images  # hack/ and tests/ are on sys.path (tests/integration/conftest.py)
import pytest
import yaml
from conftest import recap
from standin_mesh import Standin

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration
VENV_BIN = Path(sys.executable).parent
NODE_VARS = ("-e", "@hack/embedded-vars.yml", "-e", "@hack/embedded-node-vars.yml")
ALLOWED = "bookinfo/bookinfo-productpage -> httpbin.org:80"
DENIED = "bookinfo/bookinfo-reviews -> httpbin.org:80"
BLOCKED = "bookinfo/bookinfo-productpage -> unregistered.meshguard.invalid:80 (unregistered)"
BYPASS = "bookinfo/(bypass pod) -> httpbin.org:443 (bypass)"
HELD = {ALLOWED: "PASS", DENIED: "PASS", BLOCKED: "PASS", BYPASS: "NOT PROVEN"}
EXAMPLE_SERVICE = yaml.safe_load(
    (ROOT / "playbooks/inventory/example/group_vars/all/egress.yml").read_text()
)["egress_services"][0]


def _env(kubeconfig: str, gateway_chart: dict[str, str], report_dir: Path) -> dict[str, str]:
    return dict(
        os.environ,
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".venv" / "collections"),
        ANSIBLE_NOCOLOR="1",
        K8S_AUTH_KUBECONFIG=kubeconfig,
        MESHGUARD_CURL_IMAGE=images.image_names()["curl"],
        MESHGUARD_REPORT_DIR=str(report_dir),
        PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        **gateway_chart,
    )


class Procedure:
    """The shipped playbooks on the node, as the README runs them, plus the stand-in."""

    def __init__(self, kubeconfig: str, chart: dict[str, str], work: Path) -> None:
        self.work = work
        self.env = _env(kubeconfig, chart, work)
        self.standin = Standin(work / "standin", kubeconfig)

    def playbook(self, playbook: str, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = [str(VENV_BIN / "ansible-playbook"), playbook, *NODE_VARS, *args]
        proc = subprocess.run(
            cmd, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=900, check=False
        )
        proc.stats = recap(proc.stdout)  # type: ignore[attr-defined]
        return proc

    def plan(self, *args: str) -> str:
        path = self.work / f"plan-{len(list(self.work.glob('plan-*.json')))}.json"
        proc = self.playbook("hack/standin-plan.yml", "-e", f"standin_plan_path={path}", *args)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return str(path)

    def converge(self, *args: str) -> None:
        """site.yml with ``args``, then the stand-in plays that description's plan."""
        proc = self.playbook("playbooks/site.yml", *args)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        self.standin.configure(self.plan(*args))

    def verify(self, *args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
        proc = self.playbook("playbooks/verify.yml", *args)
        return proc, summary_rows(proc.stdout)


def summary_rows(output: str) -> dict[str, str]:
    """``{probe name: PASS|FAIL|NOT PROVEN}`` from the verify role's summary."""
    rows = {}
    for verdict, name in re.findall(r'"(PASS|FAIL|NOT PROVEN)  (.+?): expected ', output):
        rows[name] = verdict
    return rows


def _verdicts(output: str) -> str:
    """The lines that say why a verification failed (for assertion messages)."""
    keep = ("FAIL", "access log", "fatal:", "[ERROR]")
    return "\n".join(line for line in output.splitlines() if any(k in line for k in keep))


def _override(name: str, **description: Any) -> tuple[str, str]:
    return ("-e", json.dumps({f"egress_override_{name}": description}))


@pytest.fixture(scope="module")
def procedure(
    node_testbed: Any, gateway_chart: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Procedure]:
    run = Procedure(node_testbed.kubeconfig, gateway_chart, tmp_path_factory.mktemp("procedure"))
    run.standin.start(run.plan())
    try:
        yield run
    finally:
        run.playbook("playbooks/teardown.yml")
        run.standin.stop()


@pytest.mark.parametrize("flavor", ["gloo", "istio"])
def test_shipped_playbooks_prove_the_procedure_from_real_pods(
    procedure: Procedure, flavor: str
) -> None:
    flavor_args = ("-e", f"egress_flavor={flavor}")
    first = procedure.playbook("playbooks/site.yml", *flavor_args)
    assert first.returncode == 0, first.stdout + first.stderr
    procedure.standin.configure(procedure.plan(*flavor_args))
    again = procedure.playbook("playbooks/site.yml", *flavor_args)
    assert again.returncode == 0 and again.stats["localhost"]["changed"] == 0, again.stdout

    proc, rows = procedure.verify(*flavor_args)
    assert proc.returncode == 0, _verdicts(proc.stdout) + proc.stderr
    assert rows == HELD, proc.stdout
    out = proc.stdout
    # the node enforces no NetworkPolicy: the bypass row says so instead of passing
    assert "not proven: NetworkPolicies are not enforced on this cluster" in out
    assert "expected allowed, got allowed (200 via Envoy" in out
    assert "expected denied, got denied (403 RBAC: access denied" in out
    assert "expected blocked, got blocked (502 from Envoy" in out
    assert "PASS  access log: httpbin.org/get" in out
    assert proc.stats["localhost"]["changed"] == 0 and proc.stats["localhost"]["failed"] == 0

    report = ET.parse(procedure.work / "egress-verify.xml").getroot()
    cases = {case.get("name"): case for case in report.iter("testcase")}
    assert {ALLOWED, DENIED, BLOCKED} <= set(cases), sorted(cases)
    assert all(cases[name].find("failure") is None for name in (ALLOWED, DENIED, BLOCKED))
    assert cases[BYPASS].find("skipped") is not None

    down = procedure.playbook("playbooks/teardown.yml", *flavor_args)
    assert down.returncode == 0 and down.stats["localhost"]["changed"] > 0, down.stdout


BROKEN = {
    "reviews added as a client": {
        **EXAMPLE_SERVICE,
        "clients": [
            *EXAMPLE_SERVICE["clients"],
            {"namespace": "bookinfo", "service_account": "bookinfo-reviews"},
        ],
    },
    "access policy removed": {
        key: value for key, value in EXAMPLE_SERVICE.items() if key != "clients"
    },
}


@pytest.mark.parametrize("broken", sorted(BROKEN))
def test_a_description_converged_wrong_fails_verify_on_the_right_rows(
    procedure: Procedure, broken: str
) -> None:
    procedure.converge(*_override("zbroken", services=[BROKEN[broken]]))
    # verify against the intended description (the example), with a shorter deadline than
    # the default 60 s: the wrong row is wrong for good (it is retried until the deadline),
    # the others hold at their first attempt (the stand-in waited for the gateway's route)
    proc, rows = procedure.verify(*_override("zdeadline", verify={"deadline": 10}))
    assert proc.returncode != 0, proc.stdout
    assert rows == {**HELD, DENIED: "FAIL"}, proc.stdout
    assert "expected denied, got allowed (200 via Envoy" in proc.stdout
    report = ET.parse(procedure.work / "egress-verify.xml").getroot()
    failed = [c.get("name") for c in report.iter("testcase") if c.find("failure") is not None]
    assert failed == [DENIED], failed

    procedure.converge()  # the intended description again: verify holds
    proc, rows = procedure.verify()
    assert proc.returncode == 0 and rows == HELD, proc.stdout
