"""Unit tests of the pod exec channel with a fake stream (no kubelet runs here)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / ".venv" / "collections"))
from ansible_collections.meshguard.egress.plugins.module_utils import _pod_exec as pe
from ansible_collections.meshguard.egress.plugins.module_utils import _probe as p


class FakeStream:
    """Quacks like kubernetes.stream.ws_client.WSClient."""

    def __init__(
        self,
        stdout: list[str],
        status: dict | str | None,
        hang: bool = False,
        fail: Exception | None = None,
    ) -> None:
        self.stdout, self.status, self.hang, self.fail = list(stdout), status, hang, fail
        self.closed = False

    def is_open(self) -> bool:
        return not self.closed and (self.hang or bool(self.stdout))

    def update(self, timeout: float) -> None:
        if self.fail:
            raise self.fail

    def peek_stdout(self) -> bool:
        return bool(self.stdout)

    def read_stdout(self) -> str:
        return self.stdout.pop(0)

    def peek_stderr(self) -> bool:
        return False

    def read_channel(self, channel: int) -> str:
        assert channel == 3
        return self.status if isinstance(self.status, str) else json.dumps(self.status or {})

    def close(self) -> None:
        self.closed = True


class FakeCore:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def connect_get_namespaced_pod_exec(self, *a: Any, **kw: Any) -> None:
        raise AssertionError("called through stream only")

    def patch_namespaced_pod_ephemeralcontainers(self, *args: Any, **kwargs: Any) -> None:
        self.calls.append((args, kwargs))


def recording_stream(resp: Any, seen: list[dict]):
    def stream(fn: Any, pod: str, namespace: str, **kwargs: Any) -> Any:
        seen.append({"fn": fn, "pod": pod, "namespace": namespace, **kwargs})
        if isinstance(resp, Exception):
            raise resp
        return resp

    return stream


def test_one_exec_runs_the_whole_batch_and_output_is_parsed() -> None:
    core, seen = FakeCore(), []
    probes = [
        p.Probe("a", "http://httpbin.org/get", "allowed"),
        p.Probe("b", "http://x/", "blocked"),
    ]

    def stream(fn: Any, pod: str, namespace: str, **kwargs: Any) -> Any:
        seen.append({"pod": pod, "namespace": namespace, **kwargs})
        marker = kwargs["command"][2].split("\n", 1)[0].split("=", 1)[1].strip("'")
        out = "".join(
            f"{marker} BEGIN {i}\n{marker} EXIT 0\n{marker} WRITE {code} 0.1 0.01\n{marker} STDERR"
            f"\n\n{marker} HEADERS\nHTTP/1.1 {code} X\r\nserver: envoy\r\n\r\n\n{marker} BODY\n"
            f"\n{marker} END {i}\n"
            for i, code in enumerate((200, 502))
        )
        return FakeStream([out[:50], out[50:]], {"status": "Success"})

    runner = pe.make_exec_runner(core, stream, "bookinfo", "productpage-1", "curl")
    verdicts = p.run_batch(probes, runner)
    assert [v.outcome for v in verdicts] == ["allowed", "blocked"]
    assert len(seen) == 1 and seen[0]["command"][:2] == ["/bin/sh", "-c"]
    assert seen[0]["container"] == "curl" and seen[0]["_preload_content"] is False
    assert seen[0]["stdin"] is False and seen[0]["tty"] is False


def test_nonzero_exit_code_is_read_from_the_status_channel() -> None:
    status = {
        "status": "Failure",
        "details": {"causes": [{"reason": "ExitCode", "message": "127"}]},
    }
    run = pe.make_exec_runner(
        FakeCore(), recording_stream(FakeStream(["x"], status), []), "ns", "pod", None
    )
    result = run("script", 10)
    assert result.rc == 127 and result.error is None and result.stdout == "x"


def test_missing_shell_is_a_clear_error() -> None:
    status = {"status": "Failure", "message": 'exec: "/bin/sh": executable file not found'}
    result = pe.make_exec_runner(
        FakeCore(), recording_stream(FakeStream([], status), []), "ns", "pod", "app"
    )("s", 10)
    assert result.error is not None and "/bin/sh not found" in result.error
    assert result.error.startswith("ns/pod container app:")


def test_timeout_closes_the_stream() -> None:
    resp = FakeStream([], None, hang=True)
    ticks = iter([0.0, 0.5, 2.0])
    result = pe.read_exec_stream(resp, timeout=1.0, clock=lambda: next(ticks))
    assert resp.closed and result.error == "exec timed out after 1s" and result.rc is None


def test_stream_errors_become_results() -> None:
    resp = FakeStream(["a"], None, fail=ConnectionResetError("peer reset"))
    assert "exec stream failed: peer reset" in pe.read_exec_stream(resp, 5).error

    class Forbidden(Exception):
        status, reason = 403, "Forbidden"

    run = pe.make_exec_runner(FakeCore(), recording_stream(Forbidden(), []), "ns", "pod", None)
    assert run("s", 5).error == "exec into ns/pod failed: 403 Forbidden"
    verdicts = p.run_batch([p.Probe("a", "u", "allowed")], run)
    assert verdicts[0].outcome == "error" and "403 Forbidden" in verdicts[0].detail


@pytest.mark.parametrize(
    ("minor", "content_type"),
    [(20, "application/json-patch+json"), (25, "application/strategic-merge-patch+json")],
)
def test_ephemeral_container_request(minor: int, content_type: str) -> None:
    core = FakeCore()
    pod = {"metadata": {"name": "reviews-1", "namespace": "bookinfo"}}
    name = pe.add_debug_container(core, minor, pod, "curlimages/curl", "reviews")
    ((args, kwargs),) = core.calls
    assert args[:2] == ("reviews-1", "bookinfo") and kwargs["_content_type"] == content_type
    container = args[2][0]["value"] if minor < 22 else args[2]["spec"]["ephemeralContainers"][0]
    if minor < 22:
        assert args[2][0]["op"] == "add" and args[2][0]["path"] == "/ephemeralContainers/-"
    assert container["name"] == name and name.startswith(pe.DEBUG_CONTAINER_PREFIX)
    assert container["image"] == "curlimages/curl" and container["targetContainerName"] == "reviews"
    assert container["command"][0] == "sleep"


def test_disabled_ephemeral_containers_explain_the_feature_gate() -> None:
    class NotFound(Exception):
        status, reason = 404, "Not Found"

    class Core(FakeCore):
        def patch_namespaced_pod_ephemeralcontainers(self, *a: Any, **kw: Any) -> None:
            raise NotFound()

    with pytest.raises(pe.PodSourceError, match="EphemeralContainers feature gate"):
        pe.add_debug_container(
            Core(), 20, {"metadata": {"name": "p", "namespace": "n"}}, "curlimages/curl", None
        )


def test_server_minor_and_pod_lookup() -> None:
    class Version:
        minor = "20+"

    class Listed:
        items: ClassVar[list[dict[str, Any]]] = [
            {"metadata": {"name": "b"}, "status": {"phase": "Running"}},
            {"metadata": {"name": "a"}, "status": {"phase": "Pending"}},
        ]

    class Core:
        def list_namespaced_pod(self, namespace: str, label_selector: str) -> Listed:
            return Listed()

    assert pe.server_minor(Version()) == 20
    source = pe.PodSource(namespace="bookinfo", label_selector="app=reviews")
    assert pe.find_pod(Core(), source)["metadata"]["name"] == "b"
    with pytest.raises(pe.PodSourceError, match="has no container 'curl'"):
        pe.check_container(
            {
                "metadata": {"name": "b", "namespace": "n"},
                "spec": {"containers": [{"name": "app"}]},
            },
            "curl",
        )
