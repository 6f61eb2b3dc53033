"""The control plane the other integration tests rely on: a real API server, no mocks.

It stores Istio and Gloo Mesh objects, validates them against the CRD schemas (Istio's
crd-all.gen.yaml and the project's hack/crds/gloo-mesh-v2.yaml), enforces RBAC, and has a
controller-manager that finishes namespace deletion.
"""

from __future__ import annotations

import copy
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import config, dynamic
from kubernetes.dynamic.exceptions import (
    ForbiddenError,
    NotFoundError,
    UnprocessibleEntityError,
)

pytestmark = pytest.mark.integration

FIELD_MANAGER = "meshguard-tests"
NAMESPACE_DELETION_TIMEOUT = 90.0


def _service_entry(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "ServiceEntry",
        "metadata": {"name": "httpbin-org", "namespace": namespace},
        "spec": {
            "hosts": ["httpbin.org"],
            "location": "MESH_EXTERNAL",
            "resolution": "DNS",
            "ports": [
                {"number": 80, "name": "http-80", "protocol": "HTTP"},
                {"number": 443, "name": "https-443", "protocol": "HTTPS"},
            ],
        },
    }


def _external_service(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "networking.gloo.solo.io/v2",
        "kind": "ExternalService",
        "metadata": {"name": "httpbin-org", "namespace": namespace},
        "spec": {
            "hosts": ["httpbin.org"],
            "ports": [
                {
                    "number": 443,
                    "name": "https",
                    "protocol": "HTTPS",
                    "clientsideTls": {},
                    "egressGatewayRoutes": {
                        "portMatch": 80,
                        "virtualGatewayRefs": [
                            {"name": "egress-vg", "namespace": "istio-egress", "cluster": "c1"}
                        ],
                    },
                }
            ],
        },
    }


def _virtual_gateway(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "networking.gloo.solo.io/v2",
        "kind": "VirtualGateway",
        "metadata": {"name": "egress-vg", "namespace": namespace},
        "spec": {
            "workloads": [{"selector": {"labels": {"istio": "egressgateway"}}}],
            "listeners": [
                {
                    "port": {"number": 443},
                    "tls": {"mode": "ISTIO_MUTUAL"},
                    "http": {},
                    "exposedExternalServices": [{"host": "httpbin.org"}],
                }
            ],
        },
    }


def _access_policy(namespace: str) -> dict[str, Any]:
    selector = {"name": "httpbin-org", "namespace": namespace, "cluster": "c1"}
    return {
        "apiVersion": "security.policy.gloo.solo.io/v2",
        "kind": "AccessPolicy",
        "metadata": {"name": "httpbin-org-access", "namespace": namespace},
        "spec": {
            "applyToDestinations": [
                {"kind": "EXTERNAL_SERVICE", "port": {"number": 443}, "selector": selector}
            ],
            "config": {
                "authz": {
                    "allowedClients": [
                        {"serviceAccountSelector": {"name": "app", "namespace": "bookinfo"}}
                    ]
                }
            },
        },
    }


def _with(obj: dict[str, Any], path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    """A deep copy of ``obj`` with the field at ``path`` set to ``value``."""
    changed = copy.deepcopy(obj)
    parent: Any = changed
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return changed


def _without(obj: dict[str, Any], path: tuple[str | int, ...]) -> dict[str, Any]:
    changed = copy.deepcopy(obj)
    parent: Any = changed
    for key in path[:-1]:
        parent = parent[key]
    del parent[path[-1]]
    return changed


def _resource(k8s: Any, obj: dict[str, Any]) -> Any:
    return k8s.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])


def _apply(k8s: Any, obj: dict[str, Any]) -> dict[str, Any]:
    """Server-side apply, then read back."""
    resource = _resource(k8s, obj)
    resource.server_side_apply(body=obj, field_manager=FIELD_MANAGER)
    meta = obj["metadata"]
    return resource.get(name=meta["name"], namespace=meta["namespace"]).to_dict()


def _create(k8s: Any, obj: dict[str, Any], name: str) -> None:
    """POST a copy named ``name``.

    Rejections are checked with a create: a 1.20 API server answers a server-side apply
    whose field has the wrong *type* with 500 ("failed to create typed patch object"),
    not with the validation error (422) every other write path gives.
    """
    _resource(k8s, obj).create(body=_with(obj, ("metadata", "name"), name))


def test_istio_service_entry_is_applied_and_read_back(k8s: Any, namespace: str) -> None:
    """Istio's own CRD schema stores the procedure's kind of object unchanged."""
    obj = _service_entry(namespace)
    stored = _apply(k8s, obj)
    assert (stored["apiVersion"], stored["kind"]) == (obj["apiVersion"], obj["kind"])
    assert stored["spec"] == obj["spec"]
    assert stored["metadata"]["uid"]


@pytest.mark.parametrize(
    ("make", "path"),
    [
        (_service_entry, ("spec", "notAField")),
        (_external_service, ("spec", "notAField")),
        (_external_service, ("spec", "ports", 0, "notAField")),
        (_virtual_gateway, ("spec", "listeners", 0, "notAField")),
        (_access_policy, ("spec", "config", "authz", "notAField")),
    ],
    ids=lambda v: v.__name__.lstrip("_") if callable(v) else ".".join(map(str, v)),
)
def test_unknown_fields_are_pruned(
    k8s: Any, namespace: str, make: Any, path: tuple[str | int, ...]
) -> None:
    """The CRD schemas are structural: a field they do not declare is dropped on write.

    This is what makes the read-back comparisons of tests/integration/test_rendered_objects.py
    able to fail: a rendered field the schema does not know would come back missing.
    """
    obj = _with(make(namespace), path, "x")
    resource = _resource(k8s, obj)
    resource.create(body=obj)  # POST: a server-side apply would be refused, not pruned
    stored = resource.get(name=obj["metadata"]["name"], namespace=namespace).to_dict()
    parent: Any = stored
    for key in path[:-1]:
        parent = parent[key]
    assert path[-1] not in parent
    assert stored["spec"] == make(namespace)["spec"]


def test_reapplying_the_same_object_changes_nothing(k8s: Any, namespace: str) -> None:
    first = _apply(k8s, _external_service(namespace))
    second = _apply(k8s, _external_service(namespace))
    assert second["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]


ONE_OF = "must not validate the schema (not)"  # the API server's words for a broken oneof
BOTH_ONE_OFS = "must validate all the schemas (allOf)"


@pytest.mark.parametrize(
    ("make", "path", "value", "message"),
    [
        (_service_entry, ("spec", "resolution"), "BOGUS", "spec.resolution"),
        (_service_entry, ("spec", "location"), "SOMEWHERE", "spec.location"),
        (_external_service, ("spec", "ports", 0, "number"), "443", "spec.ports.number"),
        (_external_service, ("spec", "ports", 0, "number"), 70000, "spec.ports.number"),
        (_external_service, ("spec", "ports", 0, "number"), 0, "spec.ports.number"),
        (_external_service, ("spec", "ports", 0, "protocol"), "SMTP", "spec.ports.protocol"),
        (_external_service, ("spec", "ports", 0, "clientsideTls", "mode"), "STRICT", ".mode"),
        (
            _external_service,
            ("spec", "ports", 0, "egressGatewayRoutes", "portMatch"),
            65536,
            "egressGatewayRoutes.portMatch",
        ),
        (_external_service, ("spec", "addresses"), ["192.0.2.0/24"], ONE_OF),  # and hosts
        (_virtual_gateway, ("spec", "listeners", 0, "tls", "mode"), "BOGUS", "tls.mode"),
        (_virtual_gateway, ("spec", "listeners", 0, "tcp"), {}, BOTH_ONE_OFS),  # and http
        (_virtual_gateway, ("spec", "listeners", 0, "httpsRedirect"), True, BOTH_ONE_OFS),
        (_virtual_gateway, ("spec", "listeners", 0, "port", "number"), 99999, "port.number"),
        (
            _access_policy,
            ("spec", "applyToDestinations", 0, "kind"),
            "POD",
            "spec.applyToDestinations.kind",
        ),
        (
            _access_policy,
            ("spec", "config", "authz", "allowedClients"),
            "everyone",
            "spec.config.authz.allowedClients",
        ),
    ],
    ids=lambda v: v.__name__.lstrip("_") if callable(v) else str(v),
)
def test_api_server_rejects_what_the_schema_forbids(
    k8s: Any, namespace: str, make: Any, path: tuple[str | int, ...], value: Any, message: str
) -> None:
    valid = make(namespace)
    _create(k8s, valid, "valid")  # the same object, unchanged, is accepted
    with pytest.raises(UnprocessibleEntityError) as rejected:
        _create(k8s, _with(valid, path, value), "invalid")
    assert rejected.value.status == 422
    assert message in json.loads(rejected.value.body)["message"]


def test_external_service_port_number_is_required(k8s: Any, namespace: str) -> None:
    obj = _without(_external_service(namespace), ("spec", "ports", 0, "number"))
    with pytest.raises(UnprocessibleEntityError) as rejected:
        _create(k8s, obj, "no-port-number")
    causes = json.loads(rejected.value.body)["details"]["causes"]
    # a 1.20 server names the field without the list index: spec.ports.number
    assert {"reason": "FieldValueRequired", "message": "Required value"}.items() <= causes[
        0
    ].items()
    assert causes[0]["field"].startswith("spec.ports") and causes[0]["field"].endswith(".number")


@pytest.fixture
def client_for(testbed_dir: Path | None) -> Iterator[Any]:
    """DynamicClient factory for the test bed's unprivileged users."""
    if testbed_dir is None:
        pytest.skip("the test-bed users exist only on the local control plane")

    def make(user: str) -> Any:
        kubeconfig = testbed_dir / f"kubeconfig-{user}"
        return dynamic.DynamicClient(config.new_client_from_config(str(kubeconfig)))

    yield make


@pytest.mark.parametrize("user", ["nobody", "meshguard-automation"])
def test_rbac_denies_users_without_bindings(client_for: Any, k8s: Any, user: str) -> None:
    assert k8s.resources.get(api_version="v1", kind="Namespace").get().items  # admin may
    namespaces = client_for(user).resources.get(api_version="v1", kind="Namespace")
    with pytest.raises(ForbiddenError) as denied:
        namespaces.get()
    assert denied.value.status == 403
    assert f'User \\"{user}\\" cannot list resource \\"namespaces\\"' in denied.value.body


def test_namespace_deletion_completes(k8s: Any) -> None:
    """The controller-manager's namespace controller empties and finalizes the namespace."""
    name = f"mg-delete-{uuid.uuid4().hex[:8]}"
    namespaces = k8s.resources.get(api_version="v1", kind="Namespace")
    namespaces.create(body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    _apply(k8s, _external_service(name))
    namespaces.delete(name=name)
    deadline = time.monotonic() + NAMESPACE_DELETION_TIMEOUT
    while time.monotonic() < deadline:
        try:
            phase = namespaces.get(name=name).status.phase
        except NotFoundError:
            return
        assert phase == "Terminating"
        time.sleep(0.5)
    pytest.fail(f"namespace {name} still exists {NAMESPACE_DELETION_TIMEOUT:.0f}s after delete")
