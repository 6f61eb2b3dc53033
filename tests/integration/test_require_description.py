"""A clear stop when there is no description: the shipped playbooks as users run them,
without an inventory (what ``ansible-playbook meshguard.egress.site`` alone does) and with
an inventory that only names the cluster. Nothing reaches a cluster in either case."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
PLAYBOOKS = ("site.yml", "teardown.yml", "verify.yml", "audit.yml")


def _run(playbook: str, workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """From a directory outside the checkout, without the project's ansible.cfg."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "K8S_AUTH_"))}
    env.update(
        ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".venv" / "collections"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_LOCAL_TEMP=str(workdir / "ansible-tmp"),
        HOME=str(workdir),  # no ~/.kube/config either
    )
    return subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), str(ROOT / "playbooks" / playbook), *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_without_an_inventory_the_message_says_where_the_description_comes_from(
    playbook: str, tmp_path: Path
) -> None:
    proc = _run(playbook, tmp_path)
    assert proc.returncode != 0
    out = " ".join(proc.stdout.split())
    assert "meshguard.egress: no inventory, so no cluster and no egress description" in out, out
    assert f"-i {ROOT / 'playbooks'}/inventory/example meshguard.egress.site" in out
    assert (
        "~/.ansible/collections/ansible_collections/meshguard/egress/playbooks/inventory/example"
        in out
    )
    assert "is undefined" not in out


@pytest.mark.parametrize("playbook", ["site.yml", "verify.yml"])
def test_connection_variables_alone_are_no_description(playbook: str, tmp_path: Path) -> None:
    inventory = tmp_path / "hosts.yml"
    host = {"ansible_connection": "local", "egress_kubeconfig": "/k", "egress_context": "c"}
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"cluster-1": host}}}))
    proc = _run(playbook, tmp_path, "-i", str(inventory))
    assert proc.returncode != 0
    out = " ".join(proc.stdout.split())
    assert "no egress description: this host has no egress_* variables" in out, out
    assert "playbooks/inventory/example" in out
