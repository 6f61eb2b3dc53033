"""The module docs survive galaxy-importer (what Galaxy and Automation Hub run on upload).

galaxy-importer (from PyPI, offline: ansible-test and ansible-lint off) reads the docs with
``ansible-doc`` in a collections path that holds only the uploaded collection. A module
that extends a doc fragment of another collection (kubernetes.core.k8s_auth_options) loses
its whole documentation there. A second check does the same with plain ansible-doc: every
module of the tarball, installed without kubernetes.core.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
GALAXY = yaml.safe_load((ROOT / "galaxy.yml").read_text())
TARBALL = f"{GALAXY['namespace']}-{GALAXY['name']}-{GALAXY['version']}.tar.gz"
MODULES = sorted(
    p.stem for p in (ROOT / "plugins" / "modules").glob("*.py") if p.stem != "__init__"
)
AUTH_OPTIONS = {"kubeconfig", "context", "host", "api_key", "validate_certs", "ca_cert"}
# the modules that talk to a cluster: the action group module_defaults sets them for
RUNTIME = yaml.safe_load((ROOT / "meta" / "runtime.yml").read_text())
CLUSTER_MODULES = {
    m for m in RUNTIME["action_groups"]["egress"] if isinstance(m, str) and "." not in m
}


def _env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "K8S_AUTH_"))}
    env.update(
        HOME=str(tmp / "home"),
        ANSIBLE_LOCAL_TEMP=str(tmp / "ansible-tmp"),
        ANSIBLE_NOCOLOR="1",
        PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        **extra,
    )
    return env


@pytest.fixture(scope="module")
def tarball(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run(
        [
            str(VENV_BIN / "ansible-galaxy"),
            "collection",
            "build",
            str(ROOT),
            "--output-path",
            str(out),
        ],
        cwd=out,
        env=_env(out),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out / TARBALL


def _module_docs(result: dict[str, Any]) -> dict[str, Any]:
    return {
        c["content_name"]: c.get("doc_strings")
        for c in result["docs_blob"]["contents"]
        if c["content_type"] == "module"
    }


def test_the_cluster_modules_are_known() -> None:
    assert {"egress_apply", "egress_audit", "egress_probe", "gateway_access_log"} <= CLUSTER_MODULES


def test_galaxy_importer_keeps_every_module_doc(tarball: Path, tmp_path: Path) -> None:
    config = tmp_path / "galaxy-importer.cfg"
    config.write_text(
        "[galaxy-importer]\nRUN_ANSIBLE_TEST = False\nRUN_ANSIBLE_LINT = False\n"
        "CHECK_REQUIRED_TAGS = False\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "galaxy_importer.main", "--print-result", str(tarball)],
        cwd=tmp_path,
        env=_env(tmp_path, GALAXY_IMPORTER_CONFIG=str(config)),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    assert "Error running ansible-doc" not in output and "unknown doc_fragment" not in output, (
        output
    )
    result = json.loads(proc.stdout[proc.stdout.index("\n{") + 1 :])
    docs = _module_docs(result)
    assert sorted(docs) == MODULES
    for module, doc in docs.items():
        assert doc, f"galaxy-importer dropped the docs of {module}"
        options = {option["name"] for option in doc["doc"]["options"]}  # a list here
        if module in CLUSTER_MODULES:
            assert options >= AUTH_OPTIONS, (module, sorted(AUTH_OPTIONS - options))
        assert doc["examples"] and doc["return"], module


def test_ansible_doc_without_kubernetes_core(tarball: Path, tmp_path: Path) -> None:
    collections = tmp_path / "collections"
    env = _env(
        tmp_path,
        ANSIBLE_COLLECTIONS_PATH=str(collections),
        ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false",
    )
    proc = subprocess.run(
        [
            str(VENV_BIN / "ansible-galaxy"),
            "collection",
            "install",
            "--offline",
            "--no-deps",
            "-p",
            str(collections),
            str(tarball),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not (collections / "ansible_collections" / "kubernetes").exists()
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-doc"), "--json", *(f"meshguard.egress.{m}" for m in MODULES)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Error loading plugin" not in proc.stderr, proc.stderr
    docs = json.loads(proc.stdout)
    assert sorted(docs) == [f"meshguard.egress.{m}" for m in MODULES]
    for name, doc in docs.items():
        options = set(doc["doc"]["options"])
        if name.split(".")[-1] in CLUSTER_MODULES:
            assert options >= AUTH_OPTIONS, (name, sorted(AUTH_OPTIONS - options))
