"""Session-wide fixtures: a Kubernetes cluster to test against.

Which cluster, in this order:
1. ``MESHGUARD_KUBECONFIG`` -- a real cluster of the user's (documented in the README);
   tests create and delete their own namespaces there;
2. ``MESHGUARD_TESTBED_DIR`` -- a local control plane that hack/test.sh already started
   (``python hack/testbed.py start --dir DIR``);
3. otherwise a local control plane (hack/testbed.py) started for this pytest session and
   stopped at its end.
"""

from __future__ import annotations

import contextlib
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "hack"))

from testbed import LocalControlPlane  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "integration: needs the local control plane (or MESHGUARD_KUBECONFIG), "
        "a real Envoy or Helm",
    )


def _running_testbed(directory: str) -> Path:
    control_plane = LocalControlPlane(directory)
    alive = control_plane.alive()
    if not alive or not all(alive.values()):
        raise pytest.UsageError(
            f"MESHGUARD_TESTBED_DIR={directory} is not a running control plane ({alive}); "
            "start one with 'python hack/testbed.py start --dir DIR' or unset the variable"
        )
    return control_plane.dir


@pytest.fixture(scope="session")
def testbed_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path | None]:
    """The local control plane's directory (None on a user's cluster)."""
    if os.environ.get("MESHGUARD_KUBECONFIG"):
        yield None
    elif os.environ.get("MESHGUARD_TESTBED_DIR"):
        yield _running_testbed(os.environ["MESHGUARD_TESTBED_DIR"])
    else:
        with LocalControlPlane(tmp_path_factory.mktemp("testbed")) as control_plane:
            yield control_plane.dir


@pytest.fixture(scope="session")
def kubeconfig(testbed_dir: Path | None) -> str:
    """Path of an admin kubeconfig for the cluster under test."""
    if testbed_dir is None:
        return os.environ["MESHGUARD_KUBECONFIG"]
    return str(testbed_dir / "kubeconfig")


@pytest.fixture(scope="session")
def k8s(kubeconfig: str) -> Any:
    """A ``kubernetes.dynamic.DynamicClient`` for ``kubeconfig``."""
    from kubernetes import config, dynamic

    return dynamic.DynamicClient(config.new_client_from_config(kubeconfig))


@pytest.fixture
def namespace(k8s: Any) -> Iterator[str]:
    """A fresh, uniquely named namespace, deleted afterwards."""
    from kubernetes.dynamic.exceptions import NotFoundError

    name = f"mg-test-{uuid.uuid4().hex[:8]}"
    api = k8s.resources.get(api_version="v1", kind="Namespace")
    api.create(body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    try:
        yield name
    finally:
        with contextlib.suppress(NotFoundError):
            api.delete(name=name)
