"""What the collection asks of the environment it runs in (issue 13).

* requirements.txt, which every execution environment that includes the collection
  inherits, gives ranges: no exact pins (those are in requirements-dev.txt);
* no requirements.yml where AWX / Automation Controller project sync looks for one (the
  repository root, collections/, roles/): a sync would install kubernetes.core into the
  job's collection path ahead of the execution environment's pinned one;
* the one requirements file for vendoring projects (docs/requirements.yml) agrees with
  galaxy.yml's dependencies;
* the Python requirement lines in the missing-library message are requirements.txt's.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from ansible_collections.meshguard.egress.plugins.module_utils._requirements import REQUIREMENTS

ROOT = Path(__file__).resolve().parents[2]
PROJECT_SYNC_PATHS = [
    f"{d}requirements.{ext}" for d in ("", "collections/", "roles/") for ext in ("yml", "yaml")
]


def _requirement_lines(path: Path) -> list[str]:
    lines = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("-")]


def test_runtime_requirements_are_ranges() -> None:
    lines = _requirement_lines(ROOT / "requirements.txt")
    assert lines
    for line in lines:
        assert "==" not in line and "===" not in line, f"exact pin in requirements.txt: {line}"
        assert re.search(r">=\s*\d", line), f"no lower bound in requirements.txt: {line}"


def test_dev_requirements_pin_what_runtime_ranges_allow() -> None:
    from packaging.requirements import Requirement

    runtime = {
        Requirement(r).name.lower(): Requirement(r)
        for r in _requirement_lines(ROOT / "requirements.txt")
    }
    dev = _requirement_lines(ROOT / "requirements-dev.txt")
    assert "-r requirements.txt" in (ROOT / "requirements-dev.txt").read_text()
    for line in dev:
        req = Requirement(line)
        pins = [s.version for s in req.specifier if s.operator == "=="]
        assert pins, f"requirements-dev.txt should pin exactly: {line}"
        if req.name.lower() in runtime:
            assert runtime[req.name.lower()].specifier.contains(pins[0]), line


@pytest.mark.parametrize("path", PROJECT_SYNC_PATHS)
def test_no_requirements_file_where_awx_project_sync_looks(path: str) -> None:
    assert not (ROOT / path).exists(), (
        f"{path}: AWX project sync would install it over the EE's collections"
    )


def test_vendoring_requirements_agree_with_galaxy_yml() -> None:
    galaxy = yaml.safe_load((ROOT / "galaxy.yml").read_text())
    wanted = yaml.safe_load((ROOT / "docs" / "requirements.yml").read_text())
    listed = {c["name"]: c["version"] for c in wanted["collections"]}
    assert listed == galaxy["dependencies"]


def test_missing_library_message_uses_requirements_txt_lines() -> None:
    lines = set(_requirement_lines(ROOT / "requirements.txt"))
    assert set(REQUIREMENTS.values()) <= lines
