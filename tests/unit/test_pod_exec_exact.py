"""Exact results of the pod exec channel, the pod lookup and the debug container, one
factor at a time. The Kubernetes client is replaced by small stand-ins here; the same calls
against the real API server are in tests/integration/test_pod_lookup_api.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / ".venv" / "collections"))
from ansible_collections.meshguard.egress.plugins.module_utils import _pod_exec as pe
from ansible_collections.meshguard.egress.plugins.module_utils import _probe as p


class Stream:
    """A WSClient stand-in that hands out queued stdout/stderr chunks, one per update."""

    def __init__(
        self,
        chunks: list[tuple[str, str]],
        status: Any = "",
        fail_after: int | None = None,
    ) -> None:
        self.chunks, self.status, self.fail_after = list(chunks), status, fail_after
        self.current: tuple[str, str] = ("", "")
        self.updates: list[Any] = []
        self.closed = False

    def is_open(self) -> bool:
        return not self.closed and bool(self.chunks)

    def update(self, timeout: Any) -> None:
        self.updates.append(timeout)
        if self.fail_after is not None and len(self.updates) > self.fail_after:
            raise ConnectionResetError("peer reset")
        self.current = self.chunks.pop(0)

    def peek_stdout(self) -> bool:
        return bool(self.current[0])

    def read_stdout(self) -> str:
        return self.current[0]

    def peek_stderr(self) -> bool:
        return bool(self.current[1])

    def read_stderr(self) -> str:
        return self.current[1]

    def read_channel(self, channel: int) -> str:
        assert channel == 3
        return self.status if isinstance(self.status, str) else json.dumps(self.status)

    def close(self) -> None:
        self.closed = True


SUCCESS = {"status": "Success"}


def test_stream_collects_stdout_and_stderr_in_order() -> None:
    resp = Stream([("a", ""), ("", "e1"), ("b", "e2")], SUCCESS)
    result = pe.read_exec_stream(resp, 60)
    assert (result.stdout, result.stderr, result.rc, result.error) == ("ab", "e1e2", 0, None)
    assert resp.updates == [1, 1, 1] and not resp.closed


@pytest.mark.parametrize(
    ("status", "rc", "error"),
    [
        (SUCCESS, 0, None),
        (
            {"status": "Failure", "details": {"causes": [{"reason": "ExitCode", "message": "3"}]}},
            3,
            None,
        ),
        (
            {
                "status": "Failure",
                "details": {
                    "causes": [{"reason": "Other"}, {"reason": "ExitCode", "message": "9"}]
                },
            },
            9,
            None,
        ),
        ({"status": "Failure", "details": {"causes": [{"reason": "ExitCode"}]}}, -1, None),
        ({"status": "Failure", "message": "container not found"}, None, "container not found"),
        ({"status": "Failure"}, None, "exec failed"),
        ({"status": "Failure", "details": None}, None, "exec failed"),
        ("", None, "exec ended without a status"),
        ("[1]", None, "exec ended without a status"),
        ("not json \n", None, "not json"),
        (
            {"status": "Failure", "message": 'exec: "/bin/sh": executable file not found in $PATH'},
            None,
            '/bin/sh not found in the container: exec: "/bin/sh": executable file not found '
            "in $PATH",
        ),
    ],
)
def test_status_channel(status: Any, rc: int | None, error: str | None) -> None:
    result = pe.read_exec_stream(Stream([("out", "err")], status), 60)
    assert (result.stdout, result.stderr, result.rc, result.error) == ("out", "err", rc, error)


def test_timeout_returns_what_was_read_so_far() -> None:
    resp = Stream([("a", "x"), ("b", "y"), ("c", "z")], SUCCESS)
    ticks = iter([0.0, 0.5, 1.0, 1.5])  # start, then one tick per loop
    result = pe.read_exec_stream(resp, timeout=1.0, clock=lambda: next(ticks))
    assert resp.closed
    assert (result.stdout, result.stderr, result.rc) == ("ab", "xy", None)
    assert result.error == "exec timed out after 1s"


def test_stream_error_keeps_stdout() -> None:
    resp = Stream([("a", "x"), ("b", "y"), ("c", "z")], SUCCESS, fail_after=2)
    result = pe.read_exec_stream(resp, 60)
    assert (result.stdout, result.rc, result.error) == (
        "ab",
        None,
        "exec stream failed: peer reset",
    )


class Core:
    """A CoreV1Api stand-in: pods by name, a list result, recorded patches."""

    def __init__(self, pods: list[dict[str, Any]] | None = None, reads: list[Any] | None = None):
        self.pods = pods or []
        self.reads = list(reads or [])
        self.calls: list[tuple[str, tuple, dict]] = []

    def connect_get_namespaced_pod_exec(self, *a: Any, **kw: Any) -> None:
        raise AssertionError("called through stream only")

    def read_namespaced_pod(self, name: str, namespace: str) -> Any:
        self.calls.append(("read", (name, namespace), {}))
        if self.reads:
            answer = self.reads.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer
        return next(pod for pod in self.pods if pod["metadata"]["name"] == name)

    def list_namespaced_pod(self, namespace: str, label_selector: str | None = None) -> Any:
        self.calls.append(("list", (namespace,), {"label_selector": label_selector}))

        class Listed:
            items = self.pods

        return Listed()

    def patch_namespaced_pod_ephemeralcontainers(self, *args: Any, **kwargs: Any) -> None:
        self.calls.append(("patch", args, kwargs))


class ApiError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"({status}) {reason}")
        self.status, self.reason = status, reason


def pod(name: str, phase: str = "Running", containers: tuple[str, ...] = ("app",), **status: Any):
    return {
        "metadata": {"name": name, "namespace": "ns"},
        "spec": {"containers": [{"name": c} for c in containers]},
        "status": {"phase": phase, **status},
    }


def test_exec_runner_passes_every_argument() -> None:
    seen: list[tuple[tuple, dict]] = []
    core = Core()

    def stream(*args: Any, **kwargs: Any) -> Stream:
        seen.append((args, kwargs))
        return Stream([("o", "")], SUCCESS)

    result = pe.make_exec_runner(core, stream, "ns", "pod-1", None)("echo hi", 10)
    assert result == p.ScriptResult(stdout="o", stderr="", rc=0, error=None)
    ((args, kwargs),) = seen
    assert args == (core.connect_get_namespaced_pod_exec, "pod-1", "ns")
    assert kwargs == {
        "command": ["/bin/sh", "-c", "echo hi"],
        "stdout": True,
        "stderr": True,
        "stdin": False,
        "tty": False,
        "_preload_content": False,
    }


def test_exec_runner_names_the_container_and_prefixes_errors() -> None:
    seen: list[dict] = []

    def stream(*args: Any, **kwargs: Any) -> Stream:
        seen.append(kwargs)
        return Stream([("o", "")], {"status": "Failure", "message": "boom"})

    result = pe.make_exec_runner(Core(), stream, "ns", "pod-1", "curl")("s", 10)
    assert seen[0]["container"] == "curl"
    assert (result.stdout, result.rc, result.error) == ("o", None, "ns/pod-1 container curl: boom")


@pytest.mark.parametrize(
    ("exc", "error"),
    [
        (ApiError(403, "Forbidden"), "exec into ns/p failed: 403 Forbidden"),
        (ConnectionRefusedError("refused"), "exec into ns/p failed: refused"),
    ],
)
def test_exec_runner_when_the_exec_cannot_start(exc: Exception, error: str) -> None:
    def stream(*args: Any, **kwargs: Any) -> None:
        raise exc

    result = pe.make_exec_runner(Core(), stream, "ns", "p", None)("s", 10)
    assert (result.stdout, result.rc, result.error) == ("", None, error)


# --------------------------------------------------------------------------- pod lookup


def test_find_pod_by_name_reads_that_pod() -> None:
    core = Core([pod("a", "Pending"), pod("b")])
    found = pe.find_pod(core, pe.PodSource(namespace="ns", name="a"))
    assert found["metadata"]["name"] == "a"  # a named pod is used whatever its phase
    assert core.calls == [("read", ("a", "ns"), {})]


def test_find_pod_by_name_converts_client_objects() -> None:
    class Model:
        def to_dict(self) -> dict[str, Any]:
            return pod("m")

    core = Core(reads=[Model()])
    assert pe.find_pod(core, pe.PodSource(namespace="ns", name="m")) == pod("m")


def test_find_pod_by_name_that_does_not_exist() -> None:
    core = Core(reads=[ApiError(404, "Not Found")])
    with pytest.raises(pe.PodSourceError) as caught:
        pe.find_pod(core, pe.PodSource(namespace="ns", name="gone"))
    assert str(caught.value) == "pod ns/gone: 404 Not Found"


def test_find_pod_by_selector_takes_the_first_running_pod_by_name() -> None:
    core = Core([pod("c"), pod("a", "Pending"), pod("b"), pod("d", "Succeeded")])
    found = pe.find_pod(core, pe.PodSource(namespace="ns", label_selector="app=x"))
    assert found["metadata"]["name"] == "b"
    assert core.calls == [("list", ("ns",), {"label_selector": "app=x"})]


def test_find_pod_by_selector_without_running_pods() -> None:
    core = Core([pod("a", "Pending"), {"metadata": {"name": "b", "namespace": "ns"}}])
    with pytest.raises(pe.PodSourceError) as caught:
        pe.find_pod(core, pe.PodSource(namespace="ns", label_selector="app=x"))
    assert str(caught.value) == (
        "no running pod in namespace ns matches 'app=x' (2 pods match, none running)"
    )


def test_check_container() -> None:
    pe.check_container(pod("a", containers=("app", "istio-proxy")), "istio-proxy")
    pe.check_container(pod("a"), None)
    pe.check_container({"metadata": {"name": "a", "namespace": "ns"}}, None)
    with pytest.raises(pe.PodSourceError) as caught:
        pe.check_container(pod("a", containers=("app", "istio-proxy")), "curl")
    assert str(caught.value) == "pod ns/a has no container 'curl' (containers: app, istio-proxy)"
    with pytest.raises(pe.PodSourceError) as caught:
        pe.check_container({"metadata": {"name": "a", "namespace": "ns"}, "spec": {}}, "curl")
    assert str(caught.value) == "pod ns/a has no container 'curl' (containers: )"


def test_source_keys() -> None:
    assert pe.PodSource(namespace="ns", name="p").key == "ns/p"
    assert pe.PodSource(namespace="ns", label_selector="app=x", container="c").key == (
        "ns/[app=x]/c"
    )
    assert pe.PodSource(namespace="ns", name="p", debug_image="curl:8").key == "ns/p (debug curl:8)"


# --------------------------------------------------------------------------- debug container


def test_debug_container_spec_exactly() -> None:
    assert pe.debug_container_spec("meshguard-probe-1", "curlimages/curl:8", None) == {
        "name": "meshguard-probe-1",
        "image": "curlimages/curl:8",
        "command": ["sleep", "3600"],
        "imagePullPolicy": "IfNotPresent",
        "stdin": False,
        "tty": False,
        "terminationMessagePolicy": "File",
    }
    spec = pe.debug_container_spec("n", "i", "app")
    assert spec["targetContainerName"] == "app"


@pytest.mark.parametrize(
    ("minor", "patch_kind"),
    [(20, "json"), (21, "json"), (22, "strategic"), (23, "strategic"), (30, "strategic")],
)
def test_ephemeral_container_api_boundary(minor: int, patch_kind: str) -> None:
    container = {"name": "c"}
    request = pe.ephemeral_request(minor, container)
    if patch_kind == "json":
        assert request == {
            "content_type": "application/json-patch+json",
            "body": [{"op": "add", "path": "/ephemeralContainers/-", "value": container}],
        }
    else:
        assert request == {
            "content_type": "application/strategic-merge-patch+json",
            "body": {"spec": {"ephemeralContainers": [container]}},
        }


@pytest.mark.parametrize(
    ("minor", "value"), [("20+", 20), ("22", 22), ("", 0), (None, 0), ("x1", 0), ("7", 7)]
)
def test_server_minor(minor: Any, value: int) -> None:
    class Version:
        pass

    version = Version()
    version.minor = minor  # type: ignore[attr-defined]
    assert pe.server_minor(version) == value
    assert pe.server_minor(object()) == 0


def test_add_debug_container_patch_call() -> None:
    core = Core()
    name = pe.add_debug_container(core, 23, pod("p"), "curl:8", None)
    assert name.startswith("meshguard-probe-") and len(name) == len("meshguard-probe-") + 6
    int(name.removeprefix("meshguard-probe-"), 16)
    ((kind, args, kwargs),) = core.calls
    assert kind == "patch" and args[:2] == ("p", "ns")
    assert args[2] == {
        "spec": {"ephemeralContainers": [pe.debug_container_spec(name, "curl:8", None)]}
    }
    assert kwargs == {
        "_content_type": "application/strategic-merge-patch+json",
        "_preload_content": False,
    }
    assert pe.add_debug_container(Core(), 23, pod("p"), "curl:8", None) != name


@pytest.mark.parametrize(
    ("exc", "message"),
    [
        (
            ApiError(404, "Not Found"),
            "cannot add a debug container to ns/p: 404 Not Found (ephemeral containers are "
            "alpha before Kubernetes 1.23: enable the EphemeralContainers feature gate on the "
            "API server and kubelets)",
        ),
        (ApiError(403, "Forbidden"), "cannot add a debug container to ns/p: 403 Forbidden"),
        (RuntimeError("socket closed"), "cannot add a debug container to ns/p: socket closed"),
    ],
)
def test_add_debug_container_errors(exc: Exception, message: str) -> None:
    class Failing(Core):
        def patch_namespaced_pod_ephemeralcontainers(self, *a: Any, **kw: Any) -> None:
            raise exc

    with pytest.raises(pe.PodSourceError) as caught:
        pe.add_debug_container(Failing(), 20, pod("p"), "curl:8", None)
    assert str(caught.value) == message and caught.value.__cause__ is exc


def eph(name: str, image: str = "curl:8", state: str = "running") -> dict[str, Any]:
    return {"name": name, "image": image, "state": {state: {"startedAt": "2026-01-01T00:00:00Z"}}}


@pytest.mark.parametrize("key", ["ephemeral_container_statuses", "ephemeralContainerStatuses"])
def test_debug_container_running_reads_either_spelling(key: str) -> None:
    statuses = [
        eph("other-1"),
        eph("meshguard-probe-aaa", state="waiting"),
        eph("meshguard-probe-bbb", image="busybox"),
        eph("meshguard-probe-ccc"),
        eph("meshguard-probe-ddd"),
    ]
    assert (
        pe._debug_container_running(pod("p", **{key: statuses}), "curl:8") == "meshguard-probe-ccc"
    )
    assert pe._debug_container_running(pod("p", **{key: statuses[:3]}), "curl:8") is None
    assert pe._debug_container_running(pod("p"), "curl:8") is None
    assert pe._debug_container_running({"metadata": {}}, "curl:8") is None


class Clock:
    def __init__(self) -> None:
        self.now, self.sleeps = 0.0, []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_wait_for_debug_container_polls_until_it_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    monkeypatch.setattr(pe.time, "monotonic", clock.monotonic)
    waiting = pod("p", ephemeralContainerStatuses=[eph("meshguard-probe-1", state="waiting")])
    running = pod("p", ephemeralContainerStatuses=[eph("meshguard-probe-1")])
    core = Core(reads=[waiting, waiting, running])
    pe.wait_for_debug_container(core, pod("p"), "meshguard-probe-1", "curl:8", 30, clock.sleep)
    assert clock.sleeps == [1, 1], "the wait does not return before the container runs"
    assert core.calls == [("read", ("p", "ns"), {})] * 3


def test_wait_for_debug_container_gives_up_at_the_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    monkeypatch.setattr(pe.time, "monotonic", clock.monotonic)
    other = pod("p", ephemeralContainerStatuses=[eph("meshguard-probe-2")])
    core = Core(reads=[other] * 10)
    with pytest.raises(pe.PodSourceError) as caught:
        pe.wait_for_debug_container(core, pod("p"), "meshguard-probe-1", "curl:8", 3, clock.sleep)
    assert str(caught.value) == "debug container meshguard-probe-1 in ns/p not running after 3s"
    assert clock.sleeps == [1, 1, 1] and len(core.calls) == 3


def test_prepare_source_without_debug_image_execs_into_the_pod() -> None:
    core, seen = Core([pod("p", containers=("app", "istio-proxy"))]), []

    def stream(*args: Any, **kwargs: Any) -> Stream:
        seen.append((args, kwargs))
        return Stream([("o", "")], SUCCESS)

    runner = pe.prepare_source(
        core, None, stream, pe.PodSource(namespace="ns", name="p", container="app")
    )
    assert runner("s", 5).stdout == "o"
    assert seen[0][0][1:] == ("p", "ns") and seen[0][1]["container"] == "app"
    assert [c[0] for c in core.calls] == ["read"]


def test_prepare_source_checks_the_container() -> None:
    with pytest.raises(pe.PodSourceError, match="has no container 'curl'"):
        pe.prepare_source(
            Core([pod("p")]), None, None, pe.PodSource(namespace="ns", name="p", container="curl")
        )


def test_prepare_source_reuses_a_running_debug_container() -> None:
    ready = pod("p", ephemeralContainerStatuses=[eph("meshguard-probe-9")])
    core, seen = Core([ready]), []

    def stream(*args: Any, **kwargs: Any) -> Stream:
        seen.append(kwargs)
        return Stream([("o", "")], SUCCESS)

    source = pe.PodSource(namespace="ns", name="p", debug_image="curl:8")
    pe.prepare_source(core, None, stream, source)("s", 5)
    assert seen[0]["container"] == "meshguard-probe-9"
    assert [c[0] for c in core.calls] == ["read"], "no patch when one already runs"


def test_prepare_source_adds_and_waits_for_a_debug_container(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock()
    monkeypatch.setattr(pe.time, "monotonic", clock.monotonic)
    monkeypatch.setattr(pe.time, "sleep", clock.sleep)
    monkeypatch.setattr(pe.secrets, "token_hex", lambda n: "abc123")
    name = "meshguard-probe-abc123"
    running = pod("p", ephemeralContainerStatuses=[eph(name)])
    core = Core(reads=[pod("p"), pod("p"), running])

    class VersionApi:
        def get_code(self) -> Any:
            class Info:
                minor = "21"

            return Info()

    seen: list[dict] = []

    def stream(*args: Any, **kwargs: Any) -> Stream:
        seen.append(kwargs)
        return Stream([("o", "")], SUCCESS)

    source = pe.PodSource(namespace="ns", name="p", container="app", debug_image="curl:8")
    runner = pe.prepare_source(core, VersionApi(), stream, source, debug_timeout=10)
    assert [c[0] for c in core.calls] == ["read", "patch", "read", "read"]
    patch = core.calls[1]
    assert patch[2]["_content_type"] == "application/json-patch+json"
    assert patch[1][2][0]["value"] == pe.debug_container_spec(name, "curl:8", "app")
    assert clock.sleeps == [1]
    runner("s", 5)
    assert seen[0]["container"] == name


@pytest.mark.parametrize(("minor", "content_type"), [("22", "strategic-merge"), ("21+", "json")])
def test_prepare_source_asks_the_server_version(
    monkeypatch: pytest.MonkeyPatch, minor: str, content_type: str
) -> None:
    name = "meshguard-probe-abc123"
    monkeypatch.setattr(pe.secrets, "token_hex", lambda n: "abc123")
    core = Core(reads=[pod("p"), pod("p", ephemeralContainerStatuses=[eph(name)])])

    class VersionApi:
        def get_code(self) -> Any:
            class Info:
                pass

            info = Info()
            info.minor = minor  # type: ignore[attr-defined]
            return info

    source = pe.PodSource(namespace="ns", name="p", debug_image="curl:8")
    pe.prepare_source(core, VersionApi(), None, source)
    assert core.calls[1][2]["_content_type"] == f"application/{content_type}-patch+json"


def test_prepare_source_debug_timeout_is_passed_on(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    monkeypatch.setattr(pe.time, "monotonic", clock.monotonic)
    monkeypatch.setattr(pe.time, "sleep", clock.sleep)

    class VersionApi:
        def get_code(self) -> Any:
            class Info:
                minor = "25"

            return Info()

    core = Core(reads=[pod("p")] * 20)
    source = pe.PodSource(namespace="ns", name="p", debug_image="curl:8")
    with pytest.raises(pe.PodSourceError, match=r"not running after 4s$"):
        pe.prepare_source(core, VersionApi(), None, source, debug_timeout=4)
    assert clock.sleeps == [1, 1, 1, 1]
    with pytest.raises(pe.PodSourceError, match=r"not running after 60s$"):
        pe.prepare_source(Core(reads=[pod("p")] * 70), VersionApi(), None, source)
