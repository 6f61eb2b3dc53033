"""REGISTRY_ONLY where it takes effect: the mesh-wide Sidecar goes to istiod's
``meshConfig.rootNamespace`` (read from the mesh ConfigMap); another namespace is refused
before any write, and a namespace's own Sidecar that overrides the mode is reported."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

pytestmark = pytest.mark.integration
MESH = "istio"  # the unrevisioned mesh ConfigMap in istiod's namespace


@pytest.fixture
def prepared(run_playbook: Any, k8s: Any) -> Iterator[Any]:
    assert run_playbook("molecule/shared/prepare.yml").returncode == 0
    config_maps = k8s.resources.get(api_version="v1", kind="ConfigMap")
    yield config_maps
    with contextlib.suppress(Exception):
        config_maps.delete(name=MESH, namespace="istio-system")
    run_playbook("playbooks/teardown.yml")


def mesh_config(config_maps: Any, mesh: str) -> None:
    body = {"metadata": {"name": MESH, "namespace": "istio-system"}, "data": {"mesh": mesh}}
    config_maps.create(body=body, namespace="istio-system")


def test_a_root_namespace_other_than_the_meshs_is_refused(run_playbook: Any, prepared: Any) -> None:
    mesh_config(prepared, "rootNamespace: istio-config\naccessLogFile: /dev/stdout\n")
    proc = run_playbook("playbooks/site.yml")
    assert proc.returncode != 0
    assert (
        "outbound_policy.root_namespace: the mesh's root namespace is 'istio-config'" in proc.stdout
    )
    assert "ConfigMap istio-system/istio" in proc.stdout
    assert "nothing was written" in proc.stdout


def test_the_meshs_root_namespace_passes_and_overrides_are_reported(
    run_playbook: Any, prepared: Any, k8s: Any
) -> None:
    mesh_config(prepared, "rootNamespace: istio-system\n")
    sidecars = k8s.resources.get(api_version="networking.istio.io/v1", kind="Sidecar")
    users = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "Sidecar",
        "metadata": {"name": "default", "namespace": "bookinfo"},
        "spec": {"outboundTrafficPolicy": {"mode": "ALLOW_ANY"}},
    }
    sidecars.create(body=users, namespace="bookinfo")
    try:
        proc = run_playbook("playbooks/site.yml")
        assert proc.returncode == 0, proc.stdout[-3000:]
        text = " ".join((proc.stdout + proc.stderr).split())
        overridden = "Sidecar/bookinfo/default sets outboundTrafficPolicy.mode ALLOW_ANY"
        assert f"{overridden}: it overrides REGISTRY_ONLY for its namespace" in text
        # the user's Sidecar is reported, not touched
        assert (
            sidecars.get(name="default", namespace="bookinfo").spec.outboundTrafficPolicy.mode
            == "ALLOW_ANY"
        )
    finally:
        sidecars.delete(name="default", namespace="bookinfo")


def test_without_a_mesh_config_the_root_namespace_is_reported_unchecked(
    run_playbook: Any, prepared: Any
) -> None:
    proc = run_playbook("playbooks/site.yml")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "the root namespace 'istio-system' could not be checked" in " ".join(
        (proc.stdout + proc.stderr).split()
    )
