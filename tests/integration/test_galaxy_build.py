"""The collection as users get it: built by ansible-galaxy, installed into an empty path, used.

Builds the tarball from the checkout, checks what it ships (runtime content in, development
files out), installs it offline into an empty collections path next to kubernetes.core, and
runs a playbook from a directory outside the checkout that uses a module and a role by FQCN:
``meshguard.egress.gateway_access_log`` on a local log file and ``meshguard.egress.verify``
on the plan of a description, against the real Envoy that plays the egress gateway.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from envoy_gateway import EnvoyGateway, istio_json_log_line, verify_description

pytest_plugins = ("envoy_gateway",)  # the envoy_gateway fixture

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
KUBERNETES_CORE = ROOT / ".venv" / "collections" / "ansible_collections" / "kubernetes" / "core"
GALAXY = yaml.safe_load((ROOT / "galaxy.yml").read_text())
TARBALL_NAME = f"{GALAXY['namespace']}-{GALAXY['name']}-{GALAXY['version']}.tar.gz"

# Top-level paths of the checkout that are for developing the collection, not for using it.
DEV_ONLY = (".venv", ".ci", ".git", "hack", "tests", "molecule", "benchmarks", "build", "out")
CACHE_DIRS = {"__pycache__", ".pytest_cache", ".ruff_cache", ".ansible", ".mypy_cache"}

# An Istio JSON access-log line and an Envoy default-format line, as the gateway writes them.
ACCESS_LOG = "\n".join(
    [
        json.dumps(
            {
                "authority": "httpbin.org",
                "method": "GET",
                "path": "/get",
                "protocol": "HTTP/2",
                "response_code": 200,
                "response_flags": "-",
                "upstream_cluster": "outbound|443||httpbin.org",
                "duration": 3226,
                "start_time": "2025-06-05T21:02:20.806Z",
            }
        ),
        '[2025-06-05T21:03:01.000Z] "GET /status/418 HTTP/1.1" 403 - 0 19 1 - "-" '
        '"curl/8.1.1" "c75481d6" "httpbin.org" "-"',
        "not an access log line",
    ]
)


# --------------------------------------------------------------------------- helpers


def _clean_env(collections_path: Path) -> dict[str, str]:
    """The environment of a user with only ``collections_path``: no project ansible.cfg."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "K8S_AUTH_"))}
    env.update(
        ANSIBLE_COLLECTIONS_PATH=str(collections_path),
        ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false",
        ANSIBLE_NOCOLOR="1",
        PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    return env


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def _tar_members(tarball: Path) -> list[str]:
    with tarfile.open(tarball) as tar:
        return [m.name.removeprefix("./").rstrip("/") for m in tar.getmembers()]


def _module_names() -> list[str]:
    return sorted(
        p.stem for p in (ROOT / "plugins" / "modules").glob("*.py") if p.stem != "__init__"
    )


def _role_names() -> list[str]:
    return sorted(p.parent.parent.name for p in ROOT.glob("roles/*/meta/argument_specs.yml"))


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def tarball(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    proc = _run(
        [
            str(VENV_BIN / "ansible-galaxy"),
            "collection",
            "build",
            str(ROOT),
            "--output-path",
            str(out),
        ],
        cwd=out,
        env=_clean_env(out),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    built = out / TARBALL_NAME
    assert built.is_file(), f"{TARBALL_NAME} not in {os.listdir(out)}"
    return built


@pytest.fixture(scope="module")
def installed(tarball: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty collections path with kubernetes.core and the built collection installed."""
    if not (KUBERNETES_CORE / "MANIFEST.json").is_file():
        pytest.fail(f"kubernetes.core missing at {KUBERNETES_CORE}: run 'make setup'")
    path = tmp_path_factory.mktemp("collections")
    shutil.copytree(KUBERNETES_CORE, path / "ansible_collections" / "kubernetes" / "core")
    proc = _run(
        [
            str(VENV_BIN / "ansible-galaxy"),
            "collection",
            "install",
            "--offline",
            "-p",
            str(path),
            str(tarball),
        ],
        cwd=path,
        env=_clean_env(path),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (path / "ansible_collections" / "meshguard" / "egress" / "MANIFEST.json").is_file()
    return path


def _run_playbook(
    installed: Path, workdir: Path, plays: list[dict[str, Any]]
) -> subprocess.CompletedProcess[str]:
    """Run ``plays`` from ``workdir`` (outside the checkout) with only ``installed``."""
    playbook = workdir / "playbook.yml"
    playbook.write_text(yaml.safe_dump(plays, sort_keys=False))
    return _run(
        [
            str(VENV_BIN / "ansible-playbook"),
            "-i",
            "localhost,",
            "-c",
            "local",
            "-e",
            f"ansible_python_interpreter={sys.executable}",
            str(playbook),
        ],
        cwd=workdir,
        env=_clean_env(installed),
    )


def _saving(result_file: Path, task: dict[str, Any]) -> list[dict[str, Any]]:
    """``task`` registered, then its result written to ``result_file`` as JSON."""
    return [
        {**task, "register": "under_test"},
        {
            "name": "save the result",
            "ansible.builtin.copy": {
                "content": "{{ under_test | to_json }}",
                "dest": str(result_file),
                "mode": "0600",
            },
        },
    ]


# --------------------------------------------------------------------------- the tarball


def test_tarball_ships_runtime_content(tarball: Path) -> None:
    members = set(_tar_members(tarball))
    expected = {
        "MANIFEST.json",
        "FILES.json",
        "README.md",
        "meta/runtime.yml",
        "meta/execution-environment.yml",
        "requirements.txt",
        "bindep.txt",
        "playbooks/site.yml",
        "docs/guide.md",
        "CHANGELOG.rst",
        "changelogs/changelog.yaml",
        *(f"plugins/modules/{m}.py" for m in _module_names()),
        *(f"roles/{r}/meta/argument_specs.yml" for r in _role_names()),
    }
    assert expected <= members, sorted(expected - members)
    assert _module_names() and _role_names()


def test_tarball_keeps_development_files_and_caches_out(tarball: Path) -> None:
    members = _tar_members(tarball)
    leaked = [
        m
        for m in members
        if m.split("/")[0] in DEV_ONLY
        or CACHE_DIRS.intersection(m.split("/"))
        or m.endswith((".pyc", ".tar.gz"))
    ]
    assert not leaked, f"galaxy.yml build_ignore lets these in: {leaked}"


def test_manifest_matches_galaxy_yml(tarball: Path) -> None:
    with tarfile.open(tarball) as tar:
        manifest = json.load(tar.extractfile("MANIFEST.json"))["collection_info"]  # type: ignore[arg-type]
    assert (manifest["namespace"], manifest["name"], manifest["version"]) == (
        GALAXY["namespace"],
        GALAXY["name"],
        GALAXY["version"],
    )
    assert manifest["dependencies"] == {"kubernetes.core": ">=5.0.0"}


def test_execution_environment_files_agree(tarball: Path) -> None:
    """The EE metadata names files the tarball ships; the EE definition builds this version."""
    members = set(_tar_members(tarball))
    ee_meta = yaml.safe_load((ROOT / "meta" / "execution-environment.yml").read_text())
    assert {ee_meta["dependencies"]["python"], ee_meta["dependencies"]["system"]} <= members
    ee = yaml.safe_load((ROOT / "execution-environment.yml").read_text())
    assert ee["version"] == 3
    assert {f["src"] for f in ee["additional_build_files"]} == {f"build/{TARBALL_NAME}"}
    galaxy_names = [c["name"] for c in ee["dependencies"]["galaxy"]["collections"]]
    assert f"collections/{TARBALL_NAME}" in galaxy_names and "kubernetes.core" in galaxy_names


# --------------------------------------------------------------------------- installed


def test_installed_collection_is_the_one_ansible_uses(installed: Path, tmp_path: Path) -> None:
    env = _clean_env(installed)
    for module in _module_names():
        proc = _run([str(VENV_BIN / "ansible-doc"), f"meshguard.egress.{module}"], tmp_path, env)
        assert proc.returncode == 0, proc.stderr
        assert str(installed) in proc.stdout and str(ROOT) not in proc.stdout
    for role in _role_names():
        proc = _run(
            [str(VENV_BIN / "ansible-doc"), "-t", "role", f"meshguard.egress.{role}"], tmp_path, env
        )
        assert proc.returncode == 0 and "ENTRY POINT:" in proc.stdout, proc.stderr
        assert str(installed) in proc.stdout and str(ROOT) not in proc.stdout


def test_module_by_fqcn_parses_a_local_log(installed: Path, tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_text(ACCESS_LOG + "\n")
    saved = tmp_path / "result.json"
    plays = [
        {
            "name": "Use the installed collection's module by FQCN",
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": _saving(
                saved,
                {
                    "name": "parse",
                    "meshguard.egress.gateway_access_log": {
                        "path": str(log),
                        "filter": {"authority": "httpbin.org", "response_code": [200]},
                        "expect_requests": [{"authority": "httpbin.org", "path": "/get"}],
                    },
                },
            ),
        }
    ]
    proc = _run_playbook(installed, tmp_path, plays)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    result = json.loads(saved.read_text())
    assert result["changed"] is False
    assert len(result["records"]) == 2 and result["skipped_lines"] == 1
    assert result["count"] == 1 and result["matched"][0]["path"] == "/get"
    assert {r["response_code"] for r in result["records"]} == {200, 403}


def _access_log_line(authority: str, path: str) -> str:
    """An Istio JSON access-log record that starts after the role does (its ``since_time``)."""
    return istio_json_log_line(authority, path, datetime.now(timezone.utc) + timedelta(minutes=5))


def _verify_play(description: dict[str, Any]) -> list[dict[str, Any]]:
    """The installed collection's verify role by FQCN, with the description as play vars."""
    return [
        {
            "name": "Use the installed collection's verify role by FQCN",
            "hosts": "localhost",
            "gather_facts": False,
            "vars": description,
            "roles": ["meshguard.egress.verify"],
        }
    ]


def _failed_cases(junit: Path) -> list[str | None]:
    cases = ET.parse(junit).getroot().iter("testcase")
    return [c.get("name") for c in cases if c.find("failure") is not None]


PRODUCTPAGE = [{"namespace": "bookinfo", "service_account": "productpage"}]


def test_role_by_fqcn_verifies_the_plan_and_the_access_log(
    installed: Path, envoy_gateway: EnvoyGateway, tmp_path: Path
) -> None:
    junit = tmp_path / "report.xml"
    description = verify_description(envoy_gateway, junit, PRODUCTPAGE)
    proc = _run_playbook(installed, tmp_path, _verify_play(description))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    names = [c.get("name") for c in ET.parse(junit).getroot().iter("testcase")]
    assert len(names) == 4
    assert _failed_cases(junit) == []


def test_role_by_fqcn_fails_when_an_expectation_does_not_hold(
    installed: Path, envoy_gateway: EnvoyGateway, tmp_path: Path
) -> None:
    junit = tmp_path / "report.xml"
    clients = [*PRODUCTPAGE, {"namespace": "bookinfo", "service_account": "reviews"}]
    description = verify_description(envoy_gateway, junit, clients)
    proc = _run_playbook(installed, tmp_path, _verify_play(description))
    assert proc.returncode != 0, proc.stdout[-3000:]
    assert _failed_cases(junit) == ["bookinfo/reviews -> httpbin.org:80"]


def test_role_by_fqcn_fails_when_an_allowed_request_is_not_in_the_access_log(
    installed: Path, envoy_gateway: EnvoyGateway, tmp_path: Path
) -> None:
    junit = tmp_path / "report.xml"
    log = tmp_path / "access.log"
    log.write_text(_access_log_line("httpbin.org", "/somewhere-else") + "\n")
    description = verify_description(envoy_gateway, junit, PRODUCTPAGE)
    description["egress_verify"]["access_log_path"] = str(log)
    proc = _run_playbook(installed, tmp_path, _verify_play(description))
    assert _failed_cases(junit) == []  # the probes themselves held
    assert proc.returncode != 0, "a request missing from the gateway's access log must fail"
