"""Helpers for tests that run real pods on the test bed's node (hack/testbed.py --node).

Images are the local ones of hack/images.py (``IMAGES["curl"]``, ``IMAGES["envoy"]``,
``IMAGES["pause"]``), always with ``imagePullPolicy: Never``. Every wait polls a condition
with a deadline; none sleeps a fixed time.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "hack"))
import images

IMAGES = images.image_names()
POD_TIMEOUT = 120.0


def core_api(kubeconfig: str) -> Any:
    from kubernetes import client, config

    return client.CoreV1Api(config.new_client_from_config(kubeconfig))


def wait_for(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = condition()
        except Exception as exc:  # an API error while things settle
            last = exc
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"{what}: not after {timeout:g}s (last: {last!r})")


def create_namespace(core: Any, name: str) -> None:
    core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    # pods need the namespace's default service account (its token controller makes it)
    wait_for(lambda: core.read_namespaced_service_account("default", name), 60, "default SA")
    wait_for(
        lambda: core.read_namespaced_service_account("default", name).secrets,
        60,
        "default SA token",
    )


def delete_namespace(core: Any, name: str) -> None:
    with contextlib.suppress(Exception):
        core.delete_namespace(name, grace_period_seconds=0)


def container(
    name: str, image: str, command: list[str] | None = None, **extra: Any
) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": name, "image": image, "imagePullPolicy": "Never"}
    if command:
        spec["command"] = command
    spec.update(extra)
    return spec


def pod_body(
    name: str,
    containers: list[dict[str, Any]],
    labels: dict[str, str] | None = None,
    host_aliases: dict[str, list[str]] | None = None,
    volumes: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "containers": containers,
        "terminationGracePeriodSeconds": 0,
        "enableServiceLinks": False,
    }
    if host_aliases:
        spec["hostAliases"] = [{"ip": ip, "hostnames": hosts} for ip, hosts in host_aliases.items()]
    if volumes:
        spec["volumes"] = volumes
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {"app": name}},
        "spec": spec,
    }


def run_pod(core: Any, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
    """Create a pod and wait until every container is ready; returns the pod as a dict."""
    core.create_namespaced_pod(namespace, body)
    return wait_ready(core, namespace, body["metadata"]["name"])


def wait_ready(core: Any, namespace: str, name: str) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        pod = core.read_namespaced_pod(name, namespace).to_dict()
        statuses = pod["status"].get("container_statuses") or []
        if pod["status"]["phase"] == "Running" and statuses and all(s["ready"] for s in statuses):
            return pod
        return None

    try:
        return wait_for(ready, POD_TIMEOUT, f"pod {namespace}/{name} ready")
    except AssertionError as exc:
        pod = core.read_namespaced_pod(name, namespace).to_dict()
        events = core.list_namespaced_event(namespace).items
        messages = [f"{e.reason}: {e.message}" for e in events if e.involved_object.name == name]
        raise AssertionError(f"{exc}\nstatus: {pod['status']}\nevents: {messages}") from None


def service(
    core: Any, namespace: str, name: str, selector: dict[str, str], port: int, target: int
) -> str:
    """Create a ClusterIP Service; returns its cluster IP."""
    body = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": selector, "ports": [{"port": port, "targetPort": target}]},
    }
    return core.create_namespaced_service(namespace, body).spec.cluster_ip


def exec_in(
    core: Any, namespace: str, pod: str, command: list[str], container_name: str | None = None
) -> tuple[int, str, str]:
    """Run ``command`` in a pod through the exec API; returns (exit code, stdout, stderr)."""
    from kubernetes.stream import stream

    kwargs = {"container": container_name} if container_name else {}
    resp = stream(
        core.connect_get_namespaced_pod_exec,
        pod,
        namespace,
        command=command,
        stdout=True,
        stderr=True,
        stdin=False,
        tty=False,
        _preload_content=False,
        **kwargs,
    )
    resp.run_forever(timeout=60)
    out, err = resp.read_stdout(), resp.read_stderr()
    code = resp.returncode
    resp.close()
    return (code if code is not None else -1), out, err


def wait_http(
    core: Any, namespace: str, pod: str, url: str, host: str | None = None, timeout: float = 60
) -> str:
    """Poll ``curl url`` from a pod until it answers with any HTTP status; returns it.

    A pod being Ready does not mean kube-proxy has programmed its Service yet."""
    command = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-m", "2", url]
    if host:
        command[1:1] = ["-H", f"Host: {host}"]

    def answered() -> str | None:
        code, out, _err = exec_in(core, namespace, pod, command)
        return out if code == 0 and out not in ("", "000") else None

    return wait_for(answered, timeout, f"{url} answering from {namespace}/{pod}", interval=0.1)
