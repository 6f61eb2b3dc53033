"""Run the molecule scenarios (check -> converge -> idempotence -> verify -> teardown)
against the same cluster as the other integration tests."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


@pytest.mark.parametrize("scenario", ["gloo", "istio"])
def test_molecule_scenario(scenario: str, kubeconfig: str, gateway_chart: dict[str, str]) -> None:
    env = dict(
        os.environ, MESHGUARD_KUBECONFIG=kubeconfig, NO_COLOR="1", PY_COLORS="0", **gateway_chart
    )
    _molecule_test(scenario, env)


def test_molecule_scenario_on_the_node(
    node_testbed: Any, gateway_chart: dict[str, str], tmp_path: Path
) -> None:
    """The node scenario: verify sends real traffic from real pods (hack/standin_mesh.py)."""
    sys.path.insert(0, str(ROOT / "hack"))
    import images

    env = dict(
        os.environ,
        MESHGUARD_NODE_KUBECONFIG=node_testbed.kubeconfig,
        MESHGUARD_CURL_IMAGE=images.image_names()["curl"],
        MESHGUARD_STANDIN_DIR=str(tmp_path),
        NO_COLOR="1",
        PY_COLORS="0",
        **gateway_chart,
    )
    output = _molecule_test("node", env)
    assert "egress verification: 3/3 expectations hold, 1 not proven" in output
    assert "403 RBAC: access denied" in output


def _molecule_test(scenario: str, env: dict[str, str]) -> str:
    env["ANSIBLE_FORCE_COLOR"] = "0"
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    molecule = str(Path(sys.executable).parent / "molecule")
    # molecule remembers "prepared" between runs; start every run from a clean state
    subprocess.run([molecule, "reset", "-s", scenario], cwd=ROOT, env=env, check=False)
    proc = subprocess.run(
        [molecule, "test", "-s", scenario],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    output = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout + proc.stderr)
    assert proc.returncode == 0, output[-6000:]
    # every step ran and succeeded (idempotence: the second converge changed nothing)
    for step in ("prepare", "check", "converge", "idempotence", "verify", "cleanup"):
        assert f"[{scenario} > {step}] Executed: Successful" in output, step
    assert re.search(rf"^{scenario}\s+: actions=6\s+successful=6 .* failed=0$", output, re.M)
    return output
