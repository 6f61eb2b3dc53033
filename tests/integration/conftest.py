"""Fixtures for the role and playbook tests: the stand-in gateway chart and ansible-playbook;
for the tests that run real pods: the test bed's node (``node_testbed``, ``node_namespace``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "hack"))


@pytest.fixture(scope="session")
def node_testbed(
    testbed_dir: Path | None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    """A ``testbed.LocalControlPlane`` with a node that runs real pods (started once per
    session; hack/testbed.py ``start --node``). Its API server writes an audit log to
    ``<dir>/audit.log``.

    Which one: ``MESHGUARD_NODE_TESTBED_DIR`` (already running, e.g. started by hack/test.sh),
    else the session's control plane when it has a node, else one started here. On a user's
    cluster (``MESHGUARD_KUBECONFIG``) the node tests are skipped: they need this machine's
    node and its local ``localhost/meshguard/*`` images.
    """
    from testbed import LocalControlPlane

    if os.environ.get("MESHGUARD_KUBECONFIG"):
        pytest.skip("needs the local test bed's node (MESHGUARD_KUBECONFIG is set)")
    running = os.environ.get("MESHGUARD_NODE_TESTBED_DIR")
    if not running and testbed_dir is not None and LocalControlPlane(testbed_dir).node:
        running = str(testbed_dir)
    if running:
        control_plane = LocalControlPlane(running)
        alive = control_plane.alive()
        if not control_plane.node or not alive or not all(alive.values()):
            raise pytest.UsageError(f"{running} is not a running test bed with a node ({alive})")
        yield control_plane
        return
    workdir = tmp_path_factory.mktemp("node-testbed")
    control_plane = LocalControlPlane(workdir, node=True).start()
    try:
        yield control_plane
    finally:
        control_plane.stop()


@pytest.fixture
def node_namespace(node_testbed: Any) -> Iterator[str]:
    """A fresh namespace on the node's control plane (default service account ready)."""
    import node_pods

    core = node_pods.core_api(node_testbed.kubeconfig)
    name = f"mg-node-{uuid.uuid4().hex[:8]}"
    node_pods.create_namespace(core, name)
    try:
        yield name
    finally:
        node_pods.delete_namespace(core, name)


def recap(output: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP counters per host, summed over every play of the run."""
    stats: dict[str, dict[str, int]] = {}
    for host, counters in re.findall(r"^(\S+)\s+:\s+(ok=.*)$", output, re.MULTILINE):
        host_stats = stats.setdefault(host, {})
        for key, value in re.findall(r"(\w+)=(\d+)", counters):
            host_stats[key] = host_stats.get(key, 0) + int(value)
    return stats


@pytest.fixture(scope="session")
def play_recap() -> Callable[[str], dict[str, dict[str, int]]]:
    """``recap`` for tests that run ansible-playbook themselves."""
    return recap


@pytest.fixture(scope="session")
def gateway_chart(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The stand-in gateway chart carrying Istio's values schema (hack/chart.sh)."""
    chart = os.environ.get("MESHGUARD_GATEWAY_CHART")
    if not chart:
        out = tmp_path_factory.mktemp("charts")
        chart = subprocess.run(
            ["bash", str(ROOT / "hack" / "chart.sh"), str(out)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    schema = Path(chart) / "values.schema.json"
    return {
        "MESHGUARD_GATEWAY_CHART": chart,
        "MESHGUARD_GATEWAY_SCHEMA": str(schema) if schema.is_file() else "",
    }


def playbook_runner(
    kubeconfig: str, gateway_chart: dict[str, str], workdir: Path
) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run a playbook of the project with the example inventory on the test cluster.

    Extra vars are passed as a JSON file; the PLAY RECAP counters are parsed into
    ``proc.stats`` (per host: ok, changed, failed, ...; summed over the plays).
    """

    def run(
        playbook: str,
        extra_vars: dict | None = None,
        *args: str,
        kubeconfig_path: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        vars_file = workdir / "extra-vars.json"
        vars_file.write_text(json.dumps(extra_vars or {}))
        env = dict(
            os.environ,
            ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
            ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".venv" / "collections"),
            ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default",
            ANSIBLE_NOCOLOR="1",
            K8S_AUTH_KUBECONFIG=kubeconfig_path or kubeconfig,
            PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            **gateway_chart,
        )
        cmd = [
            str(VENV_BIN / "ansible-playbook"),
            str(ROOT / playbook),
            "-e",
            f"@{ROOT / 'molecule' / 'shared' / 'gateway-vars.yml'}",
            "-e",
            f"@{vars_file}",
            *args,
        ]
        proc = subprocess.run(
            cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
        )
        proc.stats = recap(proc.stdout)  # type: ignore[attr-defined]
        return proc

    return run


@pytest.fixture
def run_playbook(
    kubeconfig: str, gateway_chart: dict[str, str], tmp_path: Path
) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``playbook_runner`` for one test."""
    return playbook_runner(kubeconfig, gateway_chart, tmp_path)


@pytest.fixture(scope="module")
def run_playbook_module(
    kubeconfig: str, gateway_chart: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``playbook_runner`` for module-scoped fixtures."""
    return playbook_runner(kubeconfig, gateway_chart, tmp_path_factory.mktemp("playbooks"))
