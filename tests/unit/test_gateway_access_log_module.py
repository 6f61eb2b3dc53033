"""Pod log reads of gateway_access_log (read_pod_logs, since_seconds, tail_lines, text,
container, path).

The local control plane has no kubelet, and pod logs are served by the kubelet, so the
Kubernetes client is a stand-in here that records each call and answers with log text; the
pod listing arguments are the same ones tests/integration/test_pod_lookup_api.py sends to
the real API server.
"""

from __future__ import annotations

import datetime
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / ".venv" / "collections"))
from ansible_collections.meshguard.egress.plugins.modules import gateway_access_log as gal

UTC = datetime.timezone.utc
LINE = '{"authority":"httpbin.org","response_code":200,"start_time":"2025-06-05T21:02:20Z"}'


class Meta:
    def __init__(self, name: str) -> None:
        self.name = name


class PodItem:
    def __init__(self, name: str) -> None:
        self.metadata = Meta(name)


class FakeCore:
    """Stands in for kubernetes.client.CoreV1Api."""

    instances: ClassVar[list[FakeCore]] = []

    def __init__(self, api_client: Any) -> None:
        self.api_client = api_client
        self.calls: list[tuple[str, tuple, dict]] = []
        self.logs = {"gw-b": "b-line\n", "gw-a": LINE + "\n", "gw-c": None}
        FakeCore.instances.append(self)

    def list_namespaced_pod(self, namespace: str, **kwargs: Any) -> Any:
        self.calls.append(("list", (namespace,), kwargs))

        class Listed:
            items: ClassVar[list[PodItem]] = [PodItem(n) for n in ("gw-b", "gw-c", "gw-a")]

        return Listed()

    def read_namespaced_pod_log(self, name: str, namespace: str, **kwargs: Any) -> str | None:
        self.calls.append(("log", (name, namespace), kwargs))
        return self.logs[name]


class FakeModule:
    def __init__(self, **params: Any) -> None:
        defaults = {
            "namespace": "istio-egress",
            "label_selector": "istio=egressgateway",
            "container": "istio-proxy",
            "since_seconds": None,
            "since_time": None,
            "tail_lines": None,
            "path": None,
            "text": None,
        }
        self.params = {**defaults, **params}
        self.required: list[str] = []

    def requires(self, name: str) -> None:
        self.required.append(name)


@pytest.fixture
def core(monkeypatch: pytest.MonkeyPatch) -> Any:
    import os

    import kubernetes.client

    for variable in [v for v in os.environ if v.startswith("K8S_AUTH_")]:
        monkeypatch.delenv(variable)
    seen: list[Any] = []  # the connection options each API client was made from
    monkeypatch.setattr(
        gal, "api_client", lambda options: seen.append(options) or "api-client-sentinel"
    )
    monkeypatch.setattr(kubernetes.client, "CoreV1Api", FakeCore)
    FakeCore.instances.clear()
    return seen


def test_reads_every_gateway_pod_by_name_order(core: list) -> None:
    module = FakeModule()
    logs = gal.read_pod_logs(module, None)
    assert logs == [("gw-a", LINE + "\n"), ("gw-b", "b-line\n"), ("gw-c", "")]
    assert core == [{}]  # no connection option set: the defaults (kubeconfig, in-cluster)
    (api,) = FakeCore.instances
    assert api.api_client == "api-client-sentinel"
    assert api.calls[0] == ("list", ("istio-egress",), {"label_selector": "istio=egressgateway"})
    assert api.calls[1:] == [
        ("log", (name, "istio-egress"), {"container": "istio-proxy"})
        for name in ("gw-a", "gw-b", "gw-c")
    ]


def test_container_since_seconds_and_tail_lines_are_passed(core: list) -> None:
    module = FakeModule(
        namespace="egress", label_selector="app=gw", container="proxy", since_seconds=300,
        tail_lines=50,
    )  # fmt: skip
    gal.read_pod_logs(module, None)
    (api,) = FakeCore.instances
    assert api.calls[0] == ("list", ("egress",), {"label_selector": "app=gw"})
    assert api.calls[1] == (
        "log",
        ("gw-a", "egress"),
        {"container": "proxy", "since_seconds": 300, "tail_lines": 50},
    )


def test_zero_limits_mean_no_limit(core: list) -> None:
    gal.read_pod_logs(FakeModule(since_seconds=0, tail_lines=0), None)
    assert FakeCore.instances[0].calls[1][2] == {"container": "istio-proxy"}


def test_since_time_limits_the_read(core: list, monkeypatch: pytest.MonkeyPatch) -> None:
    now = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)

    class Clock(datetime.datetime):
        @classmethod
        def now(cls, tz: Any = None) -> datetime.datetime:  # type: ignore[override]
            return now

    monkeypatch.setattr(datetime, "datetime", Clock)
    since = now - datetime.timedelta(seconds=90, milliseconds=500)
    gal.read_pod_logs(FakeModule(), since)
    assert FakeCore.instances[-1].calls[1][2]["since_seconds"] == 91
    gal.read_pod_logs(FakeModule(since_seconds=30), since)
    assert FakeCore.instances[-1].calls[1][2]["since_seconds"] == 30
    gal.read_pod_logs(FakeModule(since_seconds=3000), since)
    assert FakeCore.instances[-1].calls[1][2]["since_seconds"] == 91
    gal.read_pod_logs(FakeModule(), now + datetime.timedelta(seconds=10))  # in the future
    assert FakeCore.instances[-1].calls[1][2]["since_seconds"] == 1


def test_text_and_path_do_not_touch_the_api(core: list, tmp_path: Path) -> None:
    assert gal.read_logs(FakeModule(text="abc"), None) == [(None, "abc")]
    assert gal.read_logs(FakeModule(text=""), None) == [(None, "")]
    log = tmp_path / "access.log"
    log.write_bytes(LINE.encode() + b"\n\xff\n")
    assert gal.read_logs(FakeModule(path=str(log)), None) == [(None, LINE + "\n\ufffd\n")]
    assert FakeCore.instances == [] and core == []
    assert gal.read_logs(FakeModule(), None)[0][0] == "gw-a"


def test_records_carry_their_pod() -> None:
    records, skipped = gal.parse_all([("gw-a", LINE + "\nnoise\n"), (None, LINE)])
    assert skipped == 1 and [r.get("pod") for r in records] == ["gw-a", None]
