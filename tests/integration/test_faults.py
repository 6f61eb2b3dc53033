"""Faults on a control plane of the test's own: the API server dies in the middle of a
converge, and a Helm install the API server rejects.

Drift repair (objects deleted or edited out of band) is in test_site_playbook.py.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
HELM = Path(sys.executable).parent / "helm"
GATEWAY = yaml.safe_load(
    (ROOT / "playbooks/inventory/example/group_vars/all/egress.yml").read_text()
)["egress_gateway"]
NAMESPACE, RELEASE = GATEWAY["namespace"], GATEWAY["name"]
TRIGGER_TIMEOUT = 120.0


@pytest.fixture
def control_plane(testbed_dir: Path | None, tmp_path: Path, run_playbook: Any) -> Iterator[Any]:
    """A local control plane of this test only (prepared like the shared one), stopped after."""
    if testbed_dir is None:
        pytest.skip("stops and restarts an API server: needs a local control plane")
    import testbed

    with testbed.LocalControlPlane(tmp_path / "control-plane") as control_plane:
        prepared = run_playbook(
            "molecule/shared/prepare.yml", kubeconfig_path=control_plane.kubeconfig
        )
        assert prepared.returncode == 0, prepared.stdout[-3000:]
        yield control_plane


def dynamic_client(kubeconfig: str) -> Any:
    from kubernetes import config, dynamic

    return dynamic.DynamicClient(config.new_client_from_config(kubeconfig))


def helm_releases(kubeconfig: str) -> list[dict[str, Any]]:
    """``helm list -n <gateway namespace> -a``: releases in any state."""
    listed = subprocess.run(
        [str(HELM), "list", "--namespace", NAMESPACE, "--all", "--output", "json"],
        env={"KUBECONFIG": kubeconfig, "HOME": str(Path.home())},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(listed.stdout)


RECOVERY_TASK = "Remove a first install that an interrupted run left pending"


def task_outcomes(stdout: str, task: str) -> list[str]:
    """Per-host results (``ok``, ``changed``, ``skipping``, ``fatal``...) of the tasks whose
    name ends with ``task`` in a default-callback run log."""
    outcomes = []
    for block in re.split(r"^TASK \[", stdout, flags=re.MULTILINE)[1:]:
        title, _sep, body = block.partition("\n")
        if title.split("]")[0].endswith(task):
            outcomes += re.findall(r"^(ok|changed|skipping|fatal|failed): \[", body, re.MULTILINE)
    return outcomes


def when(condition: Callable[[], bool], action: Callable[[], None]) -> threading.Thread:
    """Run ``action`` in a thread as soon as ``condition`` holds (polled every 50 ms)."""

    def poll() -> None:
        deadline = time.monotonic() + TRIGGER_TIMEOUT
        while time.monotonic() < deadline:
            try:
                if condition():
                    action()
                    return
            except Exception:  # the API may be down or busy: poll again
                pass
            time.sleep(0.05)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    return thread


def test_api_server_dying_during_the_gateway_install_then_a_rerun_converges(
    control_plane: Any, run_playbook: Any
) -> None:
    kubeconfig = control_plane.kubeconfig
    secrets = dynamic_client(kubeconfig).resources.get(api_version="v1", kind="Secret")
    stopped = threading.Event()

    def helm_started() -> bool:  # Helm has written the release record: install under way
        return bool(secrets.get(namespace=NAMESPACE, label_selector="owner=helm").items)

    def crash() -> None:
        control_plane.stop_apiserver()
        stopped.set()

    watcher = when(helm_started, crash)
    interrupted = run_playbook("playbooks/site.yml", kubeconfig_path=kubeconfig)
    watcher.join()

    assert stopped.is_set(), "the gateway install never started"
    assert interrupted.returncode != 0
    server = control_plane.server.removeprefix("https://")
    assert f"{server}: connect: connection refused" in interrupted.stdout, interrupted.stdout[
        -3000:
    ]

    control_plane.start_apiserver()
    left = helm_releases(kubeconfig)
    rerun = run_playbook("playbooks/site.yml", None, "-v", kubeconfig_path=kubeconfig)
    assert rerun.returncode == 0, rerun.stdout[-4000:]
    # the interrupted install left a release the next run had to recover, and it says so
    [(name, status)] = [(r["name"], r["status"]) for r in left]
    assert (name, status) in ((RELEASE, "pending-install"), (RELEASE, "failed")), left
    assert f"recover ({status}) and install" in rerun.stdout, rerun.stdout[-4000:]
    assert [(r["name"], r["status"]) for r in helm_releases(kubeconfig)] == [(RELEASE, "deployed")]
    services = dynamic_client(kubeconfig).resources.get(
        api_version="networking.gloo.solo.io/v2", kind="ExternalService"
    )
    assert services.get(name="httpbin.org", namespace="global").spec.ports[0].number == 443


def test_a_gateway_the_api_server_rejects_is_stopped_by_the_preflight(
    control_plane: Any, run_playbook: Any
) -> None:
    # the chart's schema accepts any string as service.type; the API server does not
    broken = {"gateway": {"extra_values": {"service": {"type": "Bogus"}}}}

    proc = run_playbook(
        "playbooks/site.yml",
        {"egress_override_zz_broken": broken},
        kubeconfig_path=control_plane.kubeconfig,
    )

    assert proc.returncode != 0
    assert (
        'Unsupported value: \\"Bogus\\"' in proc.stdout
        or 'Unsupported value: "Bogus"' in proc.stdout
    ), proc.stdout[-3000:]
    assert "nothing was written" in proc.stdout
    core = dynamic_client(control_plane.kubeconfig)
    namespaces = core.resources.get(api_version="v1", kind="Namespace")
    assert NAMESPACE not in [i.metadata.name for i in namespaces.get().items]
    assert helm_releases(control_plane.kubeconfig) == []
    core = dynamic_client(control_plane.kubeconfig)
    for kind in ("ServiceAccount", "Service", "Role", "RoleBinding"):
        api_version = "v1" if kind.startswith("Service") else "rbac.authorization.k8s.io/v1"
        listed = core.resources.get(api_version=api_version, kind=kind).get(namespace=NAMESPACE)
        assert [i.metadata.name for i in listed.items if i.metadata.name == RELEASE] == [], kind
