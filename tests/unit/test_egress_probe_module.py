"""egress_probe's source handling without a cluster: service-account claims, bypass pods
(created, probed from, always deleted; none in check mode) and not-proven probes.

The Kubernetes API is a stand-in that records each call (no kubelet runs here); the same
paths run against the real node in tests/integration/test_verify_node.py.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / ".venv" / "collections"))
from ansible_collections.meshguard.egress.plugins.module_utils import _pod_exec as pe
from ansible_collections.meshguard.egress.plugins.module_utils import _probe as p
from ansible_collections.meshguard.egress.plugins.modules import egress_probe as ep

IMAGE = "localhost/meshguard/curl:7.88.1"


class ApiError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status, self.reason = status, reason


class FakeCore:
    """CoreV1Api: pods by (namespace, name); bypass pods run on the second read."""

    def __init__(self, pods: dict[tuple[str, str], dict[str, Any]] | None = None) -> None:
        self.pods = dict(pods or {})
        self.calls: list[tuple[str, str, str]] = []
        self.reads: dict[str, int] = {}
        self.created: list[dict[str, Any]] = []
        self.delete_error: list[ApiError] = []  # raised by the next deletes
        self.bypass_phase = "Running"

    def read_namespaced_pod(self, name: str, namespace: str) -> dict[str, Any]:
        self.calls.append(("read", namespace, name))
        if (namespace, name) not in self.pods:
            raise ApiError(404, "Not Found")
        pod = self.pods[(namespace, name)]
        self.reads[name] = self.reads.get(name, 0) + 1
        if name.startswith(pe.BYPASS_POD_PREFIX) and self.reads[name] >= 2:
            pod["status"] = {"phase": self.bypass_phase}
        return pod

    def create_namespaced_pod(self, namespace: str, body: dict[str, Any]) -> None:
        name = body["metadata"]["name"]
        self.calls.append(("create", namespace, name))
        self.created.append(body)
        self.pods[(namespace, name)] = {
            "metadata": {**body["metadata"], "namespace": namespace},
            "spec": body["spec"],
            "status": {"phase": "Pending"},
        }

    def delete_namespaced_pod(self, name: str, namespace: str, **kwargs: Any) -> None:
        self.calls.append(("delete", namespace, name))
        assert kwargs == {"grace_period_seconds": 0}
        if self.delete_error:
            raise self.delete_error[0]
        self.pods.pop((namespace, name))


class FakeModule:
    def __init__(self, probes: list[dict[str, Any]], check_mode: bool = False) -> None:
        self.params = {
            "probes": probes,
            "deadline": 0,
            "retry_delay": 0,
            "max_retry_delay": 0,
            "curl_path": "curl",
            "debug_container_timeout": 5,
        }
        self.check_mode = check_mode
        self.warnings: list[str] = []

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def fail_json(self, **kwargs: Any) -> None:
        raise AssertionError(kwargs)


def app_pod(name: str, service_account: str | None, namespace: str = "bookinfo") -> dict:
    spec: dict[str, Any] = {"containers": [{"name": "curl"}]}
    if service_account is not None:
        spec["serviceAccountName"] = service_account
    return {
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
        "status": {"phase": "Running"},
    }


def probe_params(source: dict[str, Any], **extra: Any) -> dict[str, Any]:
    params = {
        "name": extra.pop("name", "p"),
        "url": "https://httpbin.org/",
        "method": "GET",
        "headers": {},
        "expect": "unreachable",
        "expected_status": [],
        "require_envoy": True,
        "timeout": 5,
        "connect_timeout": 3,
        "insecure": False,
        "connect_to": [],
        "not_proven": None,
        "source": {
            "namespace": "bookinfo",
            "pod": None,
            "label_selector": None,
            "container": None,
            "debug_image": None,
            "service_account": None,
            "bypass_image": None,
            **source,
        },
    }
    params.update(extra)
    return params


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A fake cluster; every exec runs a script that reports connection refused."""
    state: dict[str, Any] = {"core": FakeCore(), "execs": []}

    def fake_runner(core: Any, stream: Any, namespace: str, pod: str, container: Any) -> Any:
        def run(script: str, timeout: float) -> p.ScriptResult:
            state["execs"].append((namespace, pod, container))
            marker = script.split("\n", 1)[0].split("=", 1)[1].strip("'")
            count = script.count(") &")
            out = "".join(
                f"{marker} BEGIN {i}\n{marker} EXIT 7\n{marker} WRITE 000 0.01 0\n"
                f"{marker} STDERR\nrefused\n{marker} HEADERS\n\n{marker} BODY\n\n"
                f"{marker} END {i}\n"
                for i in range(count)
            )
            return p.ScriptResult(stdout=out)

        return run

    monkeypatch.setattr(pe, "make_exec_runner", fake_runner)
    monkeypatch.setattr(ep, "_core_api", lambda module: (state["core"], None, "stream"))
    return state


def run(module: FakeModule) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    probes, sources = ep.build_probes(module.params["probes"])
    return ep.run_probes(module, probes, sources)


# --------------------------------------------------------------------------- service account


@pytest.mark.parametrize(
    ("actual", "claimed", "error"),
    [
        ("bookinfo-productpage", "bookinfo-productpage", None),
        ("bookinfo-reviews", "bookinfo-productpage", "'bookinfo-reviews'"),
        (None, "default", None),  # no serviceAccountName: the API's default
        (None, "bookinfo-productpage", "'default'"),
        ("bookinfo-reviews", None, None),  # nothing claimed: nothing checked
    ],
)
def test_the_claimed_service_account_is_checked(
    cluster: dict[str, Any], actual: str | None, claimed: str | None, error: str | None
) -> None:
    cluster["core"].pods[("bookinfo", "pp-1")] = app_pod("pp-1", actual)
    module = FakeModule([probe_params({"pod": "pp-1", "service_account": claimed})])
    [result], bypass = run(module)
    assert bypass == []
    if error is None:
        assert (result["outcome"], result["held"]) == ("unreachable", True)
        assert cluster["execs"] == [("bookinfo", "pp-1", None)]
        return
    assert result["outcome"] == "error" and not result["held"]
    assert result["detail"] == (
        f"pod bookinfo/pp-1 runs as service account {error}, not {claimed!r} as its source "
        f"claims: its probes would not prove {claimed}'s access"
    )
    assert cluster["execs"] == []  # nothing ran in the wrong pod


def test_the_claim_is_part_of_the_source_key() -> None:
    source = pe.PodSource("bookinfo", label_selector="app=pp", container="curl")
    claimed = pe.PodSource("bookinfo", label_selector="app=pp", service_account="pp")
    assert source.key == "bookinfo/[app=pp]/curl"
    assert claimed.key == "bookinfo/[app=pp] as pp"
    assert pe.PodSource("bookinfo", bypass_image=IMAGE).key == f"bookinfo/(bypass {IMAGE})"


def test_the_service_account_of_a_client_object() -> None:
    assert pe.pod_service_account({"spec": {"service_account_name": "a"}}) == "a"
    assert pe.pod_service_account({"spec": {"serviceAccount": "b"}}) == "b"
    assert pe.pod_service_account({"spec": {}}) == "default"


# --------------------------------------------------------------------------- bypass pods


def test_bypass_pod_body() -> None:
    body = pe.bypass_pod_body("meshguard-bypass-00", IMAGE, 300)
    assert body == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "meshguard-bypass-00",
            "labels": {
                "sidecar.istio.io/inject": "false",
                "meshguard.io/created-by": "meshguard.egress.egress_probe",
            },
            "annotations": {"sidecar.istio.io/inject": "false"},
        },
        "spec": {
            "containers": [
                {
                    "name": "probe",
                    "image": IMAGE,
                    "command": ["sleep", "300"],
                    "imagePullPolicy": "IfNotPresent",
                }
            ],
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": 0,
            "activeDeadlineSeconds": 300,
        },
    }


def test_a_bypass_source_probes_from_its_own_pod_and_deletes_it(cluster: dict[str, Any]) -> None:
    core = cluster["core"]
    probes = [
        probe_params({"bypass_image": IMAGE}, name="a"),
        probe_params({"bypass_image": IMAGE}, name="b"),
        probe_params({"namespace": "shop", "bypass_image": IMAGE}, name="c"),
    ]
    results, bypass = run(FakeModule(probes))
    assert [r["outcome"] for r in results] == ["unreachable"] * 3
    assert [r["source"] for r in results] == [f"bookinfo/(bypass {IMAGE})"] * 2 + [
        f"shop/(bypass {IMAGE})"
    ]
    # one pod per namespace and image; probed through exec in its container; then deleted
    names = [body["metadata"]["name"] for body in core.created]
    assert len(names) == 2 and all(n.startswith("meshguard-bypass-") for n in names)
    assert len(pe.BYPASS_POD_PREFIX + "0" * 8) == len(names[0])
    assert cluster["execs"] == [("bookinfo", names[0], "probe"), ("shop", names[1], "probe")]
    assert bypass == [
        {"namespace": "bookinfo", "name": names[0], "deleted": True},
        {"namespace": "shop", "name": names[1], "deleted": True},
    ]
    assert [c for c in core.calls if c[0] == "delete"] == [
        ("delete", "bookinfo", names[0]),
        ("delete", "shop", names[1]),
    ]
    assert core.pods == {}
    # the pod lives for the whole run: waiting, retry rounds, the last script, a margin
    lifetime = core.created[0]["spec"]["activeDeadlineSeconds"]
    assert lifetime == 5 * 2 + 0 + 0 + (5 + 3 + 15) + 60  # two pod sources to wait for
    # both pods are created before the first wait (they start together)
    creates = [i for i, c in enumerate(core.calls) if c[0] == "create"]
    reads = [i for i, c in enumerate(core.calls) if c[0] == "read"]
    assert max(creates) < min(reads), core.calls
    assert core.created[0]["spec"]["containers"][0]["command"] == ["sleep", str(lifetime)]


def test_a_bypass_pod_that_never_runs_is_an_error_and_still_deleted(
    cluster: dict[str, Any],
) -> None:
    core = cluster["core"]
    core.bypass_phase = "Failed"
    [result], bypass = run(FakeModule([probe_params({"bypass_image": IMAGE})]))
    assert result["outcome"] == "error"
    assert result["detail"].startswith("bypass pod bookinfo/meshguard-bypass-")
    assert "ended (Failed) before it ran" in result["detail"]
    assert cluster["execs"] == []
    assert [b["deleted"] for b in bypass] == [True] and core.pods == {}


def test_a_bypass_pod_is_deleted_when_the_run_raises(
    cluster: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    core = cluster["core"]

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("killed")

    monkeypatch.setattr(ep, "run_until_held", boom)
    with pytest.raises(RuntimeError, match="killed"):
        run(FakeModule([probe_params({"bypass_image": IMAGE})]))
    assert len(core.created) == 1 and core.pods == {}


def test_a_bypass_pod_that_cannot_be_deleted_is_a_warning(cluster: dict[str, Any]) -> None:
    core = cluster["core"]
    core.delete_error = [ApiError(403, "Forbidden")]
    module = FakeModule([probe_params({"bypass_image": IMAGE})])
    _results, bypass = run(module)
    [name] = [body["metadata"]["name"] for body in core.created]
    assert bypass == [{"namespace": "bookinfo", "name": name, "deleted": False}]
    assert module.warnings == [f"cannot delete the bypass pod bookinfo/{name}: 403 Forbidden"]
    core.delete_error = [ApiError(404, "Not Found")]  # gone already: deleted
    assert pe.delete_bypass_pod(core, "bookinfo", name) is None


def test_a_bypass_pod_that_cannot_be_created_is_an_error(cluster: dict[str, Any]) -> None:
    core = cluster["core"]

    def forbidden(namespace: str, body: dict[str, Any]) -> None:
        raise ApiError(403, "Forbidden")

    core.create_namespaced_pod = forbidden
    [result], bypass = run(FakeModule([probe_params({"bypass_image": IMAGE})]))
    assert result["outcome"] == "error" and bypass == []
    assert result["detail"].startswith("cannot create the bypass pod bookinfo/meshguard-bypass-")
    assert result["detail"].endswith(": 403 Forbidden")


class PodStatusReads:
    """``read_namespaced_pod`` answering one pod status, at most ``max_reads`` times: a wait
    that goes on longer fails the test instead of hanging it."""

    def __init__(self, status: dict[str, Any], max_reads: int) -> None:
        self.status, self.max_reads, self.reads = status, max_reads, 0

    def read_namespaced_pod(self, name: str, namespace: str) -> dict[str, Any]:
        self.reads += 1
        assert self.reads <= self.max_reads, "the wait went on longer than it should"
        return {"metadata": {"name": name}, "status": self.status}


def test_waiting_for_a_bypass_pod_is_bounded_and_names_the_cause(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def real_sleep(seconds: float) -> None:
        raise AssertionError("slept for real although a sleep was given")

    monkeypatch.setattr(pe.time, "sleep", real_sleep)

    waiting = {"reason": "ErrImagePull", "message": "pull access denied"}
    pending = PodStatusReads(
        {"phase": "Pending", "container_statuses": [{"state": {"waiting": waiting}}]}, 20
    )

    now = [0.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    with pytest.raises(pe.PodSourceError) as caught:
        pe.wait_for_bypass_pod(pending, "ns", "b", 3, sleep=sleep, clock=lambda: now[0])
    assert str(caught.value) == (
        "bypass pod ns/b not running after 3s (ErrImagePull: pull access denied)"
    )
    assert sleeps[:4] == [0.1, 0.2, 0.4, 0.8] and max(sleeps) == 1.0
    assert sum(sleeps) == pytest.approx(3.0)


def test_check_mode_creates_no_bypass_pod(cluster: dict[str, Any]) -> None:
    core = cluster["core"]
    core.pods[("bookinfo", "pp-1")] = app_pod("pp-1", "pp")
    probes = [
        probe_params({"bypass_image": IMAGE}, name="bypass"),
        probe_params({"pod": "pp-1", "service_account": "pp"}, name="pod"),
    ]
    results, bypass = run(FakeModule(probes, check_mode=True))
    assert core.created == [] and bypass == []
    skipped, proven = results
    reason = (
        f"check mode: the probes from bookinfo/(bypass {IMAGE}) need a temporary pod "
        f"(bypass_image {IMAGE}), which check mode does not create"
    )
    assert (skipped["outcome"], skipped["held"], skipped["attempts"]) == ("not_run", False, 0)
    assert skipped["not_proven"] == skipped["detail"] == reason
    assert (proven["outcome"], proven["held"], proven["not_proven"]) == ("unreachable", True, None)
    summary = p.summarize(results)
    assert (summary["held"], summary["not_proven"], summary["failed"]) == (1, 1, 0)


def test_bypass_image_excludes_the_pod_options() -> None:
    source = ep.PROBE_SPEC["source"]
    assert ["bypass_image", "pod"] in source["mutually_exclusive"]
    assert ["bypass_image", "label_selector"] in source["mutually_exclusive"]
    assert ["bypass_image", "debug_image"] in source["mutually_exclusive"]
    assert ["bypass_image", "service_account"] in source["mutually_exclusive"]


# --------------------------------------------------------------------------- not proven


def test_a_not_proven_probe_runs_once_and_neither_holds_nor_fails(
    cluster: dict[str, Any],
) -> None:
    cluster["core"].pods[("bookinfo", "pp-1")] = app_pod("pp-1", "pp")
    module = FakeModule(
        [
            probe_params({"pod": "pp-1"}, name="np", not_proven="no enforcer"),
            probe_params({"pod": "pp-1"}, name="np-wrong", expect="allowed", not_proven="x"),
        ]
    )
    module.params.update(deadline=30, retry_delay=0)
    results, _bypass = run(module)
    assert [(r["outcome"], r["held"], r["attempts"]) for r in results] == [
        ("unreachable", False, 1),
        ("unreachable", False, 1),
    ]
    assert [r["not_proven"] for r in results] == ["no enforcer", "x"]
    assert len(cluster["execs"]) == 1  # never retried, although "np-wrong" did not hold
    summary = p.summarize(results)
    assert (summary["total"], summary["held"], summary["not_proven"], summary["failed"]) == (
        2,
        0,
        2,
        0,
    )
    assert p.mismatch_table(results).count("\n") == 1  # header and rule only


def test_a_refused_creation_carries_the_api_servers_message() -> None:
    class Refused(ApiError):
        body = '{"message": "error looking up service account shop/default"}'

    class Core:
        def create_namespaced_pod(self, namespace: str, body: dict[str, Any]) -> None:
            raise Refused(403, "Forbidden")

    with pytest.raises(pe.PodSourceError) as caught:
        pe.create_bypass_pod(Core(), "shop", IMAGE, 60)
    assert str(caught.value).endswith(
        ": 403 Forbidden: error looking up service account shop/default"
    )


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (None, "403 Forbidden"),
        ("", "403 Forbidden"),
        ("not json", "403 Forbidden"),
        ("[1, 2]", "403 Forbidden"),
        ('{"reason": "Forbidden"}', "403 Forbidden"),
        ('{"message": ""}', "403 Forbidden"),
        ('{"message": "pods is forbidden"}', "403 Forbidden: pods is forbidden"),
    ],
    ids=["none", "empty", "not-json", "not-an-object", "no-message", "empty-message", "message"],
)
def test_a_refused_creation_names_the_message_only_when_there_is_one(
    body: str | None, detail: str
) -> None:
    class Refused(ApiError):
        pass

    error = Refused(403, "Forbidden")
    error.body = body  # type: ignore[attr-defined]

    class Core:
        def create_namespaced_pod(self, namespace: str, body: dict[str, Any]) -> None:
            raise error

    with pytest.raises(pe.PodSourceError) as caught:
        pe.create_bypass_pod(Core(), "shop", IMAGE, 60)
    assert str(caught.value).split(": ", 1)[1] == detail


def test_a_refusal_without_a_body_attribute() -> None:
    class Core:
        def create_namespaced_pod(self, namespace: str, body: dict[str, Any]) -> None:
            raise ApiError(403, "Forbidden")

    with pytest.raises(pe.PodSourceError) as caught:
        pe.create_bypass_pod(Core(), "shop", IMAGE, 60)
    assert str(caught.value).endswith(": 403 Forbidden")


@pytest.mark.parametrize(
    ("spec", "account"),
    [
        ({"serviceAccountName": "a", "serviceAccount": "old"}, "a"),
        ({"service_account_name": "b"}, "b"),
        ({"serviceAccount": "c"}, "c"),
        ({"service_account": "d"}, "d"),
        ({"serviceAccountName": "", "service_account": "e"}, "e"),
        ({}, "default"),
    ],
    ids=["api", "client-object", "deprecated-api", "deprecated-client-object", "blank", "unset"],
)
def test_the_service_account_of_each_spelling(spec: dict[str, Any], account: str) -> None:
    assert pe.pod_service_account({"spec": spec}) == account
    assert pe.pod_service_account({}) == "default"


def test_a_pod_not_running_in_time_names_every_waiting_container() -> None:
    pending = PodStatusReads(
        {
            "phase": "Pending",
            "containerStatuses": [  # the API's own spelling (a dict, not a client object)
                {"state": {"waiting": {"reason": "ContainerCreating"}}},
                {"state": {"running": {}}},
                {"state": {"waiting": {"reason": "ErrImagePull", "message": "denied"}}},
            ],
        },
        1,  # timeout 0: one read, then the report
    )
    with pytest.raises(pe.PodSourceError) as caught:
        pe.wait_for_bypass_pod(pending, "ns", "b", 0, sleep=lambda s: None, clock=lambda: 5.0)
    assert str(caught.value) == (
        "bypass pod ns/b not running after 0s (ContainerCreating; ErrImagePull: denied)"
    )


def test_a_pod_not_running_in_time_without_a_waiting_reason_names_its_phase() -> None:
    pending = PodStatusReads({"phase": "Pending"}, 1)  # timeout 0: one read, then the report
    with pytest.raises(pe.PodSourceError) as caught:
        pe.wait_for_bypass_pod(pending, "ns", "b", 0, sleep=lambda s: None, clock=lambda: 5.0)
    assert str(caught.value) == "bypass pod ns/b not running after 0s (phase Pending)"


@pytest.mark.parametrize(
    ("status", "cause"),
    [
        ({"phase": "Failed", "message": "Pod was active too long"}, "Pod was active too long"),
        (
            {
                "phase": "Failed",
                "containerStatuses": [{"state": {"waiting": {"reason": "ErrImageNeverPull"}}}],
            },
            "ErrImageNeverPull",
        ),
        ({"phase": "Succeeded"}, "no cause"),
    ],
    ids=["status-message", "waiting-reason", "no-cause"],
)
def test_a_bypass_pod_that_ends_before_it_runs_names_why(
    status: dict[str, Any], cause: str
) -> None:
    ended = PodStatusReads(status, 1)  # ended at the first read: a second means it was missed
    with pytest.raises(pe.PodSourceError) as caught:
        pe.wait_for_bypass_pod(ended, "ns", "b", 30, sleep=lambda s: None, clock=lambda: 0.0)
    assert str(caught.value) == f"bypass pod ns/b ended ({status['phase']}) before it ran: {cause}"


def test_a_bypass_pod_is_created_from_its_body() -> None:
    created: list[tuple[str, dict[str, Any]]] = []

    class Core:
        def create_namespaced_pod(self, namespace: str, body: dict[str, Any]) -> None:
            created.append((namespace, body))

    name = pe.create_bypass_pod(Core(), "shop", IMAGE, 90)
    assert name.startswith("meshguard-bypass-") and len(name) == len("meshguard-bypass-") + 8
    assert created == [("shop", pe.bypass_pod_body(name, IMAGE, 90))]
    assert pe.create_bypass_pod(Core(), "shop", IMAGE, 90) != name  # a fresh name each time


def test_a_delete_that_fails_without_an_api_status() -> None:
    class Core:
        def delete_namespaced_pod(self, name: str, namespace: str, **kw: Any) -> None:
            raise ConnectionError("connection refused")

    assert pe.delete_bypass_pod(Core(), "shop", "meshguard-bypass-1") == (
        "cannot delete the bypass pod shop/meshguard-bypass-1: connection refused"
    )
