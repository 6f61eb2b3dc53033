"""playbooks/tasks/require_description.yml: a clear stop when the host has no description.

The task file is the first task of the shipped playbooks. Here it runs from a playbook
beside a copy of it (the way site.yml imports it), without an inventory (what
``ansible-playbook meshguard.egress.site`` does when the user gives none), with an
inventory that only names the cluster, and with the example inventory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


@pytest.fixture
def playbook(tmp_path: Path) -> Path:
    playbooks = tmp_path / "playbooks"
    (playbooks / "tasks").mkdir(parents=True)
    shutil.copy(ROOT / "playbooks" / "tasks" / "require_description.yml", playbooks / "tasks")
    play = [
        {
            "name": "Like site.yml",
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "Require an egress description",
                    "ansible.builtin.import_tasks": "tasks/require_description.yml",
                },
                {"name": "Reached", "ansible.builtin.debug": {"msg": "description found"}},
            ],
        }
    ]
    path = playbooks / "site.yml"
    path.write_text(yaml.safe_dump(play, sort_keys=False))
    return path


def _run(playbook: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(
        ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".venv" / "collections"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_LOCAL_TEMP=str(playbook.parent / "ansible-tmp"),
    )
    return subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), str(playbook), *args],
        cwd=playbook.parent.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_without_an_inventory_the_message_says_where_the_description_comes_from(
    playbook: Path,
) -> None:
    proc = _run(playbook)
    assert proc.returncode != 0
    out = " ".join(proc.stdout.split())
    assert "no egress description for host localhost" in out, proc.stdout
    assert f"-i {playbook.parent}/inventory/example meshguard.egress.site" in out
    assert (
        "~/.ansible/collections/ansible_collections/meshguard/egress/playbooks/inventory/example"
        in out
    )
    assert "'egress_flavor' is undefined" not in out and "description found" not in out


def test_connection_variables_alone_are_no_description(playbook: Path, tmp_path: Path) -> None:
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        yaml.safe_dump(
            {
                "all": {
                    "hosts": {
                        "localhost": {
                            "ansible_connection": "local",
                            "egress_kubeconfig": "/k",
                            "egress_context": "c",
                        }
                    }
                }
            }
        )
    )
    proc = _run(playbook, "-i", str(inventory))
    assert proc.returncode != 0 and "no egress description" in proc.stdout


def test_example_inventory_passes(playbook: Path) -> None:
    proc = _run(playbook, "-i", str(ROOT / "playbooks" / "inventory" / "example"))
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert "description found" in proc.stdout
