"""Every object the collection renders is accepted and stored by a real API server.

The server carries Istio's own CRD schemas (structural, so unknown fields would be pruned
and wrong types or enums rejected) and the project's Gloo Mesh CRDs. Each rendered object
is created, read back, and its spec compared with what was rendered.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.dynamic.exceptions import ConflictError, NotFoundError, ResourceNotFoundError

from ansible_collections.meshguard.egress.plugins.plugin_utils.plan import build_plan
from ansible_collections.meshguard.egress.plugins.plugin_utils.render import (
    COMPONENT_LABEL,
    MANAGED_BY,
    MANAGED_BY_LABEL,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ISTIO_FIXTURES = Path(
    os.environ.get("MESHGUARD_ISTIO_FIXTURES", ROOT.parent / "shared" / "fixtures" / "istio")
)
ISTIO_VERSION = os.environ.get("MESHGUARD_ISTIO_VERSION", "1.23.4")
GROUPS_NEEDED = (
    ("networking.istio.io/v1", "Sidecar"),
    ("networking.istio.io/v1", "ServiceEntry"),
    ("security.istio.io/v1", "AuthorizationPolicy"),
    ("networking.gloo.solo.io/v2", "ExternalService"),
    ("networking.gloo.solo.io/v2", "ExternalEndpoint"),
    ("networking.gloo.solo.io/v2", "VirtualGateway"),
    ("security.policy.gloo.solo.io/v2", "AccessPolicy"),
)


def _resource(k8s: Any, api_version: str, kind: str, attempts: int = 30) -> Any:
    """The API resource, refreshing discovery while freshly created CRDs get established."""
    for attempt in range(attempts):
        try:
            return k8s.resources.get(api_version=api_version, kind=kind)
        except ResourceNotFoundError:
            if attempt == attempts - 1:
                raise
            k8s.resources.invalidate_cache()
            time.sleep(1)
    raise AssertionError("unreachable")


def _apply_istio_crds(k8s: Any) -> None:
    """Create Istio's CRDs from the fixtures unless the server already serves them."""
    crd_file = ISTIO_FIXTURES / ISTIO_VERSION / "crd-all.gen.yaml"
    assert crd_file.is_file(), f"Istio CRDs not found at {crd_file} (MESHGUARD_ISTIO_FIXTURES)"
    crds = _resource(k8s, "apiextensions.k8s.io/v1", "CustomResourceDefinition")
    for doc in yaml.safe_load_all(crd_file.read_text()):
        if doc and doc.get("kind") == "CustomResourceDefinition":
            with contextlib.suppress(ConflictError):
                crds.create(body=doc)


@pytest.fixture(scope="session")
def crds_ready(k8s: Any) -> None:
    """Istio's CRDs (applied here if missing) and the project's Gloo CRDs are served."""
    k8s.resources.invalidate_cache()  # discovery may be cached from an earlier server state
    try:
        _resource(k8s, "networking.istio.io/v1", "Sidecar", attempts=1)
    except ResourceNotFoundError:
        _apply_istio_crds(k8s)
    for api_version, kind in GROUPS_NEEDED:
        try:
            _resource(k8s, api_version, kind, attempts=15)
        except ResourceNotFoundError:
            pytest.fail(
                f"{kind}.{api_version} is not served: the test control plane must install "
                "Istio's CRDs and the project's Gloo Mesh CRDs"
            )


@pytest.fixture
def prefix(k8s: Any) -> Iterator[str]:
    """A unique name prefix; every namespace starting with it is deleted afterwards."""
    value = f"mgr-{uuid.uuid4().hex[:6]}"
    yield value
    namespaces = _resource(k8s, "v1", "Namespace")
    for item in namespaces.get().items:
        if item.metadata.name.startswith(value):
            with contextlib.suppress(NotFoundError):
                namespaces.delete(name=item.metadata.name)


def description(flavor: str, prefix: str) -> dict[str, Any]:
    """A multi-service description in namespaces of its own (parallel-safe)."""
    return {
        "flavor": flavor,
        "cluster": "cluster-1",
        "services_namespace": f"{prefix}-global",
        "gateway": {"namespace": f"{prefix}-egress"},
        "services": [
            {
                "host": "httpbin.org",
                "ports": [{"number": 443, "protocol": "HTTPS", "name": "https"}],
                "clients": [{"namespace": f"{prefix}-app", "service_account": "productpage"}],
            },
            {  # gloo: a wildcard routed to its ExternalEndpoints (istio refuses wildcards)
                "host": "*.example.com" if flavor == "gloo" else "www.example.com",
                "ports": [
                    {"number": 80, "protocol": "HTTP"},
                    {"number": 443, "protocol": "HTTPS", "client_port": 8443, "sni": "edge.test"},
                ]
                if flavor == "gloo"
                else [{"number": 80, "protocol": "HTTP"}],
                **({"endpoints": ["203.0.113.10", "edge.test"]} if flavor == "gloo" else {}),
            },
            {
                "host": "api.example.org",
                "ports": [
                    {
                        "number": 8443,
                        "protocol": "HTTPS",
                        "client_port": 8080,
                        "sni": "api.example.org",
                    },
                    {"number": 5432, "protocol": "TCP"},
                ],
                "clients": [],
            },
            {"host": "tls.example.net", "ports": [{"number": 443, "protocol": "TLS"}]},
        ],
        "outbound_policy": {"scope": "namespaces", "namespaces": [f"{prefix}-app"]},
        "lockdown": {
            "namespaces": [f"{prefix}-app"],
            "allow": [
                {
                    "namespace": f"{prefix}-db",
                    "pod_selector": {"app": "pg"},
                    "ports": [{"port": 5432}],
                }
            ],
        },
    }


def _contained(rendered: Any, stored: Any, path: str = "spec") -> list[str]:
    """Where ``stored`` lost or changed something ``rendered`` set (server defaults allowed)."""
    if isinstance(rendered, dict):
        if not isinstance(stored, dict):
            return [f"{path}: stored {stored!r}"]
        return [
            problem
            for key, value in rendered.items()
            for problem in _contained(value, stored.get(key), f"{path}.{key}")
        ]
    if isinstance(rendered, list):
        if not isinstance(stored, list) or len(stored) != len(rendered):
            return [f"{path}: stored {stored!r}"]
        return [
            problem
            for i, (mine, theirs) in enumerate(zip(rendered, stored))
            for problem in _contained(mine, theirs, f"{path}[{i}]")
        ]
    return [] if rendered == stored else [f"{path}: rendered {rendered!r}, stored {stored!r}"]


def _ensure_namespace(k8s: Any, name: str) -> None:
    with contextlib.suppress(ConflictError):
        _resource(k8s, "v1", "Namespace").create(
            body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        )


def _create_and_read_back(k8s: Any, obj: dict[str, Any]) -> dict[str, Any]:
    resource = _resource(k8s, obj["apiVersion"], obj["kind"])
    namespace = obj["metadata"].get("namespace")
    resource.create(body=obj, namespace=namespace)
    return resource.get(name=obj["metadata"]["name"], namespace=namespace).to_dict()


@pytest.mark.parametrize("flavor", ["gloo", "istio"])
def test_server_accepts_and_stores_every_rendered_object(
    k8s: Any, crds_ready: None, prefix: str, flavor: str
) -> None:
    spec = description(flavor, prefix)
    spec["gateway"]["access_log"] = True
    plan = build_plan(spec)
    namespace_objects = [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": ns["name"], "labels": ns["labels"]},
        }
        for ns in plan["namespaces"]
    ]
    objects = namespace_objects + plan["objects"]
    kinds = {obj["kind"] for obj in objects}
    expected = {"Namespace", "Sidecar", "NetworkPolicy", "Telemetry"} | (
        {"VirtualGateway", "ExternalService", "ExternalEndpoint", "AccessPolicy"}
        if flavor == "gloo"
        else {"Gateway", "DestinationRule", "ServiceEntry", "VirtualService", "AuthorizationPolicy"}
    )
    assert kinds == expected

    namespaces = [obj for obj in objects if obj["kind"] == "Namespace"]
    others = [obj for obj in objects if obj["kind"] != "Namespace"]
    for obj in namespaces:
        stored = _create_and_read_back(k8s, obj)
        assert stored["metadata"]["labels"] == obj["metadata"]["labels"]
    for name in sorted({obj["metadata"]["namespace"] for obj in others}):
        _ensure_namespace(k8s, name)

    problems = []
    for obj in others:
        stored = _create_and_read_back(k8s, obj)
        where = f"{obj['kind']} {obj['metadata']['namespace']}/{obj['metadata']['name']}"
        labels = stored["metadata"]["labels"]
        assert labels[MANAGED_BY_LABEL] == MANAGED_BY, where
        assert labels[COMPONENT_LABEL] == obj["metadata"]["labels"][COMPONENT_LABEL], where
        problems += [f"{where}: {p}" for p in _contained(obj["spec"], stored.get("spec"))]
    assert problems == []

    listed = _resource(k8s, "v1", "Namespace").get(
        label_selector=f"{MANAGED_BY_LABEL}={MANAGED_BY}"
    )
    assert {f"{prefix}-global", f"{prefix}-egress"} <= {i.metadata.name for i in listed.items}


def test_server_rejects_what_the_schema_forbids(k8s: Any, crds_ready: None, prefix: str) -> None:
    """The comparison above is meaningful: Istio's schema is enforced by this server."""
    [entry] = [
        obj
        for obj in build_plan(description("istio", prefix), "routes")["objects"]
        if obj["kind"] == "ServiceEntry" and obj["metadata"]["name"] == "httpbin.org"
    ]
    _ensure_namespace(k8s, entry["metadata"]["namespace"])
    entry["spec"]["resolution"] = "BOGUS"
    with pytest.raises(Exception, match="resolution"):
        _create_and_read_back(k8s, entry)
