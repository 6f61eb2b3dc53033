# Copyright: meshguard.egress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Run a probe script inside a pod through the Kubernetes exec API.

One exec per source pod: the whole batch script (see ``_probe.build_script``) is passed to
``/bin/sh -c``. Optionally adds an ephemeral debug container with a curl image first (what
``kubectl debug`` does), through the ``pods/ephemeralcontainers`` subresource:

* API servers before 1.22 (ephemeral containers alpha/beta, ``EphemeralContainers`` kind):
  a JSON patch ``add /ephemeralContainers/-``;
* 1.22 and later: a strategic merge patch of ``spec.ephemeralContainers`` on the Pod.

A bypass source (``bypass_image``) is a temporary pod without a sidecar that this module
creates in the namespace (:func:`create_bypass_pod`), waits for, probes from and always
deletes again (:func:`delete_bypass_pod`). A source that claims a ``service_account`` is
checked against the pod's ``spec.serviceAccountName`` before anything runs in it.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any, Callable

from ansible_collections.meshguard.egress.plugins.module_utils._probe import (
    Runner,
    ScriptResult,
)

DEBUG_CONTAINER_PREFIX = "meshguard-probe-"
DEBUG_CONTAINER_LIFETIME = 3600
EPHEMERAL_PATCH_API_MINOR = 22
BYPASS_POD_PREFIX = "meshguard-bypass-"
BYPASS_CONTAINER = "probe"
SIDECAR_INJECT = "sidecar.istio.io/inject"
CREATED_BY_LABEL = "meshguard.io/created-by"
CREATED_BY = "meshguard.egress.egress_probe"
# pod phases after which a bypass pod never runs (again)
ENDED_PHASES = ("Succeeded", "Failed")


class PodSourceError(Exception):
    """A pod source cannot be found or prepared."""


@dataclass(frozen=True)
class PodSource:
    namespace: str
    name: str | None = None
    label_selector: str | None = None
    container: str | None = None
    debug_image: str | None = None
    service_account: str | None = None  # the identity the source claims; checked
    bypass_image: str | None = None  # a temporary pod of this image, without a sidecar

    @property
    def key(self) -> str:
        if self.bypass_image:
            return f"{self.namespace}/(bypass {self.bypass_image})"
        who = self.name or f"[{self.label_selector}]"
        suffix = f"/{self.container}" if self.container else ""
        debug = f" (debug {self.debug_image})" if self.debug_image else ""
        claimed = f" as {self.service_account}" if self.service_account else ""
        return f"{self.namespace}/{who}{suffix}{debug}{claimed}"


# --------------------------------------------------------------------------- exec channel


def exec_command(script: str) -> list[str]:
    return ["/bin/sh", "-c", script]


def _exit_code_from_status(status: dict[str, Any] | None) -> tuple[int | None, str | None]:
    """The exit code in the exec error channel's Status object, or an error message."""
    if not status:
        return None, "exec ended without a status"
    if status.get("status") == "Success":
        return 0, None
    causes = (status.get("details") or {}).get("causes") or []
    for cause in causes:
        if cause.get("reason") == "ExitCode":
            return int(cause.get("message", "-1")), None
    return None, status.get("message") or "exec failed"


def _parse_status(raw: str) -> dict[str, Any] | None:
    import json

    try:
        value = json.loads(raw) if raw else None
    except ValueError:
        return {"status": "Failure", "message": raw.strip()}
    return value if isinstance(value, dict) else None


def read_exec_stream(
    resp: Any, timeout: float, clock: Callable[[], float] = time.monotonic
) -> ScriptResult:
    """Drain a WSClient-like object until it closes or ``timeout`` seconds pass."""
    stdout: list[str] = []
    stderr: list[str] = []
    ends = clock() + timeout
    try:
        while resp.is_open():
            if clock() > ends:
                resp.close()
                return ScriptResult(
                    stdout="".join(stdout),
                    stderr="".join(stderr),
                    rc=None,
                    error=f"exec timed out after {timeout:g}s",
                )
            resp.update(timeout=1)
            if resp.peek_stdout():
                stdout.append(resp.read_stdout())
            if resp.peek_stderr():
                stderr.append(resp.read_stderr())
        status = _parse_status(resp.read_channel(3))
    except Exception as exc:  # websocket errors have no common base class
        return ScriptResult(stdout="".join(stdout), rc=None, error=f"exec stream failed: {exc}")
    rc, error = _exit_code_from_status(status)
    if error and "executable file not found" in error:
        error = f"/bin/sh not found in the container: {error}"
    return ScriptResult(stdout="".join(stdout), stderr="".join(stderr), rc=rc, error=error)


def make_exec_runner(
    core_api: Any, stream_fn: Callable[..., Any], namespace: str, pod: str, container: str | None
) -> Runner:
    """A probe-script runner that execs into one pod/container."""
    where = f"{namespace}/{pod}" + (f" container {container}" if container else "")

    def run(script: str, timeout: float) -> ScriptResult:
        kwargs: dict[str, Any] = {"container": container} if container else {}
        try:
            resp = stream_fn(
                core_api.connect_get_namespaced_pod_exec,
                pod,
                namespace,
                command=exec_command(script),
                stdout=True,
                stderr=True,
                stdin=False,
                tty=False,
                _preload_content=False,
                **kwargs,
            )
        except Exception as exc:  # ApiException, websocket handshake errors
            return ScriptResult(rc=None, error=f"exec into {where} failed: {_api_error(exc)}")
        result = read_exec_stream(resp, timeout)
        if result.error:
            result.error = f"{where}: {result.error}"
        return result

    return run


def _api_error(exc: Exception) -> str:
    status = getattr(exc, "status", None)
    reason = getattr(exc, "reason", None)
    return f"{status} {reason}" if status else str(exc)


def _api_message(exc: Exception) -> str:
    """``_api_error`` and the API server's message (a 403 may be RBAC or admission)."""
    body = getattr(exc, "body", None)
    if not body:
        return _api_error(exc)
    try:
        message = json.loads(body).get("message")
    except (ValueError, TypeError, AttributeError):  # not JSON, or not a JSON object
        return _api_error(exc)
    return f"{_api_error(exc)}: {message}" if message else _api_error(exc)


# --------------------------------------------------------------------------- pod lookup


def _pod_dict(pod: Any) -> dict[str, Any]:
    return pod if isinstance(pod, dict) else pod.to_dict()


def _running(pod: dict[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running"


def find_pod(core_api: Any, source: PodSource) -> dict[str, Any]:
    """The pod a source names, or the first running pod its label selector finds."""
    if source.name:
        try:
            return _pod_dict(core_api.read_namespaced_pod(source.name, source.namespace))
        except Exception as exc:
            raise PodSourceError(
                f"pod {source.namespace}/{source.name}: {_api_error(exc)}"
            ) from exc
    listed = core_api.list_namespaced_pod(source.namespace, label_selector=source.label_selector)
    pods = sorted((_pod_dict(p) for p in listed.items), key=lambda p: p["metadata"]["name"])
    running = [p for p in pods if _running(p)]
    if not running:
        raise PodSourceError(
            f"no running pod in namespace {source.namespace} matches "
            f"{source.label_selector!r} ({len(pods)} pods match, none running)"
        )
    return running[0]


def pod_service_account(pod: dict[str, Any]) -> str:
    """The service account a pod runs as (the API's default ``default`` when unset)."""
    spec = pod.get("spec") or {}
    for key in ("serviceAccountName", "service_account_name", "serviceAccount", "service_account"):
        if spec.get(key):
            return str(spec[key])
    return "default"


def check_service_account(pod: dict[str, Any], claimed: str | None) -> None:
    """Fail unless ``pod`` runs as the service account its source claims (if it claims one)."""
    if not claimed:
        return
    actual = pod_service_account(pod)
    if actual != claimed:
        meta = pod["metadata"]
        raise PodSourceError(
            f"pod {meta['namespace']}/{meta['name']} runs as service account {actual!r}, "
            f"not {claimed!r} as its source claims: its probes would not prove {claimed}'s "
            "access"
        )


def check_container(pod: dict[str, Any], container: str | None) -> None:
    names = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
    if container and container not in names:
        raise PodSourceError(
            f"pod {pod['metadata']['namespace']}/{pod['metadata']['name']} has no container "
            f"{container!r} (containers: {', '.join(names)})"
        )


# --------------------------------------------------------------------------- debug container


def debug_container_spec(name: str, image: str, target: str | None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": name,
        "image": image,
        "command": ["sleep", str(DEBUG_CONTAINER_LIFETIME)],
        "imagePullPolicy": "IfNotPresent",
        "stdin": False,
        "tty": False,
        "terminationMessagePolicy": "File",
    }
    if target:
        spec["targetContainerName"] = target
    return spec


def server_minor(version: Any) -> int:
    """Minor version from a VersionInfo (``minor`` may read ``"20+"``)."""
    match = re.match(r"\d+", str(getattr(version, "minor", "") or ""))
    return int(match.group(0)) if match else 0


def ephemeral_request(minor: int, container: dict[str, Any]) -> dict[str, Any]:
    """The patch that adds ``container`` to a pod's ephemeral containers."""
    if minor < EPHEMERAL_PATCH_API_MINOR:
        return {
            "content_type": "application/json-patch+json",
            "body": [{"op": "add", "path": "/ephemeralContainers/-", "value": container}],
        }
    return {
        "content_type": "application/strategic-merge-patch+json",
        "body": {"spec": {"ephemeralContainers": [container]}},
    }


def _debug_container_running(pod: dict[str, Any], image: str) -> str | None:
    statuses = (
        (pod.get("status") or {}).get("ephemeral_container_statuses")
        or (pod.get("status") or {}).get("ephemeralContainerStatuses")
        or []
    )
    for status in statuses:
        running = (status.get("state") or {}).get("running")
        ours = status["name"].startswith(DEBUG_CONTAINER_PREFIX) and status.get("image") == image
        if ours and running:
            return status["name"]
    return None


def add_debug_container(
    core_api: Any, minor: int, pod: dict[str, Any], image: str, target: str | None
) -> str:
    """Add an ephemeral curl container to ``pod``; return its name."""
    name = DEBUG_CONTAINER_PREFIX + secrets.token_hex(3)
    request = ephemeral_request(minor, debug_container_spec(name, image, target))
    meta = pod["metadata"]
    try:
        core_api.patch_namespaced_pod_ephemeralcontainers(
            meta["name"],
            meta["namespace"],
            request["body"],
            _content_type=request["content_type"],
            _preload_content=False,
        )
    except Exception as exc:
        status = getattr(exc, "status", None)
        hint = (
            " (ephemeral containers are alpha before Kubernetes 1.23: enable the "
            "EphemeralContainers feature gate on the API server and kubelets)"
            if status == 404
            else ""
        )
        raise PodSourceError(
            f"cannot add a debug container to {meta['namespace']}/{meta['name']}: "
            f"{_api_error(exc)}{hint}"
        ) from exc
    return name


def wait_for_debug_container(
    core_api: Any,
    pod: dict[str, Any],
    name: str,
    image: str,
    timeout: float,
    sleep: Callable[[float], None] | None = None,
) -> None:
    sleep = sleep or time.sleep
    meta = pod["metadata"]
    ends = time.monotonic() + timeout
    while time.monotonic() < ends:
        current = _pod_dict(core_api.read_namespaced_pod(meta["name"], meta["namespace"]))
        if _debug_container_running(current, image) == name:
            return
        sleep(1)
    raise PodSourceError(
        f"debug container {name} in {meta['namespace']}/{meta['name']} "
        f"not running after {timeout:g}s"
    )


def prepare_source(
    core_api: Any,
    version_api: Any,
    stream_fn: Callable[..., Any],
    source: PodSource,
    debug_timeout: float = 60.0,
) -> Runner:
    """Find the source pod (adding a debug container if asked); return its exec runner."""
    pod = find_pod(core_api, source)
    check_service_account(pod, source.service_account)
    check_container(pod, source.container)
    container = source.container
    if source.debug_image:
        existing = _debug_container_running(pod, source.debug_image)
        if existing:
            container = existing
        else:
            minor = server_minor(version_api.get_code())
            container = add_debug_container(
                core_api, minor, pod, source.debug_image, source.container
            )
            wait_for_debug_container(core_api, pod, container, source.debug_image, debug_timeout)
    meta = pod["metadata"]
    return make_exec_runner(core_api, stream_fn, meta["namespace"], meta["name"], container)


# --------------------------------------------------------------------------- bypass pod


def bypass_pod_body(name: str, image: str, lifetime: int) -> dict[str, Any]:
    """A pod without a sidecar that sleeps ``lifetime`` seconds and then ends by itself."""
    marks = {SIDECAR_INJECT: "false"}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": {**marks, CREATED_BY_LABEL: CREATED_BY},
            "annotations": dict(marks),
        },
        "spec": {
            "containers": [
                {
                    "name": BYPASS_CONTAINER,
                    "image": image,
                    "command": ["sleep", str(lifetime)],
                    "imagePullPolicy": "IfNotPresent",
                }
            ],
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": 0,
            # a run killed before it deletes the pod: the kubelet ends it after this
            "activeDeadlineSeconds": lifetime,
        },
    }


def _waiting_reason(pod: dict[str, Any]) -> str:
    status = pod.get("status") or {}
    reasons = []
    for item in status.get("container_statuses") or status.get("containerStatuses") or []:
        waiting = (item.get("state") or {}).get("waiting") or {}
        if waiting.get("reason"):
            reason = waiting["reason"]
            reasons.append(f"{reason}: {waiting['message']}" if waiting.get("message") else reason)
    return "; ".join(reasons)


def create_bypass_pod(core_api: Any, namespace: str, image: str, lifetime: int) -> str:
    """Create a bypass pod in ``namespace``; returns its name."""
    name = BYPASS_POD_PREFIX + secrets.token_hex(4)
    try:
        core_api.create_namespaced_pod(namespace, bypass_pod_body(name, image, lifetime))
    except Exception as exc:
        raise PodSourceError(
            f"cannot create the bypass pod {namespace}/{name}: {_api_message(exc)}"
        ) from exc
    return name


def wait_for_bypass_pod(
    core_api: Any,
    namespace: str,
    name: str,
    timeout: float,
    sleep: Callable[[float], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Poll the pod's status until it runs (returned), it ends, or ``timeout`` passes."""
    sleep = sleep or time.sleep
    ends = clock() + timeout
    interval = 0.1
    while True:
        pod = _pod_dict(core_api.read_namespaced_pod(name, namespace))
        phase = (pod.get("status") or {}).get("phase")
        if phase == "Running":
            return pod
        if phase in ENDED_PHASES:
            raise PodSourceError(
                f"bypass pod {namespace}/{name} ended ({phase}) before it ran: "
                f"{(pod.get('status') or {}).get('message') or _waiting_reason(pod) or 'no cause'}"
            )
        remaining = ends - clock()
        if remaining <= 0:
            break
        sleep(min(interval, remaining))
        interval = min(interval * 2, 1.0)
    cause = _waiting_reason(pod) or f"phase {(pod.get('status') or {}).get('phase')}"
    raise PodSourceError(f"bypass pod {namespace}/{name} not running after {timeout:g}s ({cause})")


def delete_bypass_pod(core_api: Any, namespace: str, name: str) -> str | None:
    """Delete a bypass pod at once; returns why it could not be deleted (None: deleted)."""
    try:
        core_api.delete_namespaced_pod(name, namespace, grace_period_seconds=0)
    except Exception as exc:
        if getattr(exc, "status", None) == 404:
            return None  # already gone
        return f"cannot delete the bypass pod {namespace}/{name}: {_api_error(exc)}"
    return None
