"""Every role declares its variables in meta/argument_specs.yml (its own <role>_* ones and
the egress_* description variables, generated from the schema), and the generated files
(argument specs, role READMEs, docs/description.md) are up to date."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLES = sorted(p for p in (ROOT / "roles").iterdir() if p.is_dir())


def _used_variables(role: Path) -> set[str]:
    text = "\n".join(p.read_text() for p in role.rglob("*.yml") if "meta" not in p.parts)
    return set(re.findall(rf"\b({role.name}_[a-z0-9_]+)\b", text))


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_every_variable_is_prefixed_and_declared(role: Path) -> None:
    specs = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())
    declared = set(specs["argument_specs"]["main"]["options"])
    assert all(name.startswith((f"{role.name}_", "egress_")) for name in declared), declared
    defaults = yaml.safe_load((role / "defaults" / "main.yml").read_text()) or {}
    assert set(defaults) <= declared
    assert all(name.startswith(f"{role.name}_") for name in defaults)
    # role-internal facts use a double underscore (<role>__name) and are not variables
    used = {v for v in _used_variables(role) if not v.startswith(f"{role.name}__")}
    assert used <= declared, sorted(used - declared)


def test_generated_specs_readmes_and_key_reference_are_up_to_date() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "hack" / "gen_docs.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
