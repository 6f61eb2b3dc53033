"""Faults on a control plane of the test's own: the API server dies in the middle of a
converge, a Helm install the API server rejects, and a gateway release another run left
``pending-upgrade``, ``pending-rollback`` or ``failed`` (a real helm process killed while it
waits, or a real upgrade the API server rejects halfway), recovered by the next run.

Drift repair (objects deleted or edited out of band) is in test_site_playbook.py.
"""

from __future__ import annotations

import json
import os
import signal
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
    assert f"recover ({status} revision 1) by uninstalling it and installing it again" in (
        rerun.stdout
    ), rerun.stdout[-4000:]
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


# ---------------------------------------------------------------- stranded Helm releases
#
# Each test converges the shipped playbook, leaves the gateway release the way a killed or
# failed helm run leaves it, and runs the playbook again. The states are made by real helm
# processes: an upgrade or rollback that switches the gateway to a Deployment waits (--wait)
# for pods that never start (the test bed has no kubelet), so it is certain to be inside its
# wait -- its revision recorded pending, the Deployment created, the DaemonSet deleted -- when
# the test kills it; and an upgrade the API server rejects halfway is recorded ``failed``.

DEPLOYMENT = {
    "egress_override_zz_deployment": {"gateway": {"extra_values": {"kind": "Deployment"}}}
}
STUCK_TIMEOUT = 300.0  # failure bound only: how long a helm process may take to reach its wait
HELM_WAIT = "1800s"  # longer than any test run: a helm process in its wait never returns


def helm_cli(kubeconfig: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HELM), *args, "--namespace", NAMESPACE],
        env={"KUBECONFIG": kubeconfig, "HOME": str(Path.home())},
        capture_output=True,
        text=True,
        check=check,
    )


def history(kubeconfig: str) -> list[tuple[int, str]]:
    """(revision, status) of every stored revision of the gateway release."""
    listed = json.loads(helm_cli(kubeconfig, "history", RELEASE, "--output", "json").stdout)
    return [(entry["revision"], entry["status"]) for entry in listed]


def description_of(kubeconfig: str, revision: int) -> str:
    listed = json.loads(helm_cli(kubeconfig, "history", RELEASE, "--output", "json").stdout)
    return next(e["description"] for e in listed if e["revision"] == revision)


def values(kubeconfig: str, revision: int) -> dict[str, Any]:
    return json.loads(
        helm_cli(
            kubeconfig, "get", "values", RELEASE, "--revision", str(revision), "--output", "json"
        ).stdout
    )


def helm_upgrade(
    kubeconfig: str, gateway_chart: dict[str, str], release_values: dict[str, Any], tmp: Path
) -> subprocess.CompletedProcess[str]:
    """``helm upgrade`` of the gateway release outside the collection (no preflight, no
    wait): how anything else may change the release."""
    values_file = tmp / "values.json"
    values_file.write_text(json.dumps(release_values))
    chart = gateway_chart["MESHGUARD_GATEWAY_CHART"]
    return helm_cli(kubeconfig, "upgrade", RELEASE, chart, "-f", str(values_file), check=False)


def helm_objects(kubeconfig: str) -> set[tuple[str, str]]:
    """(kind, name) of the live objects in the gateway namespace that Helm annotates as the
    gateway release's, of every kind any revision of the release rendered."""
    client = dynamic_client(kubeconfig)
    found = set()
    for api_version, kind in rendered_kinds(kubeconfig):
        for item in (
            client.resources.get(api_version=api_version, kind=kind).get(namespace=NAMESPACE).items
        ):
            annotations = item.metadata.annotations or {}
            if annotations.get("meta.helm.sh/release-name") == RELEASE:
                found.add((kind, item.metadata.name))
    return found


def manifest_docs(kubeconfig: str, revision: int) -> list[dict[str, Any]]:
    text = helm_cli(kubeconfig, "get", "manifest", RELEASE, "--revision", str(revision)).stdout
    return [doc for doc in yaml.safe_load_all(text) if isinstance(doc, dict) and doc.get("kind")]


def rendered_kinds(kubeconfig: str) -> set[tuple[str, str]]:
    return {
        (doc["apiVersion"], doc["kind"])
        for revision, _status in history(kubeconfig)
        for doc in manifest_docs(kubeconfig, revision)
    }


def manifest(kubeconfig: str, revision: int) -> set[tuple[str, str]]:
    """(kind, name) of the objects of one revision's manifest."""
    return {(doc["kind"], doc["metadata"]["name"]) for doc in manifest_docs(kubeconfig, revision)}


def workload_kinds(kubeconfig: str) -> set[str]:
    """Which of Deployment / DaemonSet named like the release exist."""
    client = dynamic_client(kubeconfig)
    return {
        kind
        for kind in ("Deployment", "DaemonSet")
        if [
            item
            for item in client.resources.get(api_version="apps/v1", kind=kind)
            .get(namespace=NAMESPACE)
            .items
            if item.metadata.name == RELEASE
        ]
    }


def apply_result(stdout: str) -> dict[str, Any]:
    """The egress_apply task's result from a ``-v`` run log."""
    for line in stdout.splitlines():
        for prefix in ("changed: [localhost] => ", "ok: [localhost] => "):
            if line.startswith(prefix) and '"plan_name"' in line:
                return json.loads(line[len(prefix) :])
    raise AssertionError(f"no egress_apply result in the run log:\n{stdout[-3000:]}")


def in_its_wait(kubeconfig: str, revision: int, status: str) -> Callable[[], bool]:
    """The helm process that writes ``revision`` has recorded it ``status`` and applied its
    manifests (the Deployment is there, the DaemonSet gone): it is waiting for pods that will
    never be ready."""
    secrets = dynamic_client(kubeconfig).resources.get(api_version="v1", kind="Secret")

    def check() -> bool:
        stored = secrets.get(
            namespace=NAMESPACE, label_selector=f"owner=helm,name={RELEASE},version={revision}"
        ).items
        labels = stored[0].metadata.labels if stored else {}
        return labels.get("status") == status and workload_kinds(kubeconfig) == {"Deployment"}

    return check


def helm_descendants(word: str) -> list[int]:
    """Process ids of the helm processes this test started (its descendants, e.g. under
    ansible-playbook) whose command line has ``word`` (upgrade, rollback)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    mine = {os.getpid()}
    grew = True
    while grew:
        children = {pid for pid, ppid in parents.items() if ppid in mine} - mine
        grew = bool(children)
        mine |= children
    found = []
    for pid in mine - {os.getpid()}:
        try:
            argv = (Path("/proc") / str(pid) / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"/helm") and word.encode() in argv:
            found.append(pid)
    return found


def kill_when(condition: Callable[[], bool], pids: Callable[[], list[int]]) -> threading.Event:
    """SIGKILL the processes ``pids()`` as soon as ``condition`` holds; the returned event is
    set when that happened. At the failure bound, or if the condition raises, they are
    killed anyway (the event stays clear and ``.error`` says why): nothing is left waiting."""
    killed = threading.Event()
    killed.error = None  # type: ignore[attr-defined]

    def kill() -> None:
        deadline = time.monotonic() + STUCK_TIMEOUT
        try:
            while time.monotonic() < deadline:
                if condition() and pids():
                    for pid in pids():
                        os.kill(pid, signal.SIGKILL)
                    killed.set()
                    return
                time.sleep(0.05)
            killed.error = f"not in its wait after {STUCK_TIMEOUT}s"  # type: ignore[attr-defined]
        except Exception as exc:
            killed.error = repr(exc)  # type: ignore[attr-defined]
        finally:
            for pid in pids():
                os.kill(pid, signal.SIGKILL)

    thread = threading.Thread(target=kill, daemon=True)
    thread.start()
    killed.thread = thread  # type: ignore[attr-defined]
    return killed


def converge(run_playbook: Any, kubeconfig: str, extra: dict | None = None) -> None:
    proc = run_playbook("playbooks/site.yml", extra, kubeconfig_path=kubeconfig)
    assert proc.returncode == 0, proc.stdout[-4000:]


def assert_recovered(
    run_playbook: Any,
    kubeconfig: str,
    planned: dict[str, Any],
    recovery: dict[str, Any],
    kept: int,
) -> None:
    """The next run of the shipped playbook recovers the release as ``recovery`` says, ends
    ``deployed`` at the planned values without losing revision ``kept`` or leaving an
    orphan, and a further run changes nothing."""
    stranded = recovery["revision"]
    rerun = run_playbook("playbooks/site.yml", None, "-v", kubeconfig_path=kubeconfig)
    assert rerun.returncode == 0, rerun.stdout[-4000:]
    result = apply_result(rerun.stdout)
    label = (
        f"recover ({recovery['status']} revision {stranded}) by upgrading from deployed "
        f"revision {recovery['from_revision']}"
    )
    assert {"object": f"HelmRelease/{NAMESPACE}/{RELEASE}", "action": label} in result["changes"], (
        result["changes"]
    )
    assert result["release"]["recovery"] == {"how": "upgrade", **recovery}, result["release"]

    # Helm's own record: the stranded revision is failed (a pending one was marked so, which
    # released Helm's lock), the new one deployed, nothing before them lost
    final = stranded + 1
    revisions = history(kubeconfig)
    assert revisions[-2:] == [(stranded, "failed"), (final, "deployed")], revisions
    assert [r for r, _status in revisions] == list(range(1, final + 1)), revisions
    if recovery["status"] != "failed":
        assert description_of(kubeconfig, stranded).startswith(
            f"Interrupted while {recovery['status']}: marked failed by meshguard.egress"
        )
    assert values(kubeconfig, final) == planned
    assert values(kubeconfig, kept) == planned
    assert manifest(kubeconfig, kept) == manifest(kubeconfig, final)

    # no orphan: exactly the deployed revision's objects, the DaemonSet the plan wants
    assert helm_objects(kubeconfig) == manifest(kubeconfig, final)
    assert workload_kinds(kubeconfig) == {"DaemonSet"}

    again = run_playbook("playbooks/site.yml", kubeconfig_path=kubeconfig)
    assert again.returncode == 0, again.stdout[-4000:]
    assert again.stats["localhost"]["changed"] == 0, again.stdout[-3000:]
    assert history(kubeconfig)[-1] == (final, "deployed")


def test_an_upgrade_killed_in_its_wait_is_recovered_by_the_next_run(
    control_plane: Any, run_playbook: Any, gateway_chart: dict[str, str], tmp_path: Path
) -> None:
    kubeconfig = control_plane.kubeconfig
    converge(run_playbook, kubeconfig)
    planned = values(kubeconfig, 1)
    assert planned["kind"] == "DaemonSet"

    # the run that upgrades the gateway to a Deployment is killed while helm waits for it
    killed = kill_when(
        in_its_wait(kubeconfig, 2, "pending-upgrade"), lambda: helm_descendants("upgrade")
    )
    long_wait = {"egress_override_zz_wait": {"gateway": {"wait_timeout": int(HELM_WAIT[:-1])}}}
    interrupted = run_playbook(
        "playbooks/site.yml", {**DEPLOYMENT, **long_wait}, kubeconfig_path=kubeconfig
    )
    killed.thread.join()  # type: ignore[attr-defined]
    assert killed.is_set(), killed.error  # type: ignore[attr-defined]
    assert interrupted.returncode != 0
    assert "helm upgrade failed" in interrupted.stdout, interrupted.stdout[-3000:]
    assert history(kubeconfig) == [(1, "deployed"), (2, "pending-upgrade")]
    locked = helm_upgrade(kubeconfig, gateway_chart, planned, tmp_path)
    assert "another operation (install/upgrade/rollback) is in progress" in locked.stderr

    assert_recovered(
        run_playbook,
        kubeconfig,
        planned,
        {
            "status": "pending-upgrade",
            "revision": 2,
            "from_revision": 1,
            "stranded_revisions": [2],
            "removed": [f"Deployment/{NAMESPACE}/{RELEASE}"],
        },
        kept=1,
    )


def test_a_rollback_killed_in_its_wait_is_recovered_by_the_next_run(
    control_plane: Any, run_playbook: Any, gateway_chart: dict[str, str], tmp_path: Path
) -> None:
    kubeconfig = control_plane.kubeconfig
    converge(run_playbook, kubeconfig)  # 1: the planned DaemonSet
    planned = values(kubeconfig, 1)
    no_wait = {"egress_override_zz_no_wait": {"gateway": {"atomic": False}}}
    converge(run_playbook, kubeconfig, {**DEPLOYMENT, **no_wait})  # 2: a Deployment
    converge(run_playbook, kubeconfig)  # 3: the planned DaemonSet again
    assert history(kubeconfig) == [(1, "superseded"), (2, "superseded"), (3, "deployed")]

    # someone rolls back to the Deployment (revision 2) and the rollback is killed in its wait
    rollback = subprocess.Popen(
        [str(HELM), "rollback", RELEASE, "2", "--namespace", NAMESPACE, "--wait"]
        + ["--timeout", HELM_WAIT],
        env={"KUBECONFIG": kubeconfig, "HOME": str(Path.home())},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        killed = kill_when(
            in_its_wait(kubeconfig, 4, "pending-rollback"),
            lambda: [rollback.pid] if rollback.poll() is None else [],
        )
        killed.thread.join()  # type: ignore[attr-defined]
    finally:
        if rollback.poll() is None:
            rollback.kill()
        rollback.wait()
    assert killed.is_set(), killed.error  # type: ignore[attr-defined]
    assert rollback.returncode == -signal.SIGKILL
    assert history(kubeconfig)[-2:] == [(3, "deployed"), (4, "pending-rollback")]
    locked = helm_upgrade(kubeconfig, gateway_chart, planned, tmp_path)
    assert "another operation (install/upgrade/rollback) is in progress" in locked.stderr

    assert_recovered(
        run_playbook,
        kubeconfig,
        planned,
        {
            "status": "pending-rollback",
            "revision": 4,
            "from_revision": 3,
            "stranded_revisions": [4],
            "removed": [f"Deployment/{NAMESPACE}/{RELEASE}"],
        },
        kept=3,
    )


def test_an_upgrade_the_api_server_rejects_halfway_is_recovered_by_the_next_run(
    control_plane: Any, run_playbook: Any, gateway_chart: dict[str, str], tmp_path: Path
) -> None:
    kubeconfig = control_plane.kubeconfig
    converge(run_playbook, kubeconfig)
    planned = values(kubeconfig, 1)

    # a helm upgrade outside the collection (no preflight) renames the service account and
    # sets a Service type the API server rejects: Helm creates the new ServiceAccount, fails
    # on the Service and records the revision failed, the new ServiceAccount left behind
    broken = {**planned, "serviceAccount": {"name": "stranded-sa"}}
    broken["service"] = {**planned.get("service", {}), "type": "Bogus"}
    failed = helm_upgrade(kubeconfig, gateway_chart, broken, tmp_path)
    assert failed.returncode != 0
    assert 'Unsupported value: "Bogus"' in failed.stderr, failed.stderr
    assert history(kubeconfig) == [(1, "deployed"), (2, "failed")]
    assert ("ServiceAccount", "stranded-sa") in helm_objects(kubeconfig)
    assert_recovered(
        run_playbook,
        kubeconfig,
        planned,
        {
            "status": "failed",
            "revision": 2,
            "from_revision": 1,
            "stranded_revisions": [2],
            "removed": [f"ServiceAccount/{NAMESPACE}/stranded-sa"],
        },
        kept=1,
    )
