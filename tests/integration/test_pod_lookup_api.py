"""Pod lookup, the debug-container patch and the verify ClusterRole against the real API server.

The local control plane has no kubelet: pods are created (they stay Pending, with no node)
and their status is then set through the ``pods/status`` subresource with the admin
kubeconfig, as a kubelet would. The code under test gets a real ``kubernetes`` client, so
what it reads are the client's objects (snake_case ``to_dict()``), not hand-written dicts.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / ".venv" / "collections"))
from ansible_collections.meshguard.egress.plugins.module_utils import _pod_exec as pe
from ansible_collections.meshguard.egress.plugins.module_utils import _probe as p

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
AUTOMATION = "meshguard-automation"
SA_TIMEOUT = 60.0  # failure bound for the service-account controller


def _core(kubeconfig: str) -> Any:
    from kubernetes import client, config

    return client.CoreV1Api(config.new_client_from_config(kubeconfig))


@pytest.fixture
def core(kubeconfig: str) -> Any:
    return _core(kubeconfig)


def _pod(name: str, labels: dict[str, str], containers: tuple[str, ...] = ("app",)) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "automountServiceAccountToken": False,
            "containers": [{"name": c, "image": "example.invalid/app:1"} for c in containers],
        },
    }


def create_pod(core: Any, namespace: str, body: dict, phase: str | None = None) -> None:
    """Create a pod (retrying while the namespace's default service account is not there
    yet), then set its phase through the status subresource."""
    from kubernetes.client.exceptions import ApiException

    deadline = time.monotonic() + SA_TIMEOUT
    while True:
        try:
            core.create_namespaced_pod(namespace, body)
            break
        except ApiException as exc:
            if "serviceaccount" not in str(exc.body) or time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    if phase:
        core.patch_namespaced_pod_status(
            body["metadata"]["name"], namespace, {"status": {"phase": phase}}
        )


def test_find_pod_by_selector_picks_the_first_running_pod(core: Any, namespace: str) -> None:
    create_pod(core, namespace, _pod("web-c", {"app": "web"}), "Running")
    create_pod(core, namespace, _pod("web-a", {"app": "web"}))  # Pending
    create_pod(core, namespace, _pod("web-b", {"app": "web"}, ("app", "curl")), "Running")
    create_pod(core, namespace, _pod("db-0", {"app": "db"}), "Running")

    found = pe.find_pod(core, pe.PodSource(namespace=namespace, label_selector="app=web"))
    assert found["metadata"]["name"] == "web-b"
    assert found["metadata"]["namespace"] == namespace
    pe.check_container(found, "curl")
    with pytest.raises(
        pe.PodSourceError, match=r"has no container 'proxy' \(containers: app, curl\)"
    ):
        pe.check_container(found, "proxy")


def test_find_pod_errors_from_the_real_server(core: Any, namespace: str) -> None:
    create_pod(core, namespace, _pod("job-1", {"app": "job"}))
    create_pod(core, namespace, _pod("job-2", {"app": "job"}), "Succeeded")
    with pytest.raises(pe.PodSourceError) as caught:
        pe.find_pod(core, pe.PodSource(namespace=namespace, label_selector="app=job"))
    assert str(caught.value) == (
        f"no running pod in namespace {namespace} matches 'app=job' (2 pods match, none running)"
    )
    with pytest.raises(pe.PodSourceError) as caught:
        pe.find_pod(core, pe.PodSource(namespace=namespace, name="missing"))
    assert str(caught.value) == f"pod {namespace}/missing: 404 Not Found"
    named = pe.find_pod(core, pe.PodSource(namespace=namespace, name="job-1"))
    assert named["status"]["phase"] == "Pending"  # a named pod is taken as it is


def test_exec_into_a_pod_without_a_node_is_an_error_verdict(core: Any, namespace: str) -> None:
    """The exec request really reaches the API server, which refuses it (no kubelet)."""
    from kubernetes.stream import stream

    create_pod(core, namespace, _pod("lonely", {"app": "lonely"}), "Running")
    runner = pe.prepare_source(
        core, None, stream, pe.PodSource(namespace=namespace, label_selector="app=lonely")
    )
    [verdict] = p.run_batch([p.Probe("a", "http://h/", "allowed")], runner)
    assert verdict.outcome == "error"
    assert verdict.detail.startswith(f"exec into {namespace}/lonely failed: "), verdict.detail


def _serves_ephemeral_containers(core: Any) -> bool:
    resources = core.get_api_resources().resources
    return any(r.name == "pods/ephemeralcontainers" for r in resources)


def test_debug_container_patch_against_the_real_server(core: Any, namespace: str) -> None:
    from kubernetes import client

    create_pod(core, namespace, _pod("target", {"app": "target"}), "Running")
    pod = pe.find_pod(core, pe.PodSource(namespace=namespace, name="target"))
    version = client.VersionApi(core.api_client).get_code()
    minor = pe.server_minor(version)
    assert minor >= 20
    if not _serves_ephemeral_containers(core):
        # the EphemeralContainers feature gate is off: the subresource is not served
        with pytest.raises(pe.PodSourceError) as caught:
            pe.add_debug_container(core, minor, pod, "curlimages/curl:8", "app")
        assert "404 Not Found (ephemeral containers are alpha before Kubernetes 1.23" in str(
            caught.value
        )
        return
    name = pe.add_debug_container(core, minor, pod, "curlimages/curl:8", "app")
    stored = core.read_namespaced_pod("target", namespace).to_dict()
    [container] = stored["spec"]["ephemeral_containers"]
    assert (container["name"], container["image"]) == (name, "curlimages/curl:8")
    assert container["target_container_name"] == "app"
    assert container["command"] == ["sleep", str(pe.DEBUG_CONTAINER_LIFETIME)]


# --------------------------------------------------------------------------- verify ClusterRole


def verify_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load((ROOT / "playbooks" / "rbac" / "clusterroles.yml").read_text())
    [role] = [r for r in doc["items"] if r["metadata"]["name"] == "meshguard-egress-verify"]
    return role["rules"]


@pytest.fixture
def verify_role_bound(k8s: Any, testbed_dir: Path | None) -> Iterator[str]:
    """Only the shipped verify ClusterRole, bound to the test bed's automation user; yields
    that user's kubeconfig."""
    if testbed_dir is None:
        pytest.skip("needs the local control plane's static-token user meshguard-automation")
    import testbed

    roles = k8s.resources.get(api_version="rbac.authorization.k8s.io/v1", kind="ClusterRole")
    bindings = k8s.resources.get(
        api_version="rbac.authorization.k8s.io/v1", kind="ClusterRoleBinding"
    )
    name = "mg-test-verify-only"
    roles.create(body={"metadata": {"name": name}, "rules": verify_rules()})
    bindings.create(
        body={
            "metadata": {"name": name},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": name,
            },
            "subjects": [
                {"kind": "User", "name": AUTOMATION, "apiGroup": "rbac.authorization.k8s.io"}
            ],
        }
    )
    try:
        yield testbed.LocalControlPlane(testbed_dir).kubeconfig_for(AUTOMATION)
    finally:
        from kubernetes.dynamic.exceptions import NotFoundError

        with contextlib.suppress(NotFoundError):
            bindings.delete(name=name)
        with contextlib.suppress(NotFoundError):
            roles.delete(name=name)


def can_i(kubeconfig: str, verb: str, resource: str, namespace: str, sub: str = "") -> bool:
    from kubernetes import client, config

    api = client.AuthorizationV1Api(config.new_client_from_config(kubeconfig))
    review = api.create_self_subject_access_review(
        {
            "spec": {
                "resourceAttributes": {
                    "verb": verb,
                    "resource": resource,
                    "subresource": sub,
                    "namespace": namespace,
                }
            }
        }
    )
    return bool(review.status.allowed)


def test_verify_role_grants_what_verification_calls(
    core: Any, namespace: str, verify_role_bound: str
) -> None:
    as_automation = _core(verify_role_bound)
    create_pod(core, namespace, _pod("gw-1", {"istio": "egressgateway"}), "Running")

    # what egress_probe and gateway_access_log call, as the automation user, for real
    found = pe.find_pod(as_automation, pe.PodSource(namespace=namespace, label_selector="istio"))
    assert found["metadata"]["name"] == "gw-1"
    assert pe.find_pod(as_automation, pe.PodSource(namespace=namespace, name="gw-1"))
    for verb, resource, sub in [
        ("get", "pods", ""),
        ("list", "pods", ""),
        ("create", "pods", "exec"),
        ("get", "pods", "exec"),
        ("get", "pods", "log"),
        ("patch", "pods", "ephemeralcontainers"),
        # egress_probe's temporary bypass pods
        ("create", "pods", ""),
        ("delete", "pods", ""),
    ]:
        assert can_i(verify_role_bound, verb, resource, namespace, sub), (verb, resource, sub)


def test_verify_role_writes_nothing_but_bypass_pods(namespace: str, verify_role_bound: str) -> None:
    for verb, resource, sub in [
        ("patch", "pods", ""),
        ("update", "pods", ""),
        ("deletecollection", "pods", ""),
        ("update", "pods", "status"),
        ("get", "secrets", ""),
        ("create", "pods", "portforward"),
        ("create", "pods", "attach"),
        ("list", "namespaces", ""),
    ]:
        assert not can_i(verify_role_bound, verb, resource, namespace, sub), (verb, resource, sub)
    from kubernetes.client.exceptions import ApiException

    with pytest.raises(ApiException) as denied:
        _core(verify_role_bound).delete_collection_namespaced_pod(namespace)
    assert denied.value.status == 403


def test_a_bypass_pod_is_created_and_deleted_with_the_verify_role(
    core: Any, namespace: str, verify_role_bound: str
) -> None:
    """As the automation user with only the verify role: the API server takes the bypass
    pod's body, and the pod is deleted again. No kubelet here: it stays Pending, so the
    wait ends with the pod's phase."""
    as_automation = _core(verify_role_bound)
    image = "localhost/meshguard/curl:7.88.1"
    deadline = time.monotonic() + SA_TIMEOUT
    while True:  # the namespace's default service account may not be there yet
        try:
            name = pe.create_bypass_pod(as_automation, namespace, image, 120)
            break
        except pe.PodSourceError as exc:
            if "service account" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    assert name.startswith(pe.BYPASS_POD_PREFIX)
    with pytest.raises(pe.PodSourceError) as pending:
        pe.wait_for_bypass_pod(as_automation, namespace, name, 0.5)
    assert (
        str(pending.value)
        == f"bypass pod {namespace}/{name} not running after 0.5s (phase Pending)"
    )
    stored = core.read_namespaced_pod(name, namespace).to_dict()
    assert stored["metadata"]["labels"] == {
        "sidecar.istio.io/inject": "false",
        "meshguard.io/created-by": "meshguard.egress.egress_probe",
    }
    assert stored["metadata"]["annotations"] == {"sidecar.istio.io/inject": "false"}
    spec = stored["spec"]
    assert (spec["automount_service_account_token"], spec["active_deadline_seconds"]) == (
        False,
        120,
    )
    assert spec["termination_grace_period_seconds"] == 0
    assert spec["containers"][0]["command"] == ["sleep", "120"]
    assert spec["containers"][0]["image_pull_policy"] == "IfNotPresent"
    assert pe.delete_bypass_pod(as_automation, namespace, name) is None
    names = [p.metadata.name for p in core.list_namespaced_pod(namespace).items]
    assert name not in names  # no node: grace period 0 removes it at once
