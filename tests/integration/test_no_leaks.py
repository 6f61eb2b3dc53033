"""Bearer tokens never appear in the output of ``ansible-playbook -vvv``, whether they come
from the kubeconfig or from ``K8S_AUTH_API_KEY``, in successful and in failed runs.

Check mode: every module still authenticates (lookups, server-side dry runs, helm), and the
shared cluster is left as it was.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def token_of(kubeconfig: str) -> str:
    config = yaml.safe_load(Path(kubeconfig).read_text())
    token = config["users"][0]["user"]["token"]
    assert len(token) >= 16
    return token


@pytest.fixture
def kubeconfigs(testbed_dir: Path | None) -> dict[str, str]:
    if testbed_dir is None:
        pytest.skip("needs the local control plane's static-token users")
    import testbed

    control_plane = testbed.LocalControlPlane(testbed_dir)
    return {user: control_plane.kubeconfig_for(user) for user in testbed.USERS}


@pytest.fixture
def prepared(run_playbook: Any) -> None:
    assert run_playbook("molecule/shared/prepare.yml").returncode == 0


def assert_no_token(proc: Any, *tokens: str) -> None:
    output = proc.stdout + proc.stderr
    assert ("PLAYBOOK: " in output and "META:" in output) or "task path:" in output, "not -vvv"
    for token in tokens:
        assert token not in output
        assert token[:12] not in output  # no partial leak either


def test_kubeconfig_token_stays_out_of_a_verbose_run(
    run_playbook: Any, kubeconfigs: dict[str, str], prepared: None
) -> None:
    proc = run_playbook("playbooks/site.yml", None, "--check", "-vvv")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert_no_token(proc, token_of(kubeconfigs["admin"]))


def test_api_key_stays_out_of_verbose_runs_that_pass_and_fail(
    run_playbook: Any, kubeconfigs: dict[str, str], prepared: None, monkeypatch: Any, tmp_path: Path
) -> None:
    admin, automation = (
        token_of(kubeconfigs["admin"]),
        token_of(kubeconfigs["meshguard-automation"]),
    )
    # server and CA only: the token comes from K8S_AUTH_API_KEY
    without_token = yaml.safe_load(Path(kubeconfigs["nobody"]).read_text())
    without_token["users"][0]["user"] = {}
    (tmp_path / "kubeconfig").write_text(yaml.safe_dump(without_token))
    server_only = {"kubeconfig_path": str(tmp_path / "kubeconfig")}
    nobody = token_of(kubeconfigs["nobody"])

    monkeypatch.setenv("K8S_AUTH_API_KEY", admin)
    passed = run_playbook("playbooks/site.yml", None, "--check", "-vvv", **server_only)
    assert passed.returncode == 0, passed.stdout[-3000:]
    assert_no_token(passed, admin, nobody)

    broken_chart = {"egress_override_zz_broken": {"gateway": {"chart_ref": "/nonexistent/chart"}}}
    helm_failed = run_playbook("playbooks/site.yml", broken_chart, "--check", "-vvv", **server_only)
    assert helm_failed.returncode != 0
    assert "/nonexistent/chart" in helm_failed.stdout, helm_failed.stdout[-3000:]
    assert_no_token(helm_failed, admin, nobody)

    monkeypatch.setenv("K8S_AUTH_API_KEY", automation)
    forbidden = run_playbook("playbooks/site.yml", None, "--check", "-vvv", **server_only)
    assert forbidden.returncode != 0
    assert '\\"meshguard-automation\\" cannot' in forbidden.stdout, forbidden.stdout[-3000:]
    assert_no_token(forbidden, automation, nobody)
