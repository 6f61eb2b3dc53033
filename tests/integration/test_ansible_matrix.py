"""The tested ansible-core support matrix: the shipped playbooks on every supported version.

For each ansible-core of ``hack/ansible-matrix.sh`` (one virtualenv each, cached under
.venv-matrix/, created by ``make setup``) and each flavor, as ``hack/run.sh`` runs them on
the local control plane: ``molecule/shared/prepare.yml``, then
``ansible-playbook -i playbooks/inventory/example playbooks/site.yml`` and
``playbooks/teardown.yml`` with ``-e @hack/embedded-vars.yml`` and the chart variables. The
objects of the flavor must be there after site.yml and none after teardown.yml.
``meta/runtime.yml``'s ``requires_ansible`` must admit exactly the tested minor versions.

The development venv's ansible-core must be one of the matrix (test_site_playbook.py and
molecule add check mode, idempotence and teardown twice on it). Every version runs here
(about 12 s a case on the local control plane).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DEV_BIN = Path(sys.executable).parent
MANAGED = "app.kubernetes.io/managed-by=meshguard.egress"
FLAVOR_KINDS = {
    "gloo": [
        ("networking.gloo.solo.io/v2", "ExternalService"),
        ("networking.gloo.solo.io/v2", "VirtualGateway"),
        ("security.policy.gloo.solo.io/v2", "AccessPolicy"),
    ],
    "istio": [
        ("networking.istio.io/v1", "ServiceEntry"),
        ("networking.istio.io/v1", "VirtualService"),
        ("networking.istio.io/v1", "Gateway"),
        ("security.istio.io/v1", "AuthorizationPolicy"),
    ],
}
COMMON_KINDS = [("networking.istio.io/v1", "Sidecar"), ("networking.k8s.io/v1", "NetworkPolicy")]


def matrix_versions() -> list[str]:
    out = subprocess.run(
        ["bash", str(ROOT / "hack" / "ansible-matrix.sh"), "--list"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.split()


VERSIONS = matrix_versions()


def _dev_version() -> str:
    from ansible.release import __version__

    return __version__


def test_development_ansible_core_is_in_the_matrix() -> None:
    assert _dev_version() in VERSIONS, (_dev_version(), VERSIONS)


@pytest.fixture(scope="module")
def matrix_venvs() -> dict[str, Path]:
    """version -> virtualenv (the script only creates what make setup has not)."""
    proc = subprocess.run(
        ["bash", str(ROOT / "hack" / "ansible-matrix.sh")],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {line.split()[0]: Path(line.split()[1]) for line in proc.stdout.splitlines()}


def test_requires_ansible_is_what_is_tested() -> None:
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    runtime = yaml.safe_load((ROOT / "meta" / "runtime.yml").read_text())
    spec = SpecifierSet(runtime["requires_ansible"])
    minors = sorted({tuple(Version(v).release[:2]) for v in VERSIONS})
    for major, minor in minors:
        assert f"{major}.{minor}.0" in spec and f"{major}.{minor}.99" in spec
    oldest, newest = minors[0], minors[-1]
    assert f"{oldest[0]}.{oldest[1] - 1}.99" not in spec, "an untested older version is admitted"
    assert f"{newest[0]}.{newest[1] + 1}.0" not in spec, "an untested newer version is admitted"
    assert len(minors) == newest[1] - oldest[1] + 1, "a minor version in between is not tested"


def _managed(k8s, kinds: list[tuple[str, str]]) -> set[tuple[str, str]]:
    found = set()
    for api_version, kind in kinds:
        api = k8s.resources.get(api_version=api_version, kind=kind)
        for item in api.get(label_selector=MANAGED).items:
            found.add((kind, item.metadata.name))
    return found


@pytest.mark.parametrize("flavor", ["gloo", "istio"])
@pytest.mark.parametrize("version", VERSIONS)
def test_site_and_teardown_on_each_ansible_core(
    version: str, flavor: str, matrix_venvs, kubeconfig: str, gateway_chart, k8s, tmp_path: Path
) -> None:
    venv_bin = matrix_venvs[version] / "bin"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "K8S_AUTH_"))}
    env.update(
        gateway_chart,
        # the matrix venv's ansible first; helm from the development venv
        PATH=f"{venv_bin}{os.pathsep}{DEV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".venv" / "collections"),
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"),
        ANSIBLE_NOCOLOR="1",
        K8S_AUTH_KUBECONFIG=kubeconfig,
    )

    def run(*args: str) -> str:
        proc = subprocess.run(
            [str(venv_bin / "ansible-playbook"), *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
        return proc.stdout

    version_out = subprocess.run(
        [str(venv_bin / "ansible-playbook"), "--version"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"[core {version}]" in version_out
    description = ["-i", "playbooks/inventory/example", "-e", "@hack/embedded-vars.yml"]
    description += ["-e", f"egress_flavor={flavor}"]
    kinds = FLAVOR_KINDS[flavor] + COMMON_KINDS
    run("molecule/shared/prepare.yml")
    try:
        run("playbooks/site.yml", *description)
        written = {kind for kind, _name in _managed(k8s, kinds)}
        assert written == {kind for _api_version, kind in kinds}, written
    finally:
        run("playbooks/teardown.yml", *description)
    leftovers = _managed(k8s, kinds + FLAVOR_KINDS["gloo" if flavor == "istio" else "istio"])
    assert leftovers == set()
