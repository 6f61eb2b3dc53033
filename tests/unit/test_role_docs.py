"""Every role declares its variables in meta/argument_specs.yml, prefixed with the role's
name, and its README matches those specs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLES = sorted(p for p in (ROOT / "roles").iterdir() if p.is_dir())


def _used_role_variables(role: Path) -> set[str]:
    text = "\n".join(p.read_text() for p in role.rglob("*.yml") if "meta" not in p.parts)
    return set(re.findall(rf"\b({role.name}_[a-z0-9_]+)\b", text))


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_every_variable_is_prefixed_and_declared(role: Path) -> None:
    specs = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())
    declared = set(specs["argument_specs"]["main"]["options"])
    assert all(name.startswith(f"{role.name}_") for name in declared), declared
    defaults_file = role / "defaults" / "main.yml"
    defaults = yaml.safe_load(defaults_file.read_text()) if defaults_file.is_file() else {}
    assert set(defaults or {}) <= declared
    # role-internal facts use a double underscore (<role>__name) and are not variables
    used = {v for v in _used_role_variables(role) if not v.startswith(f"{role.name}__")}
    assert used <= declared, sorted(used - declared)


def test_role_readmes_match_argument_specs() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "hack" / "role_docs.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout
