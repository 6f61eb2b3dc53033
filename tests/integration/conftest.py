"""Fixtures for the role and playbook tests: the stand-in gateway chart and ansible-playbook."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def recap(output: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP counters per host, summed over every play of the run."""
    stats: dict[str, dict[str, int]] = {}
    for host, counters in re.findall(r"^(\S+)\s+:\s+(ok=.*)$", output, re.MULTILINE):
        host_stats = stats.setdefault(host, {})
        for key, value in re.findall(r"(\w+)=(\d+)", counters):
            host_stats[key] = host_stats.get(key, 0) + int(value)
    return stats


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
