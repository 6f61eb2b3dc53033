# Copyright: meshguard.egress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Egress audit: pure checks over the objects read from a cluster.

Input is an *inventory*: ``{kind: [object, ...]}`` with the objects as the API returns them
(plain dicts), for the kinds in :data:`KINDS`, plus the set of kinds whose CRD is not
installed. Output is a list of :class:`Finding` (stable ``id``, ``severity``, ``message``,
the ``objects`` involved as kind/namespace/name, and the ``fix``). Nothing here talks to a
cluster; ``plugins/modules/egress_audit.py`` reads the objects and calls :func:`audit`.

What Istio does that the checks rely on (Istio 1.20-1.24):

- The mesh configuration is the ``mesh`` key of ConfigMap ``istio`` (``istio-<rev>`` for a
  revision) in istiod's namespace. ``outboundTrafficPolicy.mode`` defaults to ``ALLOW_ANY``,
  ``rootNamespace`` to istiod's namespace, ``accessLogFile`` to empty (no access log).
- Exactly one Sidecar applies to a proxy, fields are not merged: one with a
  ``workloadSelector`` in its namespace, else the namespace's one without selector, else the
  root namespace's one without selector. A Sidecar without ``outboundTrafficPolicy`` takes
  the mode of the *mesh configuration*, not of the root Sidecar it replaces.
- An ALLOW AuthorizationPolicy on a workload denies every request no rule matches.
- A NetworkPolicy selecting a pod for Egress allows only what the union of the rules of all
  such policies allows; pods no Egress policy selects can send anywhere.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

SEVERITIES = ("info", "warning", "error", "critical")
ALLOW_ANY = "ALLOW_ANY"
REGISTRY_ONLY = "REGISTRY_ONLY"
MESH_CONFIG_KEY = "mesh"
INJECTION_LABEL = "istio-injection"
REVISION_LABEL = "istio.io/rev"
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "meshguard.egress"
OWNER_LABEL = "meshguard.io/description"  # which description owns an object (the plan sets it)
SIDECAR_CONTAINER = "istio-proxy"
SIDECAR_STATUS_ANNOTATION = "sidecar.istio.io/status"
DRY_RUN_ANNOTATION = "istio.io/dry-run"
ISTIOD_XDS_PORT = 15012
DNS_PORT = 53
DNS_PORT_NAMES = ("dns", "dns-tcp")

# The kinds the audit reads: kind -> (API group, versions in order of preference).
KINDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "Namespace": ("", ("v1",)),
    "Pod": ("", ("v1",)),
    "ConfigMap": ("", ("v1",)),
    "NetworkPolicy": ("networking.k8s.io", ("v1",)),
    "Sidecar": ("networking.istio.io", ("v1", "v1beta1", "v1alpha3")),
    "ServiceEntry": ("networking.istio.io", ("v1", "v1beta1", "v1alpha3")),
    "VirtualService": ("networking.istio.io", ("v1", "v1beta1", "v1alpha3")),
    "DestinationRule": ("networking.istio.io", ("v1", "v1beta1", "v1alpha3")),
    "Gateway": ("networking.istio.io", ("v1", "v1beta1", "v1alpha3")),
    "AuthorizationPolicy": ("security.istio.io", ("v1", "v1beta1")),
    "Telemetry": ("telemetry.istio.io", ("v1", "v1alpha1")),
    "ExternalService": ("networking.gloo.solo.io", ("v2",)),
    "VirtualGateway": ("networking.gloo.solo.io", ("v2",)),
    "AccessPolicy": ("security.policy.gloo.solo.io", ("v2",)),
}

DEFAULT_OPTIONS: dict[str, Any] = {
    "istiod_namespace": "istio-system",
    "istiod_pod_labels": {"app": "istiod", "istio": "pilot"},
    "dns_namespace": "kube-system",
    "dns_pod_labels": {"k8s-app": "kube-dns"},
    "cluster": None,  # Gloo selectors naming another cluster do not match
    "cluster_domain": "cluster.local",
}


@dataclass(frozen=True)
class Check:
    id: str
    title: str
    fix: str


def _checks(*items: tuple[str, str, str]) -> dict[str, Check]:
    return {item[0]: Check(*item) for item in items}


# Every check, in report order. Each becomes one JUnit testcase; finding ids are check ids.
CHECKS = _checks(
    (
        "audit.incomplete",
        "every kind could be read",
        "Grant the audit account get/list on the kinds named (playbooks/rbac/"
        "audit-clusterrole.yml), or check the API server; the other checks ran without them.",
    ),
    (
        "outbound.mesh_config_missing",
        "the mesh configuration exists",
        "Point istiod_namespace at istiod's namespace; the mesh configuration is the `mesh` "
        "key of ConfigMap `istio` (`istio-<rev>` for a revision) there.",
    ),
    (
        "outbound.mesh_allow_any",
        "the mesh-wide outbound policy is REGISTRY_ONLY",
        "Set `outboundTrafficPolicy.mode: REGISTRY_ONLY` in the mesh configuration (istiod "
        "values `meshConfig`), or a Sidecar `default` without workloadSelector in the root "
        "namespace with that mode (egress_outbound_policy.mode: REGISTRY_ONLY).",
    ),
    (
        "outbound.mesh_config_allow_any",
        "the mesh configuration itself is REGISTRY_ONLY",
        "Also set `meshConfig.outboundTrafficPolicy.mode: REGISTRY_ONLY` (outbound_policy_method"
        "=istiod_helm), so that namespace Sidecars without a mode cannot fall back to ALLOW_ANY.",
    ),
    (
        "outbound.namespace_allow_any",
        "no namespace Sidecar re-opens ALLOW_ANY",
        "Set `outboundTrafficPolicy.mode: REGISTRY_ONLY` in the Sidecar, or delete it so the "
        "root namespace's Sidecar applies.",
    ),
    (
        "outbound.workload_allow_any",
        "no workload Sidecar re-opens ALLOW_ANY",
        "Set `outboundTrafficPolicy.mode: REGISTRY_ONLY` in the Sidecar, or delete it.",
    ),
    (
        "outbound.sidecar_inherits_allow_any",
        "Sidecars without a mode do not fall back to ALLOW_ANY",
        "Add `outboundTrafficPolicy: {mode: REGISTRY_ONLY}` to the Sidecar (it replaces the root "
        "Sidecar and takes the mesh configuration's mode), or set the mesh configuration's mode.",
    ),
    (
        "outbound.sidecar_outside_root",
        "mesh-wide default Sidecars are in the root namespace",
        "Move the Sidecar to the mesh's rootNamespace "
        "(egress_outbound_policy.root_namespace), or delete it.",
    ),
    (
        "routing.service_entry_direct",
        "ServiceEntries are routed through an egress gateway",
        "Add a VirtualService for the host with a `mesh` route to the egress gateway's Service "
        "and a gateway route to the host (the `routes` role writes both), or delete the entry.",
    ),
    (
        "routing.external_service_direct",
        "ExternalServices are routed through an egress gateway",
        "Give every port `egressGatewayRoutes` with `virtualGatewayRefs` to the egress "
        "VirtualGateway (via_gateway: true in the description).",
    ),
    (
        "routing.port_direct",
        "every port of a routed host goes through the gateway",
        "Route the port through the gateway too, or remove it from the ServiceEntry / "
        "ExternalService; keep the lockdown NetworkPolicies that drop direct connections.",
    ),
    (
        "routing.not_exposed",
        "the gateway serves the hosts routed to it",
        "Add the host to the VirtualGateway listener's `exposedExternalServices` (or the "
        "Gateway server's `hosts`); until then requests fail at the gateway.",
    ),
    (
        "routing.wildcard_unroutable",
        "wildcard hosts can be routed",
        "Route a wildcard host to one concrete upstream (a ServiceEntry for a real host, or an "
        "SNI proxy) at the gateway; DNS resolution cannot resolve a wildcard.",
    ),
    (
        "access.host_without_policy",
        "every host the gateway exposes has an access policy",
        "Add an AccessPolicy (Gloo) for the ExternalService or an ALLOW AuthorizationPolicy on "
        "the gateway pods listing the allowed clients (`clients` in the description).",
    ),
    (
        "access.allow_everyone",
        "no access policy allows every client",
        "List the allowed service accounts (`allowedClients` with name/namespace, or "
        "`source.principals`); a rule without a source matches every client.",
    ),
    (
        "lockdown.namespace_without_egress_policy",
        "mesh namespaces have a default-deny egress NetworkPolicy",
        "Add the namespace to `egress_lockdown.namespaces` (a NetworkPolicy with podSelector {} "
        "and policyTypes [Egress] allowing DNS, istiod, the gateway and in-mesh peers).",
    ),
    (
        "lockdown.egress_open",
        "no NetworkPolicy lets mesh pods reach any address",
        "Remove the rule that has no `to` or an ipBlock of 0.0.0.0/0 (or ::/0); allow "
        "in-cluster peers by namespace/pod selector instead.",
    ),
    (
        "lockdown.blocks_dns",
        "egress NetworkPolicies allow DNS",
        "Allow UDP and TCP 53 to the DNS pods (egress_lockdown.dns).",
    ),
    (
        "lockdown.blocks_istiod",
        "egress NetworkPolicies allow istiod",
        "Allow TCP 15012 (and 15010/15014) to istiod's pods (egress_lockdown.istiod).",
    ),
    (
        "lockdown.gateway_namespace_open",
        "only the gateway pods of the gateway namespace reach the internet",
        "Add a default-deny egress NetworkPolicy to the gateway namespace and allow the internet "
        "only to pods with the gateway's labels (the `lockdown` role writes both).",
    ),
    (
        "observability.access_log_off",
        "the egress gateway writes an access log",
        "Set `meshConfig.accessLogFile: /dev/stdout` (JSON `accessLogEncoding` recommended) or "
        "add a Telemetry with `accessLogging` for the gateway.",
    ),
    (
        "drift.missing",
        "every planned object exists",
        "Re-run playbooks/site.yml (it writes the object again).",
    ),
    (
        "drift.changed",
        "owned objects match the plan",
        "Re-run playbooks/site.yml to restore the planned fields, or change the description.",
    ),
    (
        "drift.unplanned",
        "every owned object is in the plan",
        "Delete the object, or add what it expresses to the description.",
    ),
)


@dataclass
class Finding:
    id: str
    severity: str
    message: str
    objects: list[dict[str, str]] = field(default_factory=list)
    fix: str = ""

    def __post_init__(self) -> None:
        if self.id not in CHECKS:
            raise ValueError(f"unknown check id {self.id!r}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"unknown severity {self.severity!r}")
        if not self.fix:
            self.fix = CHECKS[self.id].fix

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "severity": self.severity,
            "message": self.message,
            "objects": [dict(o) for o in self.objects],
            "fix": self.fix,
        }


def severity_rank(severity: str) -> int:
    return SEVERITIES.index(severity)


# --------------------------------------------------------------------------- object helpers


def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.get("metadata") or {}


def _name(obj: dict[str, Any]) -> str:
    return str(_meta(obj).get("name", ""))


def _ns(obj: dict[str, Any]) -> str:
    return str(_meta(obj).get("namespace") or "")


def _labels(obj: dict[str, Any]) -> dict[str, str]:
    return dict(_meta(obj).get("labels") or {})


def _spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec = obj.get("spec")
    return spec if isinstance(spec, dict) else {}


def ref(obj: dict[str, Any], kind: str | None = None) -> dict[str, str]:
    """kind/namespace/name of an object (namespace "" for cluster-scoped ones)."""
    return {"kind": kind or str(obj.get("kind", "")), "namespace": _ns(obj), "name": _name(obj)}


def ref_text(item: dict[str, str]) -> str:
    where = f"{item['namespace']}/" if item.get("namespace") else ""
    return f"{item['kind']}/{where}{item['name']}"


def selector_matches(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """A Kubernetes LabelSelector (matchLabels + matchExpressions); {} matches everything."""
    selector = selector or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def _selects_all(selector: dict[str, Any] | None) -> bool:
    selector = selector or {}
    return not selector.get("matchLabels") and not selector.get("matchExpressions")


def host_matches(pattern: str, host: str) -> bool:
    """Istio host matching: exact, ``*``, or ``*.suffix`` covering ``host`` (also a narrower
    wildcard)."""
    pattern, host = pattern.lower().rstrip("."), host.lower().rstrip(".")
    if pattern in ("*", host):
        return True
    if pattern.startswith("*."):
        suffix = pattern[1:]
        return host.endswith(suffix) and host != suffix[1:]
    return False


def is_wildcard(host: str) -> bool:
    return host.startswith("*")


def _strip_namespace(host: str) -> str:
    """Gateway server hosts are ``namespace/host``."""
    return host.split("/", 1)[1] if "/" in host else host


# --------------------------------------------------------------------------- the cluster model


@dataclass
class MeshConfig:
    name: str  # ConfigMap name ("" when none was found and defaults are assumed)
    namespace: str
    revision: str
    mode: str
    mode_set: bool
    root_namespace: str
    access_log_file: str
    default_access_log_providers: list[str]
    parse_error: str = ""

    def ref(self) -> dict[str, str]:
        return {"kind": "ConfigMap", "namespace": self.namespace, "name": self.name}


@dataclass
class Workload:
    """A (possibly synthetic) pod: namespace and labels."""

    namespace: str
    labels: dict[str, str]
    selector: dict[str, str] | None = None  # the labels it was found by (for gateways)

    @property
    def shown(self) -> dict[str, str]:
        return self.labels if self.selector is None else self.selector


@dataclass
class EgressGateway:
    obj: dict[str, Any]
    kind: str  # Gateway | VirtualGateway
    workloads: list[Workload]
    hosts: list[str]  # hosts served (Gateway) or exposed (VirtualGateway); [] + exposes_all
    exposes_all: bool = False

    def ref(self) -> dict[str, str]:
        return ref(self.obj, self.kind)

    @property
    def namespaces(self) -> list[str]:
        return sorted({w.namespace for w in self.workloads})


def _parse_mesh(text: Any) -> tuple[dict[str, Any], str]:
    if not text:
        return {}, ""
    try:
        import yaml

        data = yaml.safe_load(text)
    except Exception as exc:  # a broken ConfigMap is a finding, not a crash
        return {}, f"cannot parse the mesh configuration: {exc}"
    return (data if isinstance(data, dict) else {}), ""


def mesh_configs(configmaps: list[dict[str, Any]], istiod_namespace: str) -> list[MeshConfig]:
    """Mesh configurations from ConfigMaps ``istio`` / ``istio-<rev>`` with a ``mesh`` key."""
    found = []
    for cm in sorted(configmaps, key=_name):
        name = _name(cm)
        data = cm.get("data") or {}
        if _ns(cm) != istiod_namespace or MESH_CONFIG_KEY not in data:
            continue
        if name != "istio" and not name.startswith("istio-"):
            continue
        mesh, error = _parse_mesh(data.get(MESH_CONFIG_KEY))
        policy = mesh.get("outboundTrafficPolicy") or {}
        mode = policy.get("mode") if isinstance(policy, dict) else None
        providers = (mesh.get("defaultProviders") or {}).get("accessLogging") or []
        found.append(
            MeshConfig(
                name=name,
                namespace=istiod_namespace,
                revision=name[len("istio-") :] if name.startswith("istio-") else "",
                mode=str(mode or ALLOW_ANY),
                mode_set=bool(mode),
                root_namespace=str(mesh.get("rootNamespace") or istiod_namespace),
                access_log_file=str(mesh.get("accessLogFile") or ""),
                default_access_log_providers=[str(p) for p in providers],
                parse_error=error,
            )
        )
    return found


class Cluster:
    """The inventory with the lookups the checks share."""

    def __init__(
        self,
        inventory: dict[str, list[dict[str, Any]]],
        options: dict[str, Any] | None = None,
        missing_kinds: Iterable[str] = (),
    ) -> None:
        self.options = {**DEFAULT_OPTIONS, **(options or {})}
        self.inv = {kind: list(inventory.get(kind) or []) for kind in KINDS}
        self.missing_kinds = set(missing_kinds)
        self.istiod_namespace = self.options["istiod_namespace"]
        self.namespaces = {_name(ns): ns for ns in self.inv["Namespace"]}
        self.pods_by_ns: dict[str, list[dict[str, Any]]] = {}
        for pod in self.inv["Pod"]:
            self.pods_by_ns.setdefault(_ns(pod), []).append(pod)
        self.configs = mesh_configs(self.inv["ConfigMap"], self.istiod_namespace)
        self.configs_found = bool(self.configs)
        if not self.configs:
            self.configs = [
                MeshConfig(
                    name="",
                    namespace=self.istiod_namespace,
                    revision="",
                    mode=ALLOW_ANY,
                    mode_set=False,
                    root_namespace=self.istiod_namespace,
                    access_log_file="",
                    default_access_log_providers=[],
                )
            ]
        self.roots = {c.root_namespace for c in self.configs}
        self.gateways = self._egress_gateways()
        self.gateway_namespaces = {ns for g in self.gateways for ns in g.namespaces}
        self.mesh_namespaces = sorted(
            name
            for name, ns in self.namespaces.items()
            if self._injected(ns)
            and name not in self.roots
            and name != self.istiod_namespace
            and name not in self.gateway_namespaces
        )

    # ---- namespaces and mesh configurations

    def _injected(self, ns: dict[str, Any]) -> bool:
        labels = _labels(ns)
        if labels.get(INJECTION_LABEL) == "disabled":
            return False
        if labels.get(INJECTION_LABEL) == "enabled" or labels.get(REVISION_LABEL):
            return True
        return any(_has_sidecar(pod) for pod in self.pods_by_ns.get(_name(ns), []))

    def config_for(self, namespace: str, labels: dict[str, str] | None = None) -> MeshConfig:
        """The mesh configuration of the istiod a namespace (or pod) belongs to."""
        ns_labels = _labels(self.namespaces.get(namespace, {}))
        revision = (labels or {}).get(REVISION_LABEL) or ns_labels.get(REVISION_LABEL) or ""
        by_revision = {c.revision: c for c in self.configs}
        if revision in by_revision:
            return by_revision[revision]
        if "" in by_revision:
            return by_revision[""]
        return self.configs[0]

    def namespace_labels(self, namespace: str) -> dict[str, str]:
        if namespace in self.namespaces:
            return _labels(self.namespaces[namespace])
        return {NAMESPACE_NAME_LABEL: namespace}  # what Kubernetes >= 1.21 sets

    def pods(self, namespace: str, labels: dict[str, str]) -> list[Workload]:
        """Pods of ``namespace`` carrying ``labels``; a synthetic one when no Pods were read."""
        if not self.inv["Pod"]:
            return [Workload(namespace, dict(labels))]
        found = [
            Workload(namespace, _labels(p))
            for p in self.pods_by_ns.get(namespace, [])
            if all(_labels(p).get(k) == v for k, v in labels.items())
        ]
        return found or [Workload(namespace, dict(labels))]

    # ---- egress gateways

    def external_hosts(self) -> list[str]:
        hosts = []
        for se in self.inv["ServiceEntry"]:
            if _spec(se).get("location", "MESH_EXTERNAL") == "MESH_EXTERNAL":
                hosts += [str(h) for h in _spec(se).get("hosts") or []]
        for es in self.inv["ExternalService"]:
            hosts += [str(h) for h in _spec(es).get("hosts") or []]
        return hosts

    def _egress_gateways(self) -> list[EgressGateway]:
        external = self.external_hosts()
        routed_gateways = set()
        for vs in self.inv["VirtualService"]:
            for gw, dest in _gateway_routes(vs):
                if any(host_matches(dest, h) or host_matches(h, dest) for h in external):
                    routed_gateways.add(gw)
        gateways = []
        for gw in self.inv["Gateway"]:
            hosts = sorted(
                {
                    _strip_namespace(str(h))
                    for server in _spec(gw).get("servers") or []
                    for h in server.get("hosts") or []
                }
            )
            key = f"{_ns(gw)}/{_name(gw)}"
            serves_external = any(
                host_matches(h, e) or host_matches(e, h) for h in hosts for e in external
            )
            if not (serves_external or key in routed_gateways):
                continue
            selector = {str(k): str(v) for k, v in (_spec(gw).get("selector") or {}).items()}
            workloads = self._gateway_workloads(_ns(gw), selector)
            gateways.append(EgressGateway(gw, "Gateway", workloads, hosts))
        referenced = {
            (r.get("namespace") or _ns(es), r.get("name"))
            for es in self.inv["ExternalService"]
            for port in _spec(es).get("ports") or []
            for r in (port.get("egressGatewayRoutes") or {}).get("virtualGatewayRefs") or []
        }
        for vg in self.inv["VirtualGateway"]:
            listeners = _spec(vg).get("listeners") or []
            exposed = [
                e for listener in listeners for e in listener.get("exposedExternalServices") or []
            ]
            exposes_all = any(not listener.get("exposedExternalServices") for listener in listeners)
            if not exposed and (_ns(vg), _name(vg)) not in referenced:
                continue
            workloads = []
            for workload in _spec(vg).get("workloads") or []:
                selector = workload.get("selector") or {}
                if not self._cluster_ok(selector.get("cluster")):
                    continue
                labels = {str(k): str(v) for k, v in (selector.get("labels") or {}).items()}
                workloads += self._gateway_workloads(selector.get("namespace") or _ns(vg), labels)
            hosts = sorted({str(e["host"]) for e in exposed if e.get("host")})
            gateways.append(EgressGateway(vg, "VirtualGateway", workloads, hosts, exposes_all))
        return gateways

    def _gateway_workloads(self, namespace: str, labels: dict[str, str]) -> list[Workload]:
        if self.inv["Pod"]:
            matching = [
                Workload(_ns(p), _labels(p), dict(labels))
                for p in self.inv["Pod"]
                if labels and all(_labels(p).get(k) == v for k, v in labels.items())
            ]
            if matching:
                return matching
        return [Workload(namespace, dict(labels), dict(labels))]

    def _cluster_ok(self, cluster: Any) -> bool:
        wanted = self.options.get("cluster")
        return not (wanted and cluster and cluster != wanted)

    # ---- NetworkPolicies

    def egress_policies(self, namespace: str) -> list[dict[str, Any]]:
        return [
            p for p in self.inv["NetworkPolicy"] if _ns(p) == namespace and _is_egress_policy(p)
        ]

    def policies_selecting(self, workload: Workload) -> list[dict[str, Any]]:
        return [
            p
            for p in self.egress_policies(workload.namespace)
            if selector_matches(_spec(p).get("podSelector"), workload.labels)
        ]

    def peer_matches(self, policy_ns: str, peer: dict[str, Any], target: Workload) -> bool:
        """Whether a NetworkPolicy peer admits ``target`` (an ipBlock is assumed to)."""
        if "ipBlock" in peer:
            return True
        if "namespaceSelector" in peer:
            ns_ok = selector_matches(
                peer.get("namespaceSelector"), self.namespace_labels(target.namespace)
            )
        else:
            ns_ok = target.namespace == policy_ns
        return ns_ok and selector_matches(peer.get("podSelector"), target.labels)


def _has_sidecar(pod: dict[str, Any]) -> bool:
    if SIDECAR_STATUS_ANNOTATION in (_meta(pod).get("annotations") or {}):
        return True
    containers = (_spec(pod).get("containers") or []) + (_spec(pod).get("initContainers") or [])
    return any(c.get("name") == SIDECAR_CONTAINER for c in containers)


def _is_egress_policy(policy: dict[str, Any]) -> bool:
    spec = _spec(policy)
    types = spec.get("policyTypes")
    if types:
        return "Egress" in types
    return "egress" in spec


# --------------------------------------------------------------------------- VirtualService routes


def _routes(vs: dict[str, Any]) -> list[tuple[list[dict[str, Any]], list[str]]]:
    """(match entries, destination hosts) of every http/tls/tcp route."""
    routes = []
    for section in ("http", "tls", "tcp"):
        for route in _spec(vs).get(section) or []:
            dests = [
                str((r.get("destination") or {}).get("host", ""))
                for r in route.get("route") or []
                if (r.get("destination") or {}).get("host")
            ]
            routes.append((list(route.get("match") or []), dests))
    return routes


def _gateway_key(vs: dict[str, Any], name: str) -> str:
    return name if "/" in name else f"{_ns(vs)}/{name}"


def _match_gateways(vs: dict[str, Any], match: dict[str, Any]) -> list[str]:
    gateways = match.get("gateways") or _spec(vs).get("gateways") or ["mesh"]
    return [g if g == "mesh" else _gateway_key(vs, g) for g in gateways]


def _gateway_routes(vs: dict[str, Any]) -> list[tuple[str, str]]:
    """(gateway namespace/name, destination host) of routes bound to a gateway."""
    found = []
    for matches, dests in _routes(vs):
        gateways = set()
        for match in matches or [{}]:
            gateways.update(g for g in _match_gateways(vs, match) if g != "mesh")
        found += [(gw, dest) for gw in sorted(gateways) for dest in dests]
    return found


def _mesh_route_ports(vs: dict[str, Any], is_gateway_host: Callable[[str], bool]) -> set[Any]:
    """Ports whose mesh traffic the VirtualService sends to a gateway (``None`` = all)."""
    ports: set[Any] = set()
    for matches, dests in _routes(vs):
        if not any(is_gateway_host(d) for d in dests):
            continue
        for match in matches or [{}]:
            if "mesh" in _match_gateways(vs, match):
                ports.add(match.get("port"))
    return ports


# --------------------------------------------------------------------------- outbound checks


def check_outbound(cluster: Cluster) -> list[Finding]:
    findings = []
    if not cluster.configs_found:
        findings.append(
            Finding(
                "outbound.mesh_config_missing",
                "warning",
                f"no mesh configuration (ConfigMap istio or istio-<rev> with a `mesh` key) in "
                f"namespace {cluster.istiod_namespace}: assumed Istio's defaults "
                f"(ALLOW_ANY, rootNamespace {cluster.istiod_namespace}, no access log)",
                [{"kind": "Namespace", "namespace": "", "name": cluster.istiod_namespace}],
            )
        )
    for config in cluster.configs:
        if config.parse_error:
            findings.append(
                Finding(
                    "outbound.mesh_config_missing",
                    "warning",
                    f"{ref_text(config.ref())}: {config.parse_error}; assumed defaults",
                    [config.ref()],
                )
            )
    sidecars = cluster.inv["Sidecar"]
    own_sidecar = {_ns(s) for s in sidecars if not _spec(s).get("workloadSelector")}
    for config in cluster.configs:
        members = [ns for ns in cluster.mesh_namespaces if cluster.config_for(ns) is config]
        root = _root_sidecar(sidecars, config.root_namespace)
        root_mode = ((_spec(root).get("outboundTrafficPolicy") or {}).get("mode")) if root else None
        default_mode = root_mode or config.mode
        objects = ([config.ref()] if config.name else []) + ([ref(root, "Sidecar")] if root else [])
        where = ref_text(config.ref()) if config.name else "the default mesh configuration"
        if default_mode == ALLOW_ANY:
            affected = [ns for ns in members if ns not in own_sidecar]
            source = (
                f"root Sidecar {ref_text(ref(root, 'Sidecar'))} sets ALLOW_ANY"
                if root_mode
                else f"{where} {'sets' if config.mode_set else 'defaults to'} ALLOW_ANY and no "
                f"Sidecar without workloadSelector in root namespace {config.root_namespace} "
                "overrides it"
            )
            reach = (
                f"pods in {', '.join(affected)} can reach any external host directly"
                if affected
                else "no mesh namespace uses it now, but every namespace that joins the mesh "
                "without its own Sidecar will"
            )
            findings.append(
                Finding(
                    "outbound.mesh_allow_any",
                    "critical" if affected else "warning",
                    f"mesh-wide outbound policy is ALLOW_ANY ({source}): {reach}",
                    objects + [{"kind": "Namespace", "namespace": "", "name": n} for n in affected],
                )
            )
        elif config.mode == ALLOW_ANY:
            findings.append(
                Finding(
                    "outbound.mesh_config_allow_any",
                    "info",
                    f"{where} {'sets' if config.mode_set else 'defaults to'} ALLOW_ANY; the root "
                    f"Sidecar makes the mesh REGISTRY_ONLY, but a namespace or workload Sidecar "
                    "without outboundTrafficPolicy falls back to ALLOW_ANY",
                    objects,
                )
            )
    findings += _sidecar_overrides(cluster, sidecars)
    return findings


def _root_sidecar(sidecars: list[dict[str, Any]], root_ns: str) -> dict[str, Any] | None:
    """The root namespace's Sidecar without workloadSelector (Istio takes the oldest)."""
    candidates = [s for s in sidecars if _ns(s) == root_ns and not _spec(s).get("workloadSelector")]
    candidates.sort(key=lambda s: (str(_meta(s).get("creationTimestamp") or ""), _name(s)))
    return candidates[0] if candidates else None


def _sidecar_overrides(cluster: Cluster, sidecars: list[dict[str, Any]]) -> list[Finding]:
    findings = []
    for sidecar in sorted(sidecars, key=lambda s: (_ns(s), _name(s))):
        namespace = _ns(sidecar)
        config = cluster.config_for(namespace)
        if namespace == config.root_namespace or namespace in cluster.gateway_namespaces:
            continue
        spec = _spec(sidecar)
        mode = (spec.get("outboundTrafficPolicy") or {}).get("mode")
        selector = spec.get("workloadSelector")
        in_mesh = namespace in cluster.mesh_namespaces
        obj = ref(sidecar, "Sidecar")
        text = ref_text(obj)
        if not selector and _name(sidecar) == "default" and not in_mesh:
            findings.append(
                Finding(
                    "outbound.sidecar_outside_root",
                    "warning",
                    f"{text} looks like a mesh-wide default, but the root namespace is "
                    f"{config.root_namespace}: it applies only to namespace {namespace}, "
                    "which has no sidecar injection",
                    [obj],
                )
            )
        scope = (
            f"workloads {selector.get('labels')} of namespace {namespace}"
            if selector
            else f"namespace {namespace}"
        )
        severity = "error" if in_mesh else "warning"
        later = "" if in_mesh else " (the namespace has no sidecar injection yet)"
        if mode == ALLOW_ANY:
            findings.append(
                Finding(
                    "outbound.workload_allow_any" if selector else "outbound.namespace_allow_any",
                    severity,
                    f"{text} sets ALLOW_ANY for {scope}: its pods can reach any "
                    f"external host directly{later}",
                    [obj],
                )
            )
        elif not mode and config.mode == ALLOW_ANY:
            findings.append(
                Finding(
                    "outbound.sidecar_inherits_allow_any",
                    severity,
                    f"{text} has no outboundTrafficPolicy: it replaces the root Sidecar for "
                    f"{scope} and takes the mesh configuration's ALLOW_ANY{later}",
                    [obj] + ([config.ref()] if config.name else []),
                )
            )
    return findings


# --------------------------------------------------------------------------- lockdown checks


def _anywhere_rules(policy: dict[str, Any]) -> list[dict[str, Any]]:
    """Egress rules of a policy that admit any address (no ``to``, or a /0 ipBlock)."""
    found = []
    for rule in _spec(policy).get("egress") or []:
        peers = rule.get("to") or []
        if not peers or any(_is_anywhere_block(p.get("ipBlock")) for p in peers):
            found.append(rule)
    return found


def _is_anywhere_block(block: dict[str, Any] | None) -> bool:
    if not block or "cidr" not in block:
        return False
    try:
        return ipaddress.ip_network(str(block["cidr"]), strict=False).prefixlen == 0
    except ValueError:
        return False


def _rule_ports(rule: dict[str, Any]) -> str:
    ports = rule.get("ports") or []
    if not ports:
        return "all ports"
    return ", ".join(f"{p.get('port', '*')}/{p.get('protocol', 'TCP')}" for p in ports)


def _dns_only(rule: dict[str, Any]) -> bool:
    ports = rule.get("ports") or []
    return bool(ports) and all(
        p.get("port") == DNS_PORT or p.get("port") in DNS_PORT_NAMES for p in ports
    )


def _port_allowed(rule: dict[str, Any], number: int, protocol: str, names: Iterable[str]) -> bool:
    ports = rule.get("ports") or []
    if not ports:
        return True
    for port in ports:
        if port.get("protocol", "TCP") != protocol:
            continue
        value = port.get("port")
        if value is None or value == number or value in names:
            return True
        end = port.get("endPort")
        if isinstance(value, int) and isinstance(end, int) and value <= number <= end:
            return True
    return False


def _allows(
    cluster: Cluster,
    policies: list[dict[str, Any]],
    number: int,
    protocol: str,
    targets: list[Workload],
    names: Iterable[str] = (),
) -> bool:
    for policy in policies:
        for rule in _spec(policy).get("egress") or []:
            if not _port_allowed(rule, number, protocol, names):
                continue
            peers = rule.get("to") or []
            if not peers:
                return True
            if any(cluster.peer_matches(_ns(policy), p, t) for p in peers for t in targets):
                return True
    return False


def _targets(cluster: Cluster, namespace: str, labels: dict[str, str]) -> list[Workload]:
    return cluster.pods(namespace, labels)


def namespace_locked(cluster: Cluster, namespace: str) -> bool:
    """Whether every pod of ``namespace`` is held by egress policies admitting no address."""
    generic = Workload(namespace, {})
    policies = cluster.egress_policies(namespace)
    if not cluster.policies_selecting(generic):
        return False
    return not any(not _dns_only(r) for p in policies for r in _anywhere_rules(p))


def _dns_istiod_findings(
    cluster: Cluster, workload: Workload, what: str, objects: list[dict[str, str]]
) -> list[Finding]:
    policies = cluster.policies_selecting(workload)
    if not policies:
        return []
    findings = []
    refs = objects + [ref(p, "NetworkPolicy") for p in policies]
    opts = cluster.options
    dns = _targets(cluster, opts["dns_namespace"], opts["dns_pod_labels"])
    if not _allows(cluster, policies, DNS_PORT, "UDP", dns, DNS_PORT_NAMES):
        findings.append(
            Finding(
                "lockdown.blocks_dns",
                "error",
                f"the egress NetworkPolicies of {what} allow no UDP {DNS_PORT} to the DNS pods "
                f"({opts['dns_namespace']}, {opts['dns_pod_labels']}): name resolution fails",
                refs,
            )
        )
    istiod = _targets(cluster, cluster.istiod_namespace, opts["istiod_pod_labels"])
    if not _allows(cluster, policies, ISTIOD_XDS_PORT, "TCP", istiod):
        findings.append(
            Finding(
                "lockdown.blocks_istiod",
                "error",
                f"the egress NetworkPolicies of {what} allow no TCP {ISTIOD_XDS_PORT} to istiod "
                f"({cluster.istiod_namespace}, {opts['istiod_pod_labels']}): proxies get no "
                "configuration or certificates",
                refs,
            )
        )
    return findings


def check_lockdown(cluster: Cluster) -> list[Finding]:
    findings = []
    for namespace in cluster.mesh_namespaces:
        ns_ref = {"kind": "Namespace", "namespace": "", "name": namespace}
        generic = Workload(namespace, {})
        if not cluster.policies_selecting(generic):
            partial = [ref(p, "NetworkPolicy") for p in cluster.egress_policies(namespace)]
            findings.append(
                Finding(
                    "lockdown.namespace_without_egress_policy",
                    "error",
                    f"namespace {namespace} has sidecar injection but no egress NetworkPolicy "
                    "selecting all its pods: a pod that bypasses its sidecar can reach any address",
                    [ns_ref] + partial,
                )
            )
        for policy in cluster.egress_policies(namespace):
            for rule in _anywhere_rules(policy):
                dns_only = _dns_only(rule)
                findings.append(
                    Finding(
                        "lockdown.egress_open",
                        "info" if dns_only else "error",
                        f"{ref_text(ref(policy, 'NetworkPolicy'))} lets the pods it selects "
                        f"({_spec(policy).get('podSelector') or 'all'}) reach any address on "
                        f"{_rule_ports(rule)}"
                        + (" (DNS only)" if dns_only else ", bypassing the egress gateway"),
                        [ref(policy, "NetworkPolicy")],
                    )
                )
        findings += _dns_istiod_findings(cluster, generic, f"namespace {namespace}", [ns_ref])
    for gateway in cluster.gateways:
        for workload in _unique_workloads(gateway.workloads):
            what = f"the gateway pods {workload.shown} in {workload.namespace}"
            findings += _dns_istiod_findings(cluster, workload, what, [gateway.ref()])
    findings += _gateway_namespace_open(cluster)
    return _dedupe(findings)


def _unique_workloads(workloads: list[Workload]) -> list[Workload]:
    seen, unique = set(), []
    for w in workloads:
        key = (w.namespace, tuple(sorted(w.labels.items())))
        if key not in seen:
            seen.add(key)
            unique.append(w)
    return unique


def _gateway_namespace_open(cluster: Cluster) -> list[Finding]:
    findings = []
    for namespace in sorted(cluster.gateway_namespaces):
        gateway_labels = [
            w.shown for g in cluster.gateways for w in g.workloads if w.namespace == namespace
        ]
        gateways = [g.ref() for g in cluster.gateways if namespace in g.namespaces]
        generic = Workload(namespace, {})
        if not cluster.policies_selecting(generic):
            findings.append(
                Finding(
                    "lockdown.gateway_namespace_open",
                    "warning",
                    f"gateway namespace {namespace} has no egress NetworkPolicy selecting all its "
                    "pods: any pod started there reaches the internet without the gateway's "
                    "access policies",
                    [{"kind": "Namespace", "namespace": "", "name": namespace}] + gateways,
                )
            )
            continue
        for policy in cluster.egress_policies(namespace):
            selector = _spec(policy).get("podSelector") or {}
            only_gateways = not _selects_all(selector) and all(
                _selector_implies(selector, labels) for labels in gateway_labels
            )
            if only_gateways or not _anywhere_rules(policy):
                continue
            if all(_dns_only(r) for r in _anywhere_rules(policy)):
                continue
            findings.append(
                Finding(
                    "lockdown.gateway_namespace_open",
                    "warning",
                    f"{ref_text(ref(policy, 'NetworkPolicy'))} lets pods of gateway namespace "
                    f"{namespace} other than the gateway's reach any address",
                    [ref(policy, "NetworkPolicy")] + gateways,
                )
            )
    return findings


def _selector_implies(selector: dict[str, Any], gateway_labels: dict[str, str]) -> bool:
    """Whether a pod selector only picks pods that carry (at least) the gateway's labels."""
    match = selector.get("matchLabels") or {}
    return bool(gateway_labels) and all(match.get(k) == v for k, v in gateway_labels.items())


# --------------------------------------------------------------------------- routing checks


def _is_internal_host(host: str, domain: str) -> bool:
    host = host.lower().rstrip(".")
    if is_wildcard(host):
        return False
    return (
        "." not in host
        or host.endswith(f".svc.{domain}")
        or host.endswith(".svc")
        or host.endswith(f".{domain}")
    )


def check_routing(cluster: Cluster) -> list[Finding]:
    locked = all(namespace_locked(cluster, ns) for ns in cluster.mesh_namespaces)
    unlocked = [ns for ns in cluster.mesh_namespaces if not namespace_locked(cluster, ns)]
    findings = _service_entry_routing(cluster, locked, unlocked)
    findings += _external_service_routing(cluster, locked, unlocked)
    return findings


def _direct_severity(wildcard: bool, locked: bool, locked_level: str) -> str:
    if wildcard or not locked:
        return "error"
    return locked_level


def _lockdown_note(locked: bool, unlocked: list[str]) -> str:
    if locked:
        return "; the lockdown NetworkPolicies drop the direct connection"
    if unlocked:
        return f"; namespaces without lockdown: {', '.join(unlocked)}"
    return ""


def _service_entry_routing(cluster: Cluster, locked: bool, unlocked: list[str]) -> list[Finding]:
    domain = cluster.options["cluster_domain"]
    findings = []
    vss = cluster.inv["VirtualService"]
    for se in sorted(cluster.inv["ServiceEntry"], key=lambda o: (_ns(o), _name(o))):
        spec = _spec(se)
        if spec.get("location", "MESH_EXTERNAL") != "MESH_EXTERNAL":
            continue
        obj = ref(se, "ServiceEntry")
        ports = [p.get("number") for p in spec.get("ports") or []]
        for host in spec.get("hosts") or []:
            host = str(host)
            wildcard = is_wildcard(host)
            if wildcard and spec.get("resolution") == "DNS" and not spec.get("endpoints"):
                findings.append(
                    Finding(
                        "routing.wildcard_unroutable",
                        "error",
                        f"{ref_text(obj)}: wildcard host {host} with resolution DNS and no "
                        "endpoints cannot be resolved",
                        [obj],
                    )
                )
            routed: set[Any] = set()
            route_objects = []
            for vs in vss:
                if not any(host_matches(str(h), host) for h in _spec(vs).get("hosts") or []):
                    continue
                ports_routed = _mesh_route_ports(
                    vs, lambda d, h=host: d != h and _is_internal_host(d, domain)
                )
                if ports_routed:
                    routed |= ports_routed
                    route_objects.append(ref(vs, "VirtualService"))
                findings += _wildcard_gateway_routes(cluster, vs, host, se)
            if not routed:
                findings.append(
                    Finding(
                        "routing.service_entry_direct",
                        _direct_severity(wildcard, locked, "warning"),
                        f"{ref_text(obj)}: no VirtualService sends mesh traffic for {host} to an "
                        "egress gateway, so sidecars connect to it directly"
                        + (
                            " (any subdomain: the wildcard bypasses REGISTRY_ONLY)"
                            if wildcard
                            else ""
                        )
                        + _lockdown_note(locked, unlocked),
                        [obj],
                    )
                )
                continue
            if None in routed:
                continue
            for number in ports:
                if number in routed:
                    continue
                findings.append(
                    Finding(
                        "routing.port_direct",
                        _direct_severity(False, locked, "info"),
                        f"{ref_text(obj)}: port {number} of {host} is not routed to the egress "
                        f"gateway (only {sorted(p for p in routed if p is not None)}); sidecars "
                        "connect to it directly" + _lockdown_note(locked, unlocked),
                        [obj] + route_objects,
                    )
                )
    return _dedupe(findings)


def _wildcard_gateway_routes(
    cluster: Cluster, vs: dict[str, Any], host: str, se: dict[str, Any]
) -> list[Finding]:
    if not is_wildcard(host):
        return []
    findings = []
    for gateway, dest in _gateway_routes(vs):
        if is_wildcard(dest) and _spec(se).get("resolution", "NONE") in ("NONE", "DNS"):
            findings.append(
                Finding(
                    "routing.wildcard_unroutable",
                    "error",
                    f"{ref_text(ref(vs, 'VirtualService'))} routes {host} at gateway {gateway} to "
                    f"the wildcard {dest} itself: the gateway has no address to forward to "
                    "(resolution NONE forwards to the gateway's own address)",
                    [ref(vs, "VirtualService"), ref(se, "ServiceEntry")],
                )
            )
    return findings


def _external_service_routing(cluster: Cluster, locked: bool, unlocked: list[str]) -> list[Finding]:
    findings = []
    vgs = {(_ns(vg), _name(vg)): vg for vg in cluster.inv["VirtualGateway"]}
    gateways = {
        (_ns(g.obj), _name(g.obj)): g for g in cluster.gateways if g.kind == "VirtualGateway"
    }
    for es in sorted(cluster.inv["ExternalService"], key=lambda o: (_ns(o), _name(o))):
        obj = ref(es, "ExternalService")
        hosts = [str(h) for h in _spec(es).get("hosts") or []]
        wildcard = any(is_wildcard(h) for h in hosts)
        ports = _spec(es).get("ports") or []
        routed, direct = [], []
        for port in ports:
            refs = (port.get("egressGatewayRoutes") or {}).get("virtualGatewayRefs") or []
            refs = [r for r in refs if cluster._cluster_ok(r.get("cluster"))]
            (routed if refs else direct).append(port)
            for r in refs:
                key = (r.get("namespace") or _ns(es), r.get("name"))
                gateway = gateways.get(key)
                if key in vgs and gateway and not gateway.exposes_all:
                    missing = [
                        h for h in hosts if not any(host_matches(e, h) for e in gateway.hosts)
                    ]
                    if missing and not _exposed_by_selector(vgs[key], es):
                        findings.append(
                            Finding(
                                "routing.not_exposed",
                                "warning",
                                f"{ref_text(obj)} routes port {port.get('number')} to "
                                f"{ref_text(gateway.ref())}, which does not expose "
                                f"{', '.join(missing)}: requests fail at the gateway",
                                [obj, gateway.ref()],
                            )
                        )
        label = "any subdomain: the wildcard bypasses REGISTRY_ONLY" if wildcard else ""
        if not routed:
            findings.append(
                Finding(
                    "routing.external_service_direct",
                    _direct_severity(wildcard, locked, "warning"),
                    f"{ref_text(obj)}: no port of {', '.join(hosts)} has egressGatewayRoutes, so "
                    "sidecars connect directly"
                    + (f" ({label})" if label else "")
                    + _lockdown_note(locked, unlocked),
                    [obj],
                )
            )
            continue
        for port in direct:
            findings.append(
                Finding(
                    "routing.port_direct",
                    _direct_severity(wildcard, locked, "info"),
                    f"{ref_text(obj)}: port {port.get('number')} has no egressGatewayRoutes; "
                    "sidecars connect to it directly" + _lockdown_note(locked, unlocked),
                    [obj],
                )
            )
    return _dedupe(findings)


def _exposed_by_selector(vg: dict[str, Any], es: dict[str, Any]) -> bool:
    for listener in _spec(vg).get("listeners") or []:
        for exposed in listener.get("exposedExternalServices") or []:
            selector = exposed.get("selector")
            if selector and _gloo_selector_matches(selector, es, None):
                return True
    return False


# --------------------------------------------------------------------------- access checks


def _gloo_selector_matches(selector: dict[str, Any], obj: dict[str, Any], cluster: Any) -> bool:
    if selector.get("name") and selector["name"] != _name(obj):
        return False
    if selector.get("namespace") and selector["namespace"] != _ns(obj):
        return False
    if cluster and selector.get("cluster") and selector["cluster"] != cluster:
        return False
    labels = _labels(obj)
    return all(labels.get(k) == v for k, v in (selector.get("labels") or {}).items())


def _gloo_client_is_everyone(client: dict[str, Any]) -> bool:
    for key in ("serviceAccountSelector", "externalWorkloadSelector"):
        selector = client.get(key)
        if selector is not None:
            return not (selector.get("name") or selector.get("labels") or selector.get("namespace"))
    matcher = client.get("requestIdentityMatcher") or {}
    return not matcher.get("requestPrincipals")


def check_access(cluster: Cluster) -> list[Finding]:
    findings = []
    for gateway in cluster.gateways:
        if gateway.kind == "Gateway":
            findings += _istio_access(cluster, gateway)
        else:
            findings += _gloo_access(cluster, gateway)
    return _dedupe(findings)


def _gloo_exposed(cluster: Cluster, gateway: EgressGateway) -> list[dict[str, Any]]:
    exposed = []
    for es in cluster.inv["ExternalService"]:
        hosts = [str(h) for h in _spec(es).get("hosts") or []]
        by_host = any(host_matches(e, h) for e in gateway.hosts for h in hosts)
        routed_here = any(
            (r.get("namespace") or _ns(es), r.get("name")) == (_ns(gateway.obj), _name(gateway.obj))
            for port in _spec(es).get("ports") or []
            for r in (port.get("egressGatewayRoutes") or {}).get("virtualGatewayRefs") or []
        )
        if (
            gateway.exposes_all
            or by_host
            or _exposed_by_selector(gateway.obj, es)
            or (routed_here and not gateway.hosts)
        ):
            exposed.append(es)
    return sorted(exposed, key=lambda o: (_ns(o), _name(o)))


def _gloo_access(cluster: Cluster, gateway: EgressGateway) -> list[Finding]:
    findings = []
    want_cluster = cluster.options.get("cluster")
    policies = [p for p in cluster.inv["AccessPolicy"] if not _gloo_policy_dry_run(p)]
    for es in _gloo_exposed(cluster, gateway):
        es_ref = ref(es, "ExternalService")
        applying = [
            p
            for p in policies
            if any(
                d.get("kind", "SERVICE") == "EXTERNAL_SERVICE"
                and _gloo_selector_matches(d.get("selector") or {}, es, want_cluster)
                for d in _spec(p).get("applyToDestinations") or []
            )
            and _gloo_authz(p)
        ]
        exposure = "exposes every ExternalService, including" if gateway.exposes_all else "exposes"
        if not applying:
            findings.append(
                Finding(
                    "access.host_without_policy",
                    "error",
                    f"{ref_text(gateway.ref())} {exposure} {ref_text(es_ref)} "
                    f"({', '.join(str(h) for h in _spec(es).get('hosts') or [])}) and no "
                    "AccessPolicy authorizes its clients: every workload in the mesh may use it",
                    [gateway.ref(), es_ref],
                )
            )
            continue
        for policy in applying:
            for authz in _gloo_authz(policy):
                clients = authz.get("allowedClients") or []
                if not clients or any(_gloo_client_is_everyone(c) for c in clients):
                    findings.append(
                        Finding(
                            "access.allow_everyone",
                            "error",
                            f"{ref_text(ref(policy, 'AccessPolicy'))} allows every client to "
                            f"{ref_text(es_ref)} (an allowedClients entry without name, labels "
                            "or namespace, or none at all)",
                            [ref(policy, "AccessPolicy"), es_ref],
                        )
                    )
    return findings


def _gloo_policy_dry_run(policy: dict[str, Any]) -> bool:
    return any(a.get("dryRun") for a in _gloo_authz(policy))


def _gloo_authz(policy: dict[str, Any]) -> list[dict[str, Any]]:
    config = _spec(policy).get("config") or {}
    authz = [config["authz"]] if isinstance(config.get("authz"), dict) else []
    return authz + [a for a in config.get("authzList") or [] if isinstance(a, dict)]


def _istio_policy_applies(cluster: Cluster, policy: dict[str, Any], workload: Workload) -> bool:
    spec = _spec(policy)
    if spec.get("targetRef") or spec.get("targetRefs"):
        return False  # bound to Gateway API objects, not to these pods
    namespace = _ns(policy)
    if namespace != workload.namespace and namespace not in cluster.roots:
        return False
    return selector_matches(spec.get("selector"), workload.labels)


def _istio_source_is_everyone(source: dict[str, Any]) -> bool:
    positive = ("principals", "namespaces", "requestPrincipals", "ipBlocks", "remoteIpBlocks")
    values = [v for key in positive for v in source.get(key) or []]
    return not values or "*" in values


def _istio_rule_allows_host(rule: dict[str, Any], host: str) -> bool:
    to = rule.get("to") or []
    if not to:
        return True
    for entry in to:
        operation = entry.get("operation") or {}
        hosts = operation.get("hosts")
        if not hosts:
            return True
        for pattern in hosts:
            pattern = str(pattern)
            if host_matches(pattern.rsplit(":", 1)[0] if ":" in pattern else pattern, host):
                return True
    return False


def _istio_access(cluster: Cluster, gateway: EgressGateway) -> list[Finding]:
    findings = []
    for workload in _unique_workloads(gateway.workloads):
        applying = [
            p
            for p in cluster.inv["AuthorizationPolicy"]
            if _istio_policy_applies(cluster, p, workload)
            and (_meta(p).get("annotations") or {}).get(DRY_RUN_ANNOTATION) != "true"
        ]
        allow = [p for p in applying if _spec(p).get("action", "ALLOW") == "ALLOW"]
        custom = [p for p in applying if _spec(p).get("action") == "CUSTOM"]
        hosts = gateway.hosts
        if not allow and not custom:
            findings.append(
                Finding(
                    "access.host_without_policy",
                    "error",
                    f"{ref_text(gateway.ref())} serves {', '.join(hosts) or 'its hosts'} and no "
                    f"ALLOW AuthorizationPolicy applies to its pods {workload.shown} in "
                    f"{workload.namespace}: every workload in the mesh may use them",
                    [gateway.ref()],
                )
            )
            continue
        for host in hosts:
            for policy in allow:
                for rule in _spec(policy).get("rules") or []:
                    if not _istio_rule_allows_host(rule, host):
                        continue
                    sources = [f.get("source") or {} for f in rule.get("from") or []]
                    if not sources or any(_istio_source_is_everyone(s) for s in sources):
                        findings.append(
                            Finding(
                                "access.allow_everyone",
                                "error",
                                f"{ref_text(ref(policy, 'AuthorizationPolicy'))} allows every "
                                f"client to {host} through {ref_text(gateway.ref())} (a rule "
                                "without `from`, or a source without principals/namespaces)",
                                [ref(policy, "AuthorizationPolicy"), gateway.ref()],
                            )
                        )
    return findings


# --------------------------------------------------------------------------- observability


def check_observability(cluster: Cluster) -> list[Finding]:
    findings = []
    telemetries = cluster.inv["Telemetry"]
    no_crd = "Telemetry" in cluster.missing_kinds
    for gateway in cluster.gateways:
        for workload in _unique_workloads(gateway.workloads):
            config = cluster.config_for(workload.namespace, workload.labels)
            telemetry = _telemetry_for(telemetries, workload, config.root_namespace)
            on, why = _access_log_on(telemetry, config)
            if on:
                continue
            objects = [gateway.ref()] + ([config.ref()] if config.name else [])
            if telemetry:
                objects.append(ref(telemetry, "Telemetry"))
            note = " (the Telemetry CRD is not installed)" if no_crd else ""
            findings.append(
                Finding(
                    "observability.access_log_off",
                    "warning",
                    f"access logging is off for the gateway pods {workload.shown} of "
                    f"{ref_text(gateway.ref())}: {why}{note}; egress cannot be proven from the "
                    "gateway's log",
                    objects,
                )
            )
    return _dedupe(findings)


def _telemetry_for(
    telemetries: list[dict[str, Any]], workload: Workload, root: str
) -> dict[str, Any] | None:
    """The Telemetry with accessLogging that wins for a workload (selector > namespace > root)."""
    with_logging = [t for t in telemetries if "accessLogging" in _spec(t)]
    ordered = sorted(with_logging, key=lambda t: (str(_meta(t).get("creationTimestamp")), _name(t)))
    for t in ordered:
        selector = _spec(t).get("selector")
        if (
            _ns(t) == workload.namespace
            and selector
            and selector_matches(selector, workload.labels)
        ):
            return t
    for namespace in (workload.namespace, root):
        for t in ordered:
            if _ns(t) == namespace and not _spec(t).get("selector"):
                return t
    return None


def _access_log_on(telemetry: dict[str, Any] | None, config: MeshConfig) -> tuple[bool, str]:
    where = ref_text(config.ref()) if config.name else "the mesh configuration"
    if telemetry is not None:
        entries = _spec(telemetry).get("accessLogging") or []
        enabled = [e for e in entries if not e.get("disabled")]
        text = ref_text(ref(telemetry, "Telemetry"))
        if not enabled:
            return False, f"{text} disables accessLogging"
        if any(e.get("providers") for e in enabled) or config.default_access_log_providers:
            return True, ""
        if config.access_log_file:
            return True, ""
        return False, f"{text} names no provider and {where} has no default provider"
    if config.access_log_file or config.default_access_log_providers:
        return True, ""
    return False, f"{where} has no accessLogFile and no Telemetry enables accessLogging"


# --------------------------------------------------------------------------- drift (extension)


def drift_findings(
    expected: list[dict[str, Any]],
    live: Callable[[dict[str, Any]], dict[str, Any] | None],
    owned: list[dict[str, Any]] | None = None,
) -> list[Finding]:
    """Compare a plan with the cluster.

    ``expected``: the objects a description plans (what ``egress_plan`` returns; today the
    ``egress_resources`` filter's output). ``live(obj)`` returns the cluster's object with the
    same apiVersion/kind/namespace/name, or None. ``owned``: live objects carrying the
    collection's managed-by label, to find those the plan no longer has. Only the fields the
    plan sets are compared (what an apply would change); ``status`` never is.
    """
    findings = []
    planned = set()
    for obj in expected:
        key = _key(obj)
        planned.add(key)
        current = live(obj)
        item = ref(obj)
        if current is None:
            findings.append(
                Finding("drift.missing", "error", f"{ref_text(item)} is planned but absent", [item])
            )
            continue
        diffs = _subset_diff({k: v for k, v in obj.items() if k != "status"}, current, "")
        if diffs:
            shown = "; ".join(diffs[:5]) + ("; ..." if len(diffs) > 5 else "")
            findings.append(
                Finding(
                    "drift.changed",
                    "warning",
                    f"{ref_text(item)} differs from the plan: {shown}",
                    [item],
                )
            )
    for obj in owned or []:
        if _key(obj) not in planned:
            findings.append(
                Finding(
                    "drift.unplanned",
                    "warning",
                    f"{ref_text(ref(obj))} carries the managed-by label but is not in the plan",
                    [ref(obj)],
                )
            )
    return findings


def owned_objects(
    inventory: dict[str, list[dict[str, Any]]], expected: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Objects of the planned kinds that carry the managed-by label and, when the plan names
    its owner (``meshguard.io/description``), that owner: another description's objects
    are not this plan's drift."""
    kinds = {str(o.get("kind")) for o in expected}
    owners = {_labels(o).get(OWNER_LABEL) for o in expected} - {None}
    return [
        obj
        for kind, objects in inventory.items()
        if kind in kinds
        for obj in objects
        if _labels(obj).get(MANAGED_BY_LABEL) == MANAGED_BY
        and (not owners or _labels(obj).get(OWNER_LABEL) in owners)
    ]


def _key(obj: dict[str, Any]) -> tuple[str, str, str]:
    return (str(obj.get("kind")), _ns(obj), _name(obj))


def _subset_diff(want: Any, have: Any, path: str) -> list[str]:
    if isinstance(want, dict):
        if not isinstance(have, dict):
            return [f"{path or '.'}: expected a mapping, found {have!r}"]
        diffs = []
        for key, value in want.items():
            sub = f"{path}.{key}" if path else str(key)
            if key not in have:
                diffs.append(f"{sub}: missing (planned {value!r})")
            else:
                diffs += _subset_diff(value, have[key], sub)
        return diffs
    if isinstance(want, list):
        if not isinstance(have, list):
            return [f"{path}: planned a list, found {_short(have)}"]
        if len(want) != len(have):
            absent = [w for w in want if not any(not _subset_diff(w, h, "") for h in have)]
            extra = [h for h in have if not any(not _subset_diff(w, h, "") for w in want)]
            text = f"{path}: planned {len(want)} items, found {len(have)}"
            if absent:
                text += "; missing " + ", ".join(_short(w) for w in absent[:2])
            if extra:
                text += "; not planned " + ", ".join(_short(h) for h in extra[:2])
            return [text]
        diffs = []
        for index, (w, h) in enumerate(zip(want, have)):
            diffs += _subset_diff(w, h, f"{path}[{index}]")
        return diffs
    if want != have:
        return [f"{path}: planned {_short(want)}, found {_short(have)}"]
    return []


def _short(value: Any, limit: int = 160) -> str:
    import json

    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------- entry points


def incomplete_finding(errors: dict[str, str]) -> Finding:
    """``audit.incomplete`` for kinds that could not be read (kind -> reason)."""
    text = "; ".join(f"{kind}: {reason}" for kind, reason in sorted(errors.items()))
    return Finding(
        "audit.incomplete",
        "error",
        f"could not read {', '.join(sorted(errors))} ({text}); checks that need them saw none",
        [{"kind": kind, "namespace": "", "name": ""} for kind in sorted(errors)],
    )


def _dedupe(findings: list[Finding]) -> list[Finding]:
    seen, unique = set(), []
    for f in findings:
        key = (f.id, f.message)
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique


def sort_findings(findings: list[Finding]) -> list[Finding]:
    order = list(CHECKS)
    return sorted(
        findings,
        key=lambda f: (-severity_rank(f.severity), order.index(f.id), f.message),
    )


def audit(
    inventory: dict[str, list[dict[str, Any]]],
    options: dict[str, Any] | None = None,
    missing_kinds: Iterable[str] = (),
) -> list[Finding]:
    """Every check over the inventory, most severe first."""
    cluster = Cluster(inventory, options, missing_kinds)
    findings = (
        check_outbound(cluster)
        + check_routing(cluster)
        + check_access(cluster)
        + check_lockdown(cluster)
        + check_observability(cluster)
    )
    return sort_findings(_dedupe(findings))


def summarize(findings: list[Finding]) -> dict[str, int]:
    summary = {severity: 0 for severity in SEVERITIES}
    for f in findings:
        summary[f.severity] += 1
    summary["total"] = len(findings)
    return summary


def at_or_above(findings: list[Finding], severity: str) -> list[Finding]:
    return [f for f in findings if severity_rank(f.severity) >= severity_rank(severity)]


def table(findings: list[Finding]) -> list[str]:
    """Readable lines: one per finding (severity, id, objects, message), then its fix."""
    if not findings:
        return ["no findings"]
    lines = []
    width = max(len(f.id) for f in findings)
    for f in findings:
        objects = ", ".join(ref_text(o) for o in f.objects) or "-"
        lines.append(f"{f.severity.upper():<8} {f.id:<{width}} {objects}")
        lines.append(f"{'':<8} {'':<{width}} {f.message}")
        lines.append(f"{'':<8} {'':<{width}} fix: {f.fix}")
    return lines


def check_results(
    findings: list[Finding], fail_severity: str, skipped: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """One result per check (for the JUnit report): failing findings and the others."""
    skipped = skipped or {}
    results = []
    for check in CHECKS.values():
        mine = [f for f in findings if f.id == check.id]
        failing = at_or_above(mine, fail_severity)
        results.append(
            {
                "id": check.id,
                "title": check.title,
                "failed": bool(failing),
                "skipped": skipped.get(check.id, ""),
                "findings": [f.as_dict() for f in mine],
                "failing": [f.as_dict() for f in failing],
            }
        )
    return results
