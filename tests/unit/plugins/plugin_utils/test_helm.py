"""Helm storage and release recovery: the storage Secret's encoding round-trips, a manifest
lists its objects, and a stranded release gets the recovery its history calls for."""

from __future__ import annotations

import base64
import gzip
import json
from typing import Any

import pytest

from ansible_collections.meshguard.egress.plugins.plugin_utils.converge import _recovery
from ansible_collections.meshguard.egress.plugins.plugin_utils.helm import (
    decode_release,
    encode_release,
    manifest_objects,
)


def revision(version: int, status: str) -> dict[str, Any]:
    return {"name": "gw", "namespace": "ns", "version": version, "info": {"status": status}}


def test_encoded_release_is_what_helm_stores_and_decodes_back() -> None:
    release = {**revision(3, "failed"), "config": {"kind": "DaemonSet"}, "manifest": "---"}
    encoded = encode_release({**release, "_labels": {"owner": "helm"}, "_secret": "s"})
    # Secret data (base64) of Helm's own format: base64(gzip(JSON))
    stored = base64.b64decode(base64.b64decode(encoded))
    assert stored[:2] == b"\x1f\x8b"
    assert json.loads(gzip.decompress(stored)) == release
    assert decode_release({"data": {"release": encoded}}) == release


def test_manifest_objects_default_the_release_namespace() -> None:
    manifest = (
        "---\n# Source: gateway/templates/gateway.tpl\napiVersion: v1\nkind: ServiceAccount\n"
        "metadata:\n  name: gw\n---\napiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n"
        "  name: gw\n  namespace: other\n---\n"
    )
    assert manifest_objects(manifest, "ns") == {
        ("v1", "ServiceAccount", "ns", "gw"),
        ("apps/v1", "DaemonSet", "other", "gw"),
    }
    assert manifest_objects("", "ns") == set()


@pytest.mark.parametrize(
    ("history", "expected"),
    [
        (
            [revision(1, "pending-install")],
            {"status": "pending-install", "revision": 1, "how": "uninstall"},
        ),
        ([revision(1, "failed")], {"status": "failed", "revision": 1, "how": "uninstall"}),
        (  # superseded alone is not a live revision to upgrade from
            [revision(1, "superseded"), revision(2, "pending-upgrade")],
            {"status": "pending-upgrade", "revision": 2, "how": "uninstall"},
        ),
        (
            [revision(1, "deployed"), revision(2, "pending-upgrade")],
            {
                "status": "pending-upgrade",
                "revision": 2,
                "how": "upgrade",
                "from_revision": 1,
                "stranded_revisions": [2],
            },
        ),
        (  # everything after the last deployed revision is stranded
            [
                revision(1, "superseded"),
                revision(2, "deployed"),
                revision(3, "failed"),
                revision(4, "pending-rollback"),
            ],
            {
                "status": "pending-rollback",
                "revision": 4,
                "how": "upgrade",
                "from_revision": 2,
                "stranded_revisions": [3, 4],
            },
        ),
    ],
)
def test_recovery_follows_the_history(
    history: list[dict[str, Any]], expected: dict[str, Any]
) -> None:
    assert _recovery(history) == expected
