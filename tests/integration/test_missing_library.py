"""Where users run it: a Python without the libraries, and a report path outside the collection.

* The modules run with ``ansible_python_interpreter`` set to a fresh virtualenv's Python
  that has no ``kubernetes``: they fail with a message naming the library, its purpose,
  that interpreter and the pip line (not a bare ModuleNotFoundError). Controller-only
  probes, which need no library, still work with it.
* The example inventory's JUnit path: ``MESHGUARD_REPORT_DIR``, else the directory
  ansible-playbook runs in; never inside the collection.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A virtualenv's Python with nothing installed (no pip either)."""
    target = tmp_path_factory.mktemp("bare-venv")
    venv.EnvBuilder(with_pip=False, symlinks=True).create(target)
    python = target / "bin" / "python"
    probe = subprocess.run(
        [str(python), "-c", "import kubernetes"], capture_output=True, check=False
    )
    assert probe.returncode != 0, "the bare virtualenv unexpectedly has kubernetes"
    return str(python)


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "MESHGUARD_REPORT"))
    }
    env.update(
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".venv" / "collections"),
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"),
        ANSIBLE_NOCOLOR="1",
        PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        **extra,
    )
    return env


def _run_tasks(tmp_path: Path, python: str, tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    results = tmp_path / "results.json"
    for index, task in enumerate(tasks):
        task.update(register=f"r{index}", ignore_errors=True)
    saved = {f"r{i}": f"{{{{ r{i} }}}}" for i in range(len(tasks))}
    tasks = [
        *tasks,
        {
            "name": "Save the results",
            "ansible.builtin.copy": {
                "content": "{{ results | to_json }}",
                "dest": str(results),
                "mode": "0600",
            },
            "vars": {"results": saved, "ansible_python_interpreter": sys.executable},
        },
    ]
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        yaml.safe_dump(
            [
                {
                    "name": "Modules on a bare Python",
                    "hosts": "localhost",
                    "gather_facts": False,
                    "tasks": tasks,
                }
            ]
        )
    )
    proc = subprocess.run(
        [
            str(VENV_BIN / "ansible-playbook"),
            "-i",
            "localhost,",
            "-c",
            "local",
            "-e",
            f"ansible_python_interpreter={python}",
            str(playbook),
        ],
        cwd=tmp_path,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    saved_results = json.loads(results.read_text())
    return [saved_results[f"r{i}"] for i in range(len(saved_results))]


def test_modules_name_the_missing_kubernetes_library(bare_python: str, tmp_path: Path) -> None:
    access_log, probe, controller_probe = _run_tasks(
        tmp_path,
        bare_python,
        [
            {
                "name": "Pod logs",
                "meshguard.egress.gateway_access_log": {"namespace": "istio-egress"},
            },
            {
                "name": "Probe from a pod",
                "meshguard.egress.egress_probe": {
                    "probes": [
                        {
                            "url": "http://127.0.0.1:9/",
                            "expect": "unreachable",
                            "source": {"pod": "p"},
                        }
                    ]
                },
            },
            {
                "name": "Probe from the controller (no library needed)",
                "meshguard.egress.egress_probe": {
                    "deadline": 0,
                    "fail_on_mismatch": False,
                    "probes": [
                        {
                            "url": "http://127.0.0.1:9/",
                            "expect": "unreachable",
                            "connect_timeout": 2,
                        }
                    ],
                },
            },
        ],
    )
    for result in (access_log, probe):
        assert result["failed"]
        message = result["msg"]
        assert "Python library 'kubernetes'" in message, message
        assert bare_python in message and "pip install 'kubernetes>=" in message, message
        assert "Traceback" not in result.get("module_stderr", ""), result
    assert "read the gateway pods' logs" in access_log["msg"]
    assert "probe from pods" in probe["msg"]
    assert not controller_probe.get("failed"), controller_probe
    assert controller_probe["probes"][0]["curl_exit"] is not None


def _junit_path(tmp_path: Path, cwd: Path, **env: str) -> str:
    proc = subprocess.run(
        [
            str(VENV_BIN / "ansible"),
            "localhost",
            "-i",
            str(ROOT / "playbooks" / "inventory" / "example"),
            "-m",
            "ansible.builtin.debug",
            "-a",
            "var=egress_verify.junit_path",
        ],
        cwd=cwd,
        env=_env(tmp_path, PWD=str(cwd), **env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout[proc.stdout.index("{") :])["egress_verify.junit_path"]


def test_example_report_path_is_outside_the_collection(tmp_path: Path) -> None:
    workdir = tmp_path / "project"
    workdir.mkdir()
    assert _junit_path(tmp_path, workdir) == f"{workdir}/egress-verify.xml"
    reports = tmp_path / "reports"
    assert (
        _junit_path(tmp_path, workdir, MESHGUARD_REPORT_DIR=str(reports))
        == f"{reports}/egress-verify.xml"
    )
