"""One inventory host per cluster: two local control planes converged and torn down in one
run of the shipped playbooks (Ansible's forks run them in parallel), each cluster with its
own kubeconfig and its own description (host_vars)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ansible_collections.meshguard.egress.plugins.plugin_utils.plan import MANAGED_KINDS

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
OWNER = "meshguard.io/description"


@pytest.fixture
def second_cluster(testbed_dir: Path | None, tmp_path: Path, run_playbook: Any) -> Iterator[Any]:
    if testbed_dir is None:
        pytest.skip("starts a second local control plane")
    import testbed

    with testbed.LocalControlPlane(tmp_path / "cluster-b") as control_plane:
        prepared = run_playbook(
            "molecule/shared/prepare.yml", kubeconfig_path=control_plane.kubeconfig
        )
        assert prepared.returncode == 0, prepared.stdout[-3000:]
        yield control_plane


def client(kubeconfig: str) -> Any:
    from kubernetes import config, dynamic

    return dynamic.DynamicClient(config.new_client_from_config(kubeconfig))


def owned(kubeconfig: str, name: str) -> set[tuple[str, str, str]]:
    k8s = client(kubeconfig)
    found = set()
    for api_version, kind in MANAGED_KINDS:
        for item in (
            k8s.resources.get(api_version=api_version, kind=kind)
            .get(label_selector=f"{OWNER}={name}")
            .items
        ):
            found.add((kind, item.metadata.namespace or "", item.metadata.name))
    return found


def run_fleet(
    playbook: str, inventory: Path, gateway_chart: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    env = dict(
        {k: v for k, v in os.environ.items() if not k.startswith("K8S_AUTH_")},
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".venv" / "collections"),
        ANSIBLE_NOCOLOR="1",
        PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        **gateway_chart,
    )
    cmd = [
        str(VENV_BIN / "ansible-playbook"),
        "-i", str(ROOT / "playbooks" / "inventory" / "example"),
        "-i", str(inventory),
        str(ROOT / playbook),
        "-e", "egress_hosts=fleet",
        "-e", f"@{ROOT / 'molecule' / 'shared' / 'gateway-vars.yml'}",
        "--forks", "2",
    ]  # fmt: skip
    return subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False
    )


def test_two_clusters_with_their_own_descriptions_in_one_run(
    kubeconfig: str, second_cluster: Any, gateway_chart: dict[str, str], tmp_path: Path
) -> None:
    fleet = {
        "fleet": {
            "hosts": {
                "cluster-a": {
                    "ansible_connection": "local",
                    "ansible_python_interpreter": sys.executable,
                    "egress_kubeconfig": kubeconfig,
                    "egress_name": "fleet-a",
                },
                "cluster-b": {
                    "ansible_connection": "local",
                    "ansible_python_interpreter": sys.executable,
                    "egress_kubeconfig": second_cluster.kubeconfig,
                    "egress_name": "fleet-b",
                    "egress_flavor": "istio",
                },
            }
        }
    }
    inventory = tmp_path / "fleet.yml"
    inventory.write_text(yaml.safe_dump(fleet))

    converged = run_fleet("playbooks/site.yml", inventory, gateway_chart)
    assert converged.returncode == 0, converged.stdout[-4000:]
    # the example's localhost only runs the inventory check; egress_hosts=fleet picks the clusters
    assert (
        "localhost                  : ok=0    changed=0" in converged.stdout.split("PLAY RECAP")[1]
    )
    a, b = owned(kubeconfig, "fleet-a"), owned(second_cluster.kubeconfig, "fleet-b")
    assert ("ExternalService", "global", "httpbin.org") in a
    assert ("ServiceEntry", "global", "httpbin.org") in b
    assert not any(kind == "ServiceEntry" for kind, _ns, _name in a)
    assert (
        owned(kubeconfig, "fleet-b") == set()
        and owned(second_cluster.kubeconfig, "fleet-a") == set()
    )

    again = run_fleet("playbooks/site.yml", inventory, gateway_chart)
    assert again.returncode == 0
    assert "cluster-a                  : ok=1    changed=0" in again.stdout
    assert "cluster-b                  : ok=1    changed=0" in again.stdout

    removed = run_fleet("playbooks/teardown.yml", inventory, gateway_chart)
    assert removed.returncode == 0, removed.stdout[-4000:]
    assert owned(kubeconfig, "fleet-a") == set()
    assert owned(second_cluster.kubeconfig, "fleet-b") == set()
