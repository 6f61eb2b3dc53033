"""Ownership on a shared cluster: two descriptions side by side, a user's object that the
plan would overwrite, and a gateway two descriptions would share.

Team A is the example description (``egress``); team B (``team-b``) has another host, its own
gateway release and namespace, its own services and lockdown namespaces, and a
namespace-scoped outbound policy.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.meshguard.egress.plugins.plugin_utils.plan import MANAGED_KINDS

pytestmark = pytest.mark.integration
HELM = Path(sys.executable).parent / "helm"
OWNER = "meshguard.io/description"

TEAM_B = {
    "egress_name": "team-b",
    "egress_services_namespace": "global-b",
    "egress_override_zz_team_b": {
        "gateway": {
            "namespace": "istio-egress-b",
            "name": "istio-egressgateway-b",
            "selector": {"istio": "egressgateway-b"},
            "virtual_gateway_name": "egress-vg-b",
            "istio_gateway_name": "meshguard-egress-b",
            "dedicated_nodes": [],
        }
    },
    "egress_services": [
        {
            "host": "example.org",
            "ports": [{"number": 443, "protocol": "HTTPS"}],
            "clients": [{"namespace": "team-b", "service_account": "app"}],
            "access_policy_name": "example-access",
        }
    ],
    "egress_outbound_policy": {"scope": "namespaces", "namespaces": ["team-b"]},
    "egress_lockdown": {"namespaces": ["team-b"]},
}


def owned(k8s: Any, name: str) -> dict[tuple[str, str, str], str]:
    """Every object labelled as owned by description ``name`` -> its resourceVersion."""
    found = {}
    for api_version, kind in [*MANAGED_KINDS, ("v1", "Namespace")]:
        api = k8s.resources.get(api_version=api_version, kind=kind)
        for item in api.get(label_selector=f"{OWNER}={name}").items:
            found[(kind, item.metadata.namespace or "", item.metadata.name)] = (
                item.metadata.resourceVersion
            )
    return found


def releases(kubeconfig: str) -> dict[tuple[str, str], str]:
    listed = subprocess.run(
        [str(HELM), "list", "--all-namespaces", "--all", "--output", "json"],
        env={"KUBECONFIG": kubeconfig, "HOME": str(Path.home())},
        capture_output=True,
        text=True,
        check=True,
    )
    return {(r["namespace"], r["name"]): r["status"] for r in json.loads(listed.stdout)}


def ok(proc: Any) -> Any:
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return proc


@pytest.fixture
def prepared(run_playbook: Any, k8s: Any) -> Iterator[None]:
    ok(run_playbook("molecule/shared/prepare.yml"))
    namespaces = k8s.resources.get(api_version="v1", kind="Namespace")
    from kubernetes.dynamic.exceptions import ConflictError

    with contextlib.suppress(ConflictError):
        namespaces.create(body={"metadata": {"name": "team-b"}})
    yield
    run_playbook("playbooks/teardown.yml", TEAM_B)
    run_playbook("playbooks/teardown.yml")


def test_tearing_down_one_description_leaves_the_other_intact(
    run_playbook: Any, k8s: Any, kubeconfig: str, prepared: None
) -> None:
    ok(run_playbook("playbooks/site.yml"))
    ok(run_playbook("playbooks/site.yml", TEAM_B))
    team_b = owned(k8s, "team-b")
    kinds = {kind for kind, _ns, _name in team_b}
    assert {
        "ExternalService",
        "VirtualGateway",
        "AccessPolicy",
        "NetworkPolicy",
        "Sidecar",
    } <= kinds
    assert ("Sidecar", "team-b", "default") in team_b
    assert owned(k8s, "egress")
    assert releases(kubeconfig)[("istio-egress-b", "istio-egressgateway-b")] == "deployed"

    ok(run_playbook("playbooks/teardown.yml"))

    assert owned(k8s, "egress") == {}
    assert owned(k8s, "team-b") == team_b  # not one object touched (same resourceVersions)
    assert ("istio-egress", "istio-egressgateway") not in releases(kubeconfig)
    assert releases(kubeconfig)[("istio-egress-b", "istio-egressgateway-b")] == "deployed"
    # and B's re-run still has nothing to do
    assert ok(run_playbook("playbooks/site.yml", TEAM_B)).stats["localhost"]["changed"] == 0


def test_a_users_object_is_never_merged_into_unless_adopted(
    run_playbook: Any, k8s: Any, prepared: None
) -> None:
    sidecars = k8s.resources.get(api_version="networking.istio.io/v1", kind="Sidecar")
    users = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "Sidecar",
        "metadata": {"name": "default", "namespace": "istio-system", "labels": {"team": "mesh"}},
        "spec": {"outboundTrafficPolicy": {"mode": "ALLOW_ANY"}},
    }
    sidecars.create(body=users, namespace="istio-system")
    try:
        before = sidecars.get(name="default", namespace="istio-system").metadata.resourceVersion

        refused = run_playbook("playbooks/site.yml")
        assert refused.returncode != 0
        assert (
            "Sidecar/istio-system/default already exists and was not written by this"
            in refused.stdout
        )
        assert "adopt" in refused.stdout
        assert owned(k8s, "egress") == {}  # nothing at all was written
        assert (
            sidecars.get(name="default", namespace="istio-system").metadata.resourceVersion
            == before
        )

        ok(run_playbook("playbooks/site.yml", {"egress_adopt": True}))
        adopted = sidecars.get(name="default", namespace="istio-system")
        assert adopted.metadata.labels[OWNER] == "egress"
        assert adopted.spec.outboundTrafficPolicy.mode == "REGISTRY_ONLY"
    finally:
        with contextlib.suppress(Exception):
            sidecars.delete(name="default", namespace="istio-system")


def test_two_descriptions_cannot_share_a_gateway_object(
    run_playbook: Any, k8s: Any, prepared: None
) -> None:
    ok(run_playbook("playbooks/site.yml"))
    before = owned(k8s, "egress")
    sharing = {**TEAM_B, "egress_override_zz_team_b": {"gateway": {"dedicated_nodes": []}}}
    refused = run_playbook("playbooks/site.yml", sharing)
    assert refused.returncode != 0
    assert (
        "VirtualGateway/istio-egress/egress-vg already exists and belongs to description 'egress'"
        in refused.stdout
    )
    assert owned(k8s, "team-b") == {}
    assert owned(k8s, "egress") == before
