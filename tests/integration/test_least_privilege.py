"""The shipped RBAC (playbooks/rbac) is enough for converge and teardown, and needed.

The local control plane enforces RBAC; its static-token user ``meshguard-automation`` has
no rights until playbooks/rbac/apply.yml binds the collection's ClusterRoles to it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

AUTOMATION = "meshguard-automation"
MANAGED = "app.kubernetes.io/managed-by=meshguard.egress"
# what the run reads first: any kind of the plan (reads run in parallel)
PLAN_RESOURCES = {
    "namespaces",
    "nodes",
    "secrets",
    "sidecars",
    "telemetries",
    "virtualgateways",
    "externalservices",
    "accesspolicies",
    "networkpolicies",
    "serviceentries",
    "virtualservices",
    "destinationrules",
    "gateways",
    "authorizationpolicies",
}
GRANT = {"rbac_subject_kind": "User", "rbac_subject_name": AUTOMATION}
FORBIDDEN = re.compile(
    rf'is forbidden: User \\*"{AUTOMATION}\\*" cannot (\w+) resource \\*"([\w/]+)\\*"'
)


@pytest.fixture
def automation_kubeconfig(testbed_dir: Path | None) -> str:
    if testbed_dir is None:
        pytest.skip("needs the local control plane's static-token user meshguard-automation")
    import testbed

    return testbed.LocalControlPlane(testbed_dir).kubeconfig_for(AUTOMATION)


@pytest.fixture
def prepared(run_playbook: Any, k8s: Any) -> Iterator[None]:
    """prepare.yml as admin; afterwards (as admin) the RBAC and anything left are removed."""
    assert run_playbook("molecule/shared/prepare.yml").returncode == 0
    yield
    run_playbook("playbooks/rbac/apply.yml", {**GRANT, "rbac_state": "absent"})
    if managed_namespaces(k8s):
        run_playbook("playbooks/teardown.yml")


def managed_namespaces(k8s: Any) -> list[str]:
    namespaces = k8s.resources.get(api_version="v1", kind="Namespace")
    return [ns.metadata.name for ns in namespaces.get(label_selector=MANAGED).items]


def assert_ok(proc: Any) -> int:
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return proc.stats["localhost"]["changed"]


def test_converge_and_teardown_need_the_shipped_rbac_and_nothing_more(
    run_playbook: Any, automation_kubeconfig: str, prepared: None, k8s: Any
) -> None:
    as_automation = {"kubeconfig_path": automation_kubeconfig}

    denied = run_playbook("playbooks/site.yml", None, **as_automation)
    assert denied.returncode != 0
    match = FORBIDDEN.search(denied.stdout)
    assert match, f"no 403 naming the resource:\n{denied.stdout[-3000:]}"
    assert match.group(2) in PLAN_RESOURCES, match.group(0)

    assert assert_ok(run_playbook("playbooks/rbac/apply.yml", GRANT)) > 0
    assert assert_ok(run_playbook("playbooks/site.yml", None, **as_automation)) > 0
    assert sorted(managed_namespaces(k8s)) == ["global", "istio-egress"]
    assert assert_ok(run_playbook("playbooks/site.yml", None, **as_automation)) == 0
    # teardown ends by proving that no object carrying the managed-by label is left
    assert assert_ok(run_playbook("playbooks/teardown.yml", None, **as_automation)) > 0
    assert managed_namespaces(k8s) == []
