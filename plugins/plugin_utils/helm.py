# Copyright (c) meshguard.egress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Helm releases: read a release from its storage Secrets (no helm process for a release
that is already as planned), and run the helm CLI only to change one."""

from __future__ import annotations

import base64
import gzip
import json
import os
import subprocess
import tempfile
from typing import Any

import yaml

from ansible_collections.meshguard.egress.plugins.plugin_utils.kube import Kube

PENDING = ("pending-install", "pending-upgrade", "pending-rollback")


class HelmError(Exception):
    """helm failed; the message carries its stderr."""


def decode_release(secret: dict[str, Any]) -> dict[str, Any]:
    """Helm 3 stores a release as base64(gzip(JSON)) in ``data.release`` (itself base64)."""
    raw = base64.b64decode(base64.b64decode(secret["data"]["release"]))
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    return json.loads(raw)


def encode_release(release: dict[str, Any]) -> str:
    """The inverse of ``decode_release``: the Secret's ``data.release`` value."""
    body = {k: v for k, v in release.items() if not k.startswith("_")}
    raw = gzip.compress(json.dumps(body, separators=(",", ":")).encode())
    return base64.b64encode(base64.b64encode(raw)).decode()


def release_history(kube: Kube, namespace: str, name: str) -> list[dict[str, Any]]:
    """Every stored revision of a release, oldest first, with the Secret's labels and name."""
    secrets = kube.list("v1", "Secret", namespace, f"owner=helm,name={name}")
    history = []
    for secret in secrets:
        release = decode_release(secret)
        release["_labels"] = secret["metadata"].get("labels") or {}
        release["_secret"] = secret["metadata"]["name"]
        history.append(release)
    return sorted(history, key=lambda r: r.get("version", 0))


def mark_failed(kube: Kube, release: dict[str, Any], why: str) -> None:
    """Record a stored revision as ``failed``, as Helm records an upgrade or rollback that
    did not finish: the status label and the encoded release's ``info.status``. A revision
    left pending (its helm process was killed) keeps Helm's lock until then."""
    marked = {**release, "info": {**(release.get("info") or {}), "status": "failed"}}
    marked["info"]["description"] = why
    body = {
        "metadata": {"labels": {"status": "failed"}},
        "data": {"release": encode_release(marked)},
    }
    kube.patch("v1", "Secret", release["namespace"], release["_secret"], body)


def manifest_objects(manifest: str, namespace: str) -> set[tuple[str, str, str, str]]:
    """(apiVersion, kind, namespace, name) of every object of a release's manifest."""
    objects = set()
    for doc in yaml.safe_load_all(manifest or ""):
        if isinstance(doc, dict) and doc.get("kind") and (doc.get("metadata") or {}).get("name"):
            meta = doc["metadata"]
            objects.add(
                (doc["apiVersion"], doc["kind"], meta.get("namespace") or namespace, meta["name"])
            )
    return objects


def summary(release: dict[str, Any] | None) -> dict[str, Any] | None:
    if release is None:
        return None
    meta = (release.get("chart") or {}).get("metadata") or {}
    return {
        "revision": release.get("version"),
        "status": (release.get("info") or {}).get("status"),
        "chart": meta.get("name"),
        "chart_version": meta.get("version"),
        "values": release.get("config") or {},
        "labels": release.get("_labels") or {},
    }


def local_chart_version(chart_ref: str) -> str:
    """The version in a local chart directory's Chart.yaml, or '' for a remote chart."""
    chart_file = os.path.join(chart_ref, "Chart.yaml")
    if not os.path.isfile(chart_file):
        return ""
    with open(chart_file, encoding="utf-8") as handle:
        return str((yaml.safe_load(handle) or {}).get("version") or "")


class Helm:
    """The helm CLI with the run's cluster credentials."""

    def __init__(self, binary: str, auth: dict[str, Any], env: dict[str, str] | None = None):
        self.binary = binary
        self.env = env
        self.secrets = tuple(str(auth[k]) for k in ("api_key", "password") if auth.get(k))
        self.flags: list[str] = []
        if auth.get("kubeconfig"):
            self.flags += ["--kubeconfig", str(auth["kubeconfig"])]
        if auth.get("context"):
            self.flags += ["--kube-context", str(auth["context"])]
        if auth.get("host"):
            self.flags += ["--kube-apiserver", str(auth["host"])]
        if auth.get("api_key"):
            self.flags += ["--kube-token", str(auth["api_key"])]
        if auth.get("ca_cert"):
            self.flags += ["--kube-ca-file", str(auth["ca_cert"])]
        if auth.get("validate_certs") is False:
            self.flags += ["--kube-insecure-skip-tls-verify"]

    def run(self, *args: str) -> str:
        cmd = [self.binary, *args, *self.flags]
        try:
            proc = subprocess.run(
                cmd, capture_output=True, text=True, check=False, env=self.env, timeout=1800
            )
        except OSError as exc:
            raise HelmError(f"cannot run helm ({self.binary}): {exc}") from exc
        if proc.returncode != 0:
            message = (proc.stderr or proc.stdout).strip()
            for secret in self.secrets:
                message = message.replace(secret, "********")
            raise HelmError(f"helm {args[0]} failed: {message}")
        return proc.stdout

    def _chart_args(self, release: dict[str, Any], version: str) -> list[str]:
        args = [release["chart_ref"]]
        if release["chart_repo_url"]:
            args += ["--repo", release["chart_repo_url"]]
        if version and not os.path.isdir(release["chart_ref"]):
            args += ["--version", version]
        return args

    def _values_file(self, values: dict[str, Any]) -> str:
        handle = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)  # noqa: SIM115
        with handle:
            json.dump(values, handle)
        return handle.name

    def template(self, release: dict[str, Any], version: str) -> list[dict[str, Any]]:
        """The manifests the chart renders with the planned values."""
        values = self._values_file(release["values"])
        try:
            out = self.run(
                "template",
                release["name"],
                *self._chart_args(release, version),
                "--namespace",
                release["namespace"],
                "--values",
                values,
            )
        finally:
            os.unlink(values)
        return [doc for doc in yaml.safe_load_all(out) if isinstance(doc, dict) and doc.get("kind")]

    def upgrade(self, release: dict[str, Any], version: str, labels: dict[str, str]) -> None:
        values = self._values_file(release["values"])
        args = [
            "upgrade",
            "--install",
            release["name"],
            *self._chart_args(release, version),
            "--namespace",
            release["namespace"],
            "--values",
            values,
        ]
        if labels:
            args += ["--labels", ",".join(f"{k}={v}" for k, v in sorted(labels.items()))]
        if release["atomic"]:
            args += ["--atomic", "--wait", "--timeout", f"{release['wait_timeout']}s"]
        try:
            self.run(*args)
        finally:
            os.unlink(values)

    def uninstall(self, namespace: str, name: str, wait: bool = True) -> None:
        args = ["uninstall", name, "--namespace", namespace]
        if wait:
            args += ["--wait"]
        self.run(*args)
