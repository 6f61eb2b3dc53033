"""outbound_policy with method istiod_helm: the mode lands in istiod's Helm values, every
other value is kept, a re-run changes nothing, and state absent reverts to ALLOW_ANY.
istiod's chart is not available offline; the stand-in chart plays the installed release."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
HELM = str(Path(sys.executable).parent / "helm")
CHART = str(ROOT / "tests" / "charts" / "gateway")


def _values(kubeconfig: str, namespace: str) -> dict:
    out = subprocess.run(
        [HELM, "get", "values", "istiod", "-n", namespace, "-o", "json"],
        env=dict(os.environ, KUBECONFIG=kubeconfig),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out)


def _play(tmp_path: Path, namespace: str, state: str) -> str:
    play = [
        {
            "name": "outbound policy through istiod's values",
            "hosts": "localhost",
            "gather_facts": False,
            "vars": {
                "egress_override_istiod": {
                    "outbound_policy": {
                        "method": "istiod_helm",
                        "istiod": {"namespace": namespace, "chart_ref": CHART},
                    }
                }
            },
            "roles": [{"role": "meshguard.egress.outbound_policy", "outbound_policy_state": state}],
        }
    ]
    path = tmp_path / f"outbound-{state}.yml"
    path.write_text(yaml.safe_dump(play))
    return str(path)


def test_mode_is_set_in_istiod_values_and_reverted(kubeconfig, namespace, run_playbook, tmp_path):
    subprocess.run(
        [HELM, "install", "istiod", CHART, "-n", namespace, "--set", "pilot.replicaCount=3"],
        env=dict(os.environ, KUBECONFIG=kubeconfig),
        capture_output=True,
        check=True,
    )
    present = _play(tmp_path, namespace, "present")

    first = run_playbook(present)
    assert first.returncode == 0, first.stdout[-3000:]
    assert first.stats["localhost"]["changed"] == 1
    values = _values(kubeconfig, namespace)
    assert values["meshConfig"]["outboundTrafficPolicy"]["mode"] == "REGISTRY_ONLY"
    assert values["pilot"]["replicaCount"] == 3  # the release's other values are kept

    again = run_playbook(present)
    assert again.returncode == 0
    assert again.stats["localhost"]["changed"] == 0

    revert = run_playbook(_play(tmp_path, namespace, "absent"))
    assert revert.returncode == 0, revert.stdout[-3000:]
    values = _values(kubeconfig, namespace)
    assert values["meshConfig"]["outboundTrafficPolicy"]["mode"] == "ALLOW_ANY"
    assert values["pilot"]["replicaCount"] == 3


def test_missing_release_is_a_clear_error(namespace, run_playbook, tmp_path):
    proc = run_playbook(_play(tmp_path, namespace, "present"))
    assert proc.returncode != 0
    assert "outbound_policy.istiod.release: no Helm release" in proc.stdout
    assert "nothing was written" in proc.stdout
