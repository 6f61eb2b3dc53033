# Copyright (c) meshguard.egress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Bring a cluster to a plan (``present``) or remove what a description owns (``absent``).

The order is always: read everything the plan touches -> decide every change -> preflight
every change on the API server (server-side dry run of each object, the chart's rendered
manifests, ownership, nodes) -> stop here in check mode -> write. A preflight failure
writes nothing. Only objects labelled ``meshguard.io/description=<name>`` are changed or
deleted; an object of the plan that exists without that label stops the run (before any
write) unless the description sets ``adopt: true``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from typing import Any

from ansible_collections.meshguard.egress.plugins.plugin_utils.description import (
    DescriptionError,
)
from ansible_collections.meshguard.egress.plugins.plugin_utils.helm import (
    PENDING,
    Helm,
    HelmError,
    local_chart_version,
    manifest_objects,
    mark_failed,
    release_history,
    summary,
)
from ansible_collections.meshguard.egress.plugins.plugin_utils.kube import (
    Kube,
    KubeError,
    clean,
    contains,
    ref,
)
from ansible_collections.meshguard.egress.plugins.plugin_utils.plan import MANAGED_KINDS
from ansible_collections.meshguard.egress.plugins.plugin_utils.render import (
    COMPONENT_LABEL,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    NAMESPACE_NAME_LABEL,
    OWNER_LABEL,
    check_values,
)

HASH_ANNOTATION = "meshguard.io/plan-hash"
PINNED_BY_ANNOTATION = "meshguard.io/gateway-pinned-by"
NAMESPACE_DELETE_TIMEOUT = 180


class PreflightError(Exception):
    """The plan would fail: nothing was written. ``problems`` lists every reason."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


class WriteError(Exception):
    """A write failed after the preflight passed; ``done`` lists what was already written."""

    def __init__(self, message: str, done: list[dict[str, str]]):
        super().__init__(message)
        self.done = done


def plan_hash(obj: dict[str, Any]) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _with_hash(obj: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    out["metadata"].setdefault("annotations", {})[HASH_ANNOTATION] = plan_hash(obj)
    return out


def _labels(obj: dict[str, Any] | None) -> dict[str, str]:
    return ((obj or {}).get("metadata") or {}).get("labels") or {}


def _annotations(obj: dict[str, Any] | None) -> dict[str, str]:
    return ((obj or {}).get("metadata") or {}).get("annotations") or {}


def _ownership(live: dict[str, Any] | None, name: str) -> str:
    """``ours``, ``legacy`` (written by an older version of the collection, no owner label),
    ``other:<description>`` or ``foreign`` (not written by the collection)."""
    labels = _labels(live)
    if labels.get(OWNER_LABEL) == name:
        return "ours"
    if labels.get(MANAGED_BY_LABEL) == MANAGED_BY:
        owner = labels.get(OWNER_LABEL)
        return f"other:{owner}" if owner else "legacy"
    return "foreign"


def _ownership_problem(what: str, ownership: str) -> str:
    if ownership.startswith("other:"):
        return (
            f"{what} already exists and belongs to description {ownership[6:]!r}: two "
            "descriptions cannot write the same object; give one of them other names "
            "(for example another gateway, or its own lockdown namespaces)"
        )
    return (
        f"{what} already exists and was not written by this description; it is left as it "
        "is. Rename the planned object, remove the existing one, or set adopt: true "
        "(egress_adopt) to take it over"
    )


def _recovery(history: list[dict[str, Any]]) -> dict[str, Any]:
    """How to recover a release whose latest revision is pending or failed (a killed or
    failed helm run). With a ``deployed`` revision: mark the revisions after it that are
    still pending ``failed`` (a pending revision holds Helm's lock), upgrade (Helm upgrades
    from the deployed revision), then delete what only those stranded revisions created. A
    release that never deployed (a first install killed or failed) is uninstalled and
    installed again. Helm's own ``rollback`` is not used: it fails on an object that is live
    but missing from the stranded revision's manifest (a rename the failed run did not
    finish)."""
    latest = history[-1]
    status = (latest.get("info") or {}).get("status")
    deployed = [r for r in history[:-1] if (r.get("info") or {}).get("status") == "deployed"]
    recovery: dict[str, Any] = {"status": status, "revision": latest.get("version")}
    if not deployed:
        return {**recovery, "how": "uninstall"}
    good = deployed[-1]["version"]
    stranded = [r["version"] for r in history if r.get("version", 0) > good]
    return {**recovery, "how": "upgrade", "from_revision": good, "stranded_revisions": stranded}


def _recovery_words(recovery: dict[str, Any]) -> str:
    if recovery["how"] == "uninstall":
        return "uninstalling it and installing it again"
    return f"upgrading from deployed revision {recovery['from_revision']}"


class Converger:
    """One run: ``present()`` or ``absent()`` returns the result dict of the action."""

    def __init__(
        self,
        kube: Kube,
        helm: Helm | None,
        plan: dict[str, Any],
        check_mode: bool = False,
        diff: bool = False,
    ):
        self.kube = kube
        self.helm = helm
        self.plan = plan
        self.name = plan["name"]
        self.check_mode = check_mode
        self.want_diff = diff
        self.changes: list[dict[str, str]] = []
        self.diffs: list[dict[str, Any]] = []
        self.problems: list[str] = []
        self.done: list[dict[str, str]] = []

    # ------------------------------------------------------------------ bookkeeping

    def _helm(self) -> Helm:
        if self.helm is None:
            raise HelmError("the plan has a Helm release but no helm binary was given")
        return self.helm

    def _change(self, what: str, action: str, before: Any = None, after: Any = None) -> None:
        self.changes.append({"object": what, "action": action})
        if self.want_diff:
            self.diffs.append(
                {
                    "before_header": what,
                    "after_header": what,
                    "before": before if before is not None else {},
                    "after": after if after is not None else {},
                }
            )

    def _result(self, **extra: Any) -> dict[str, Any]:
        result = {
            "changed": bool(self.changes),
            "changes": self.changes,
            "plan_name": self.name,
            "concerns": self.plan["concerns"],
            **extra,
        }
        if self.want_diff:
            result["diff"] = self.diffs
        return result

    def _owned_selector(self) -> str:
        components = ",".join(self.plan["concerns"])
        return f"{OWNER_LABEL}={self.name},{COMPONENT_LABEL} in ({components})"

    def _owned_objects(self) -> list[dict[str, Any]]:
        selector = self._owned_selector()
        results = self.kube.parallel(
            lambda kind: self.kube.list(kind[0], kind[1], None, selector), list(MANAGED_KINDS)
        )
        owned = []
        for (api_version, kind), items in zip(MANAGED_KINDS, results):
            if isinstance(items, KubeError):
                if items.status in (403, 404):
                    continue  # kind not installed / not readable: nothing of ours there
                raise items
            owned += [{**item, "apiVersion": api_version, "kind": kind} for item in items]
        return owned

    # ------------------------------------------------------------------ present

    def present(self) -> dict[str, Any]:
        plan = self.plan
        desired = [_with_hash(obj) for obj in plan["objects"]]
        live_objects = self.kube.parallel(
            lambda o: self.kube.get(
                o["apiVersion"], o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]
            ),
            desired,
        )
        namespace_names = sorted(
            {ns["name"] for ns in plan["namespaces"]}
            | set(plan["label_namespaces"])
            | {o["metadata"]["namespace"] for o in desired if o["metadata"].get("namespace")}
        )
        live_namespaces = dict(
            zip(
                namespace_names,
                self.kube.parallel(
                    lambda n: self.kube.get("v1", "Namespace", None, n), namespace_names
                ),
            )
        )
        self._raise_read_errors(live_objects + list(live_namespaces.values()))
        owned = self._owned_objects()

        namespace_writes = self._plan_namespaces(live_namespaces)
        object_writes = self._plan_objects(desired, live_objects)
        planned = {ref(o) for o in desired}
        prunes = [o for o in owned if ref(o) not in planned]
        for obj in prunes:
            self._change(ref(obj), "delete (no longer in the description)", clean(obj), {})
        label_writes = self._plan_namespace_labels(live_namespaces)
        node_writes = self._plan_nodes()
        release_action = self._plan_release(live_namespaces)
        istiod_action = self._plan_istiod()

        warnings = self._check_outbound_scope()
        self._preflight(object_writes, live_namespaces, release_action)
        if self.problems:
            raise PreflightError(self.problems)
        if self.check_mode:
            return self._result(release=release_action.get("summary"), warnings=warnings)

        try:
            for ns in namespace_writes:
                self._write(
                    f"Namespace/{ns['metadata']['name']}", lambda ns=ns: self.kube.create(ns)
                )
            for name, body in node_writes:
                self._write(
                    f"Node/{name}", lambda n=name, b=body: self.kube.patch("v1", "Node", None, n, b)
                )
            self._converge_release(release_action)
            self._converge_istiod(istiod_action)
            results = self.kube.parallel(self.kube.apply, [obj for obj, _live in object_writes])
            for (obj, _live), outcome in zip(object_writes, results):
                if isinstance(outcome, KubeError):
                    raise WriteError(f"{ref(obj)}: {outcome}", self.done)
                self.done.append({"object": ref(obj), "action": "applied"})
            for name in label_writes:
                body = {"metadata": {"labels": {NAMESPACE_NAME_LABEL: name}}}
                self._write(
                    f"Namespace/{name}",
                    lambda n=name, b=body: self.kube.patch("v1", "Namespace", None, n, b),
                )
            for obj in prunes:
                self._write(ref(obj), lambda o=obj: self.kube.delete(o))
        except (KubeError, HelmError) as exc:
            raise WriteError(str(exc), self.done) from exc
        return self._result(release=release_action.get("summary"), warnings=warnings)

    def _write(self, what: str, call: Any) -> None:
        try:
            call()
        except (KubeError, HelmError) as exc:
            raise WriteError(f"{what}: {exc}", self.done) from exc
        self.done.append({"object": what, "action": "written"})

    def _raise_read_errors(self, results: list[Any]) -> None:
        errors = [r for r in results if isinstance(r, KubeError)]
        if errors:
            raise PreflightError([f"cannot read the cluster: {e}" for e in errors])

    def _plan_namespaces(self, live: dict[str, Any]) -> list[dict[str, Any]]:
        writes = []
        for ns in self.plan["namespaces"]:
            if live.get(ns["name"]) is not None:
                continue  # an existing namespace is never merged into, ours or not
            obj = {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": ns["name"], "labels": ns["labels"]},
            }
            writes.append(obj)
            self._change(f"Namespace/{ns['name']}", "create", {}, obj)
        return writes

    def _plan_objects(self, desired: list[dict[str, Any]], live_objects: list[Any]) -> list[tuple]:
        writes = []
        for obj, live in zip(desired, live_objects):
            what = ref(obj)
            if live is None:
                writes.append((obj, None))
                self._change(what, "create", {}, clean(obj))
                continue
            ownership = _ownership(live, self.name)
            if ownership not in ("ours", "legacy") and not self.plan["adopt"]:
                self.problems.append(_ownership_problem(what, ownership))
                continue
            annotations = live.get("metadata", {}).get("annotations") or {}
            same_hash = (
                annotations.get(HASH_ANNOTATION) == obj["metadata"]["annotations"][HASH_ANNOTATION]
            )
            if ownership == "ours" and same_hash and contains(live, obj):
                continue
            writes.append((obj, live))
            action = "update" if ownership == "ours" else f"adopt ({ownership})"
            self._change(what, action, clean(live), clean(obj))
        return writes

    def _plan_namespace_labels(self, live: dict[str, Any]) -> list[str]:
        writes = []
        for name in self.plan["label_namespaces"]:
            ns = live.get(name)
            if ns is None or _labels(ns).get(NAMESPACE_NAME_LABEL) == name:
                continue  # created with the label, or already labelled
            writes.append(name)
            self._change(f"Namespace/{name}", f"label {NAMESPACE_NAME_LABEL}={name}")
        return writes

    def _plan_nodes(self) -> list[tuple[str, dict[str, Any]]]:
        """Label (and taint) the dedicated nodes, annotated with the owner; unpin the nodes
        this description pinned earlier that it no longer lists."""
        nodes = self.plan.get("nodes") or {}
        if not nodes:
            return []
        writes = []
        label, names = nodes["label"], nodes["names"]
        for index, name in enumerate(names):
            node = self.kube.get("v1", "Node", None, name)
            if node is None:
                self.problems.append(
                    f"gateway.dedicated_nodes[{index}]: no node named {name!r} in the cluster"
                )
                continue
            pinned_by = _annotations(node).get(PINNED_BY_ANNOTATION)
            if _labels(node).get(label) == "true" and pinned_by not in (None, self.name):
                self.problems.append(
                    f"gateway.dedicated_nodes[{index}]: node {name!r} is already pinned for "
                    f"description {pinned_by!r} with label {label!r}; use another "
                    "gateway.node_label or another node"
                )
                continue
            body: dict[str, Any] = {}
            if _labels(node).get(label) != "true" or pinned_by != self.name:
                body["metadata"] = {
                    "labels": {label: "true"},
                    "annotations": {PINNED_BY_ANNOTATION: self.name},
                }
            taints = (node.get("spec") or {}).get("taints") or []
            taint = {"key": label, "value": "true", "effect": "NoSchedule"}
            has_taint = any(
                t.get("key") == label and t.get("effect") == "NoSchedule" for t in taints
            )
            if nodes["taint"] and not has_taint:
                body["spec"] = {"taints": [*taints, taint]}
            if body:
                writes.append((name, body))
                self._change(f"Node/{name}", "label" + (" and taint" if "spec" in body else ""))
        writes += self._unpin(lambda node: node["metadata"]["name"] not in names)
        return writes

    def _unpin(self, wanted: Any) -> list[tuple[str, dict[str, Any]]]:
        """Remove the gateway label, taint and owner annotation from the nodes this
        description pinned (``wanted(node)`` picks which)."""
        nodes = self.plan.get("nodes")
        if not nodes:
            return []
        label = nodes["label"]
        writes = []
        for node in self.kube.list("v1", "Node", None, label):
            name = node["metadata"]["name"]
            pinned_by = _annotations(node).get(PINNED_BY_ANNOTATION)
            legacy = pinned_by is None and name in nodes["names"]
            if not (pinned_by == self.name or legacy) or not wanted(node):
                continue  # another description's (or the user's) node
            taints = (node.get("spec") or {}).get("taints") or []
            kept = [t for t in taints if t.get("key") != label]
            body: dict[str, Any] = {
                "metadata": {"labels": {label: None}, "annotations": {PINNED_BY_ANNOTATION: None}}
            }
            if len(kept) != len(taints):
                body["spec"] = {"taints": kept}
            writes.append((name, body))
            self._change(
                f"Node/{name}",
                "remove the gateway label" + (" and taint" if "spec" in body else ""),
            )
        return writes

    # ------------------------------------------------------------------ release

    def _plan_release(self, live_namespaces: dict[str, Any]) -> dict[str, Any]:
        release = self.plan.get("release")
        if not release:
            return {}
        history = release_history(self.kube, release["namespace"], release["name"])
        latest = summary(history[-1]) if history else None
        version = release["chart_version"] or local_chart_version(release["chart_ref"])
        if not version and latest:
            version = latest["chart_version"]  # keep what is installed: never upgrade implicitly
        what = f"HelmRelease/{release['namespace']}/{release['name']}"
        action: dict[str, Any] = {
            "release": release,
            "version": version,
            "what": what,
            "latest": latest,
        }
        if release["values_schema"]:
            try:
                check_values(release["values"], release["values_schema"])
            except DescriptionError as exc:
                self.problems += [f"gateway values: {line}" for line in str(exc).splitlines()]
        if latest is not None:
            owner = latest["labels"].get(OWNER_LABEL)
            namespace_ours = _ownership(live_namespaces.get(release["namespace"]), self.name) in (
                "ours",
                "legacy",
            )
            if owner not in (None, self.name) or (
                owner is None and not namespace_ours and not self.plan["adopt"]
            ):
                state = f"other:{owner}" if owner else "foreign"
                self.problems.append(_ownership_problem(what, state))
                return {}
            if latest["status"] in PENDING or latest["status"] == "failed":
                action["recover"] = _recovery(history)
                action["history"] = history
            unchanged = (
                latest["status"] == "deployed"
                and latest["chart_version"] == version
                and _canonical(latest["values"]) == _canonical(release["values"])
                and owner == self.name
            )
            if unchanged:
                return {"summary": latest}
        action["summary"] = {
            "revision": (latest or {}).get("revision"),
            "chart_version": version,
            "status": "planned",
        }
        before = (
            {"chart_version": latest["chart_version"], "values": latest["values"]} if latest else {}
        )
        after = {"chart_version": version, "values": release["values"]}
        recover = action.get("recover")
        label = "install" if latest is None else "upgrade"
        if recover:
            action["summary"]["recovery"] = recover
            label = f"recover ({recover['status']} revision {recover['revision']}) by "
            label += _recovery_words(recover)
        self._change(what, label, before, after)
        action["write"] = True
        return action

    def _converge_release(self, action: dict[str, Any]) -> None:
        if not action.get("write"):
            return
        release = action["release"]
        recover = action.get("recover")
        if recover and recover["how"] == "uninstall":
            self._helm().uninstall(release["namespace"], release["name"])
            self.done.append(
                {"object": action["what"], "action": f"uninstalled the {recover['status']} release"}
            )
        stranded = []
        if recover and recover["how"] == "upgrade":
            stranded = [
                r for r in action["history"] if r["version"] in recover["stranded_revisions"]
            ]
            for rel in stranded:
                state = (rel.get("info") or {}).get("status")
                if state not in PENDING:
                    continue
                why = (
                    f"Interrupted while {state}: marked failed by meshguard.egress "
                    f"({self.name}) to recover the release"
                )
                mark_failed(self.kube, rel, why)
                self.done.append(
                    {
                        "object": action["what"],
                        "action": f"marked revision {rel['version']} ({state}) failed",
                    }
                )
        self._helm().upgrade(
            release, action["version"], {OWNER_LABEL: self.name, MANAGED_BY_LABEL: MANAGED_BY}
        )
        self.done.append({"object": action["what"], "action": "installed"})
        if stranded:
            recover["removed"] = self._remove_leftovers(release, stranded)

    def _remove_leftovers(
        self, release: dict[str, Any], stranded: list[dict[str, Any]]
    ) -> list[str]:
        """Delete what only the stranded revisions created: in their manifests, not in the
        release now deployed, live, and annotated by Helm as this release's. Helm's upgrade
        does not (it diffs the deployed revision against the new one)."""
        namespace, name = release["namespace"], release["name"]
        deployed = release_history(self.kube, namespace, name)[-1]
        # by kind and name, not apiVersion: the same object under a chart's newer apiVersion
        # is the deployed release's
        keep = {o[1:] for o in manifest_objects(deployed.get("manifest", ""), namespace)}
        left = set().union(*(manifest_objects(r.get("manifest", ""), namespace) for r in stranded))
        removed = []
        for api_version, kind, obj_namespace, obj_name in sorted(left):
            if (kind, obj_namespace, obj_name) in keep:
                continue
            live = self.kube.get(api_version, kind, obj_namespace, obj_name)
            annotations = ((live or {}).get("metadata") or {}).get("annotations") or {}
            if (
                annotations.get("meta.helm.sh/release-name") != name
                or annotations.get("meta.helm.sh/release-namespace") != namespace
            ):
                continue  # gone already, or not this release's: never touched
            what = ref({"kind": kind, "metadata": {"namespace": obj_namespace, "name": obj_name}})
            self._write(
                what,
                lambda o=live, a=api_version, k=kind: self.kube.delete(
                    {**o, "apiVersion": a, "kind": k}
                ),
            )
            self.done[-1]["action"] = "deleted (left by an interrupted or failed revision)"
            removed.append(what)
        return removed

    def _plan_istiod(self) -> dict[str, Any]:
        istiod = self.plan.get("istiod")
        if not istiod:
            return {}
        return self._istiod_action(istiod, istiod["mode"])

    def _istiod_action(self, istiod: dict[str, Any], mode: str) -> dict[str, Any]:
        history = release_history(self.kube, istiod["namespace"], istiod["release"])
        latest = summary(history[-1]) if history else None
        what = f"HelmRelease/{istiod['namespace']}/{istiod['release']}"
        if latest is None:
            self.problems.append(
                f"outbound_policy.istiod.release: no Helm release {istiod['release']!r} in "
                f"namespace {istiod['namespace']!r}"
            )
            return {}
        current = (
            (latest["values"].get("meshConfig") or {}).get("outboundTrafficPolicy") or {}
        ).get("mode")
        if current == mode:
            return {}
        values = copy.deepcopy(latest["values"])
        values.setdefault("meshConfig", {}).setdefault("outboundTrafficPolicy", {})["mode"] = mode
        version = istiod["chart_version"] or latest["chart_version"]
        self._change(
            what, f"set meshConfig.outboundTrafficPolicy.mode={mode}", latest["values"], values
        )
        release = {
            "name": istiod["release"],
            "namespace": istiod["namespace"],
            "chart_ref": istiod["chart_ref"],
            "chart_repo_url": istiod["chart_repo_url"],
            "values": values,
            "atomic": False,
            "wait_timeout": 300,
        }
        return {"release": release, "version": version, "what": what, "labels": latest["labels"]}

    def _converge_istiod(self, action: dict[str, Any]) -> None:
        if not action:
            return
        labels = {
            k: v
            for k, v in action["labels"].items()
            if k not in ("name", "owner", "status", "version", "modifiedAt", "createdAt")
        }
        self._helm().upgrade(action["release"], action["version"], labels)
        self.done.append({"object": action["what"], "action": "upgraded"})

    # ------------------------------------------------------------------ outbound policy

    def _check_outbound_scope(self) -> list[str]:
        """The mesh-wide Sidecar takes effect only in the mesh's root namespace (istiod's
        ``meshConfig.rootNamespace``): refuse another one. Warn about namespaces whose own
        Sidecar overrides the outbound mode."""
        spec = self.plan["description"]
        policy = spec.get("outbound_policy")
        if "outbound_policy" not in self.plan["concerns"] or not policy:
            return []
        warnings = []
        if policy["method"] == "sidecar" and policy["scope"] == "mesh":
            mesh = self._mesh_config(policy["istiod"]["namespace"], spec.get("revision"))
            if mesh is None:
                warnings.append(
                    "no mesh ConfigMap (istio / istio-<revision>) in namespace "
                    f"{policy['istiod']['namespace']!r}: the root namespace "
                    f"{policy['root_namespace']!r} could not be checked"
                )
            else:
                where, config = mesh
                root = config.get("rootNamespace") or policy["istiod"]["namespace"]
                if root != policy["root_namespace"]:
                    self.problems.append(
                        f"outbound_policy.root_namespace: the mesh's root namespace is {root!r} "
                        f"(meshConfig.rootNamespace in ConfigMap {where}); a Sidecar 'default' in "
                        f"{policy['root_namespace']!r} would only affect that namespace "
                        f"(got {policy['root_namespace']!r})"
                    )
        own = {
            (o["metadata"]["namespace"], o["metadata"]["name"])
            for o in self.plan["objects"]
            if o["kind"] == "Sidecar"
        }
        try:
            sidecars = self.kube.list("networking.istio.io/v1", "Sidecar")
        except KubeError:
            sidecars = []
        for sidecar in sidecars:
            meta = sidecar["metadata"]
            mode = ((sidecar.get("spec") or {}).get("outboundTrafficPolicy") or {}).get("mode")
            if (meta.get("namespace"), meta["name"]) in own or mode in (None, policy["mode"]):
                continue
            if (sidecar.get("spec") or {}).get("workloadSelector"):
                scope = "the workloads it selects"
            else:
                scope = "its namespace"
            warnings.append(
                f"Sidecar/{meta.get('namespace')}/{meta['name']} sets outboundTrafficPolicy.mode "
                f"{mode}: it overrides {policy['mode']} for {scope}"
            )
        return warnings

    def _mesh_config(
        self, namespace: str, revision: str | None
    ) -> tuple[str, dict[str, Any]] | None:
        import yaml

        names = [f"istio-{revision}", "istio"] if revision else ["istio"]
        for name in names:
            try:
                config_map = self.kube.get("v1", "ConfigMap", namespace, name)
            except KubeError:
                return None
            if config_map is not None:
                mesh = yaml.safe_load((config_map.get("data") or {}).get("mesh") or "") or {}
                return f"{namespace}/{name}", mesh if isinstance(mesh, dict) else {}
        return None

    # ------------------------------------------------------------------ preflight

    def _substitute_namespace(self, live_namespaces: dict[str, Any]) -> str | None:
        existing = [name for name, ns in live_namespaces.items() if ns is not None]
        return existing[0] if existing else None

    def _preflight(
        self,
        object_writes: list[tuple],
        live_namespaces: dict[str, Any],
        release_action: dict[str, Any],
    ) -> None:
        """Server-side dry run of every object the run writes (and of the chart's manifests),
        in a namespace that exists when the object's own one is created by this run."""
        substitute = self._substitute_namespace(live_namespaces)
        created = {ns["name"] for ns in self.plan["namespaces"]}
        for obj, _live in object_writes:
            namespace = obj["metadata"].get("namespace")
            if namespace and live_namespaces.get(namespace) is None and namespace not in created:
                self.problems.append(
                    f"{ref(obj)}: namespace {namespace!r} does not exist, and this description "
                    "does not create it (the mesh or the application should)"
                )
        candidates = [obj for obj, _live in object_writes]
        if release_action.get("write") and self.helm is not None:
            release = release_action["release"]
            try:
                manifests = self._helm().template(release, release_action["version"])
            except HelmError as exc:
                self.problems.append(f"{release_action['what']}: {exc}")
                manifests = []
            for manifest in manifests:
                manifest.setdefault("metadata", {}).setdefault("namespace", release["namespace"])
            candidates += [m for m in manifests if m["kind"] not in ("CustomResourceDefinition",)]

        def dry_run(obj: dict[str, Any]) -> Any:
            namespace = obj["metadata"].get("namespace")
            trial = obj
            if namespace and live_namespaces.get(namespace) is None:
                if substitute is None:
                    return None  # nothing to validate against; the real run will tell
                trial = copy.deepcopy(obj)
                trial["metadata"]["namespace"] = substitute
            return self.kube.apply(trial, dry_run=True)

        for obj, outcome in zip(candidates, self.kube.parallel(dry_run, candidates)):
            if isinstance(outcome, KubeError) and outcome.status not in (404,):
                self.problems.append(f"{ref(obj)}: the API server rejects it: {outcome}")

    # ------------------------------------------------------------------ absent

    def absent(self) -> dict[str, Any]:
        plan = self.plan
        owned = self._owned_objects()
        owned_refs = {ref(o) for o in owned}
        # objects of the plan written by an older version (no owner label) are ours too
        legacy = []
        for obj in plan["objects"]:
            if ref(obj) in owned_refs:
                continue
            live = self.kube.get(
                obj["apiVersion"],
                obj["kind"],
                obj["metadata"].get("namespace"),
                obj["metadata"]["name"],
            )
            if live is not None and _ownership(live, self.name) == "legacy":
                legacy.append({**live, "apiVersion": obj["apiVersion"], "kind": obj["kind"]})
        deletes = owned + legacy
        for obj in deletes:
            self._change(ref(obj), "delete", clean(obj), {})

        namespaces = []
        for ns in plan["namespaces"]:
            live = self.kube.get("v1", "Namespace", None, ns["name"])
            if live is None or (live.get("metadata") or {}).get("deletionTimestamp"):
                continue
            if _ownership(live, self.name) in ("ours", "legacy"):
                namespaces.append(ns["name"])
                self._change(f"Namespace/{ns['name']}", "delete", clean(live), {})

        release_delete = self._plan_release_delete(namespaces)
        node_writes = self._plan_node_unpin()
        istiod_action = (
            self._istiod_action(plan["istiod"], "ALLOW_ANY") if plan.get("istiod") else {}
        )
        if self.problems:
            raise PreflightError(self.problems)
        if self.check_mode:
            return self._result()
        try:
            results = self.kube.parallel(self.kube.delete, deletes)
            for obj, outcome in zip(deletes, results):
                if isinstance(outcome, KubeError):
                    raise WriteError(f"{ref(obj)}: {outcome}", self.done)
                self.done.append({"object": ref(obj), "action": "deleted"})
            if release_delete:
                release = plan["release"]
                self._helm().uninstall(release["namespace"], release["name"])
                self.done.append({"object": release_delete, "action": "uninstalled"})
            for name, body in node_writes:
                self._write(
                    f"Node/{name}", lambda n=name, b=body: self.kube.patch("v1", "Node", None, n, b)
                )
            self._converge_istiod(istiod_action)
            for name in namespaces:
                self._write(
                    f"Namespace/{name}",
                    lambda n=name: self.kube.delete(
                        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}}
                    ),
                )
            self._wait_gone(namespaces)
        except (KubeError, HelmError) as exc:
            raise WriteError(str(exc), self.done) from exc
        return self._result()

    def _plan_release_delete(self, owned_namespaces: list[str]) -> str:
        release = self.plan.get("release")
        if not release:
            return ""
        history = release_history(self.kube, release["namespace"], release["name"])
        if not history:
            return ""
        latest = summary(history[-1]) or {}
        what = f"HelmRelease/{release['namespace']}/{release['name']}"
        owner = latest["labels"].get(OWNER_LABEL)
        if owner == self.name or (owner is None and release["namespace"] in owned_namespaces):
            self._change(
                what,
                "uninstall",
                {"chart_version": latest["chart_version"], "values": latest["values"]},
                {},
            )
            return what
        return ""  # another description's or the user's release: left alone

    def _plan_node_unpin(self) -> list[tuple[str, dict[str, Any]]]:
        return self._unpin(lambda _node: True)

    def _wait_gone(self, namespaces: list[str]) -> None:
        deadline = time.monotonic() + NAMESPACE_DELETE_TIMEOUT
        pending = list(namespaces)
        while pending:
            pending = [n for n in pending if self.kube.get("v1", "Namespace", None, n) is not None]
            if not pending:
                return
            if time.monotonic() > deadline:
                raise WriteError(
                    f"namespaces still terminating after {NAMESPACE_DELETE_TIMEOUT}s: {pending}",
                    self.done,
                )
            time.sleep(0.5)


def _canonical(values: Any) -> str:
    return json.dumps(values, sort_keys=True)
