"""One module_defaults entry, group/meshguard.egress.egress, sends every module to one cluster.

The collection's action group (meta/runtime.yml) extends kubernetes.core's k8s and helm
groups and adds k8s_taint, so the kubernetes.core modules the roles call get the same
connection options as the collection's own. The play runs with a decoy default kubeconfig
(``HOME/.kube/config`` naming a closed port) and no ``K8S_AUTH_*``/``KUBECONFIG``: a task
that did not get the defaults would go there and fail. The control shows the old docs'
``group/kubernetes.core.k8s`` alone sending helm to the decoy.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def decoy_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    (home / ".kube").mkdir(parents=True)
    server = f"https://127.0.0.1:{_closed_port()}"
    (home / ".kube" / "config").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "decoy", "cluster": {"server": server}}],
                "users": [{"name": "decoy", "user": {"token": "decoy"}}],
                "contexts": [{"name": "decoy", "context": {"cluster": "decoy", "user": "decoy"}}],
                "current-context": "decoy",
            }
        )
    )
    return home


@pytest.fixture
def node(k8s: Any) -> Any:
    """A Node object of this test's own (no kubelet behind it) for k8s_taint."""
    from kubernetes.dynamic.exceptions import NotFoundError

    name = f"mg-defaults-{uuid.uuid4().hex[:8]}"
    api = k8s.resources.get(api_version="v1", kind="Node")
    api.create(body={"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
    yield name
    with contextlib.suppress(NotFoundError):
        api.delete(name=name)


def _play(group: str, kubeconfig: str, chart: str, namespace: str, node: str, results: Path):
    tasks: list[dict[str, Any]] = [
        {
            "name": "Install a release",
            "kubernetes.core.helm": {
                "name": "mg-defaults",
                "chart_ref": chart,
                "release_namespace": namespace,
                "values": {"kind": "DaemonSet"},
                "wait": False,
            },
        },
        {
            "name": "Read it back",
            "kubernetes.core.helm_info": {"name": "mg-defaults", "release_namespace": namespace},
        },
        {
            "name": "List the namespace's services",
            "kubernetes.core.k8s_info": {"kind": "Service", "namespace": namespace},
        },
        {
            "name": "Taint the node",
            "kubernetes.core.k8s_taint": {
                "name": node,
                "taints": [
                    {"key": "meshguard.io/test", "value": "defaults", "effect": "NoSchedule"}
                ],
            },
        },
        {
            "name": "Read the gateway access logs",
            "meshguard.egress.gateway_access_log": {
                "namespace": namespace,
                "label_selector": "istio=egressgateway",
            },
        },
        {
            "name": "Remove the release",
            "kubernetes.core.helm": {
                "name": "mg-defaults",
                "release_namespace": namespace,
                "state": "absent",
            },
        },
    ]
    for index, task in enumerate(tasks):
        task.update(register=f"r{index}", ignore_errors=True)
    saved = {f"r{i}": f"{{{{ r{i} }}}}" for i in range(len(tasks))}
    tasks.append(
        {
            "name": "Save the results",
            "ansible.builtin.copy": {
                "content": "{{ results | to_json }}",
                "dest": str(results),
                "mode": "0600",
            },
            "vars": {"results": saved},
        }
    )
    return [
        {
            "name": "Everything through one module_defaults entry",
            "hosts": "localhost",
            "gather_facts": False,
            "module_defaults": {group: {"kubeconfig": kubeconfig}},
            "tasks": tasks,
        }
    ]


def _run(
    tmp_path: Path, home: Path, group: str, kubeconfig: str, chart: str, namespace: str, node: str
) -> list[dict[str, Any]]:
    results = tmp_path / "results.json"
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        yaml.safe_dump(_play(group, kubeconfig, chart, namespace, node, results), sort_keys=False)
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("K8S_AUTH_", "ANSIBLE_")) and k != "KUBECONFIG"
    }
    env.update(
        HOME=str(home),
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".venv" / "collections"),
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"),
        ANSIBLE_NOCOLOR="1",
        PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    proc = subprocess.run(
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
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    saved = json.loads(results.read_text())
    return [saved[f"r{i}"] for i in range(len(saved))]


def test_collection_group_covers_helm_k8s_and_taint(
    tmp_path: Path, decoy_home: Path, kubeconfig: str, gateway_chart, namespace: str, node: str, k8s
) -> None:
    chart = gateway_chart["MESHGUARD_GATEWAY_CHART"]
    install, info, services, taint, access_log, remove = _run(
        tmp_path, decoy_home, "group/meshguard.egress.egress", kubeconfig, chart, namespace, node
    )
    for result in (install, info, services, taint, access_log, remove):
        assert not result.get("failed"), result.get("msg")
    assert install["changed"] and install["status"]["status"] == "deployed"
    assert info["status"]["name"] == "mg-defaults"
    assert [s["metadata"]["name"] for s in services["resources"]]  # the release's Service
    assert taint["changed"]
    taints = k8s.resources.get(api_version="v1", kind="Node").get(name=node).spec.taints
    assert [(t.key, t.value) for t in taints] == [("meshguard.io/test", "defaults")]
    assert access_log["count"] == 0 and remove["changed"]


def test_kubernetes_core_k8s_group_alone_sends_helm_elsewhere(
    tmp_path: Path, decoy_home: Path, kubeconfig: str, gateway_chart, namespace: str, node: str
) -> None:
    """The control: what docs/guide.md used to show. k8s_info gets the cluster, helm does not."""
    chart = gateway_chart["MESHGUARD_GATEWAY_CHART"]
    install, info, services, taint, access_log, _remove = _run(
        tmp_path, decoy_home, "group/kubernetes.core.k8s", kubeconfig, chart, namespace, node
    )
    assert not services.get("failed"), services.get("msg")
    assert install["failed"] and info["failed"] and taint["failed"] and access_log["failed"]
    decoy = yaml.safe_load((decoy_home / ".kube" / "config").read_text())
    decoy_server = decoy["clusters"][0]["cluster"]["server"].removeprefix("https://")
    assert decoy_server in install["msg"] + install.get("stderr", ""), install
