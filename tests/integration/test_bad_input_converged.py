"""The second phase of test_bad_input: the same kinds of invalid input against a cluster that
is already converged from the example description. Nothing changes: not one object (same
resourceVersions), no new Helm revision (the gateway release stays at its deployed
revision, with no orphan objects beside it), and the next good run still changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from test_bad_input import CASES, cluster_snapshot, failed_task

pytestmark = pytest.mark.integration

# one case per stage that can refuse: schema of the description, a typo, a refusal that
# protects the cluster, the chart's values schema, and what only the API server rejects
PICKED = (
    "port-too-big",
    "gateway-key-typo",
    "unknown-variable",
    "lockdown-kube-system",
    "gateway-reserved-port",
    "chart-kind",
    "api-service-type",
)


@pytest.fixture(scope="module")
def converged(k8s: Any, run_playbook_module: Any) -> Iterator[None]:
    assert run_playbook_module("molecule/shared/prepare.yml").returncode == 0
    proc = run_playbook_module("playbooks/site.yml")
    assert proc.returncode == 0, proc.stdout[-3000:]
    yield
    run_playbook_module("playbooks/teardown.yml")


@pytest.mark.parametrize(
    ("extra_vars", "field", "value"),
    [c[1:] for c in CASES if c[0] in PICKED],
    ids=[c[0] for c in CASES if c[0] in PICKED],
)
def test_invalid_input_changes_nothing_on_a_converged_cluster(
    extra_vars: dict[str, Any],
    field: str,
    value: str,
    run_playbook: Any,
    k8s: Any,
    kubeconfig: str,
    gateway_chart: dict[str, str],
    converged: None,
) -> None:
    if field.startswith("values.") and not gateway_chart.get("MESHGUARD_GATEWAY_SCHEMA"):
        pytest.skip("the gateway chart has no values.schema.json (hack/chart.sh)")
    before = cluster_snapshot(k8s, kubeconfig)
    assert [(r[1], r[3]) for r in before["helm"]] == [("istio-egressgateway", "deployed")]

    proc = run_playbook("playbooks/site.yml", extra_vars)

    assert proc.returncode != 0, proc.stdout[-3000:]
    assert proc.stats["localhost"]["changed"] == 0
    assert failed_task(proc.stdout) == "Apply the plan of the egress description"
    assert field in proc.stdout and value in proc.stdout, proc.stdout[-3000:]
    assert cluster_snapshot(k8s, kubeconfig) == before
    rerun = run_playbook("playbooks/site.yml")
    assert rerun.returncode == 0 and rerun.stats["localhost"]["changed"] == 0, rerun.stdout[-3000:]
