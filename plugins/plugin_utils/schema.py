# Copyright (c) meshguard.egress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The one schema of the egress description: every key, its type, default and meaning.

``description.py`` validates against it (allowed keys, defaults), ``hack/gen_docs.py``
generates the roles' ``meta/argument_specs.yml``, the role READMEs and
``docs/description.md`` from it. A key is added here, nowhere else.

Each top-level key ``K`` is the inventory variable ``egress_K``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

REQUIRED = object()  # marker: no default, the key must be given


@dataclass(frozen=True)
class Field:
    """One key of the description."""

    key: str
    type: str  # str, int, bool, dict, list, labels (a label map)
    doc: str
    default: Any = None
    choices: tuple[str, ...] = ()
    fields: tuple[Field, ...] = ()  # keys of a dict, or of each dict element of a list
    free_form: bool = False  # a dict whose keys are not checked (Helm values, resources)
    elements: str = ""  # element type of a list of scalars

    def child(self, key: str) -> Field:
        for item in self.fields:
            if item.key == key:
                return item
        raise KeyError(f"{self.key}.{key}")

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(item.key for item in self.fields)


def _f(key: str, type_: str, doc: str, default: Any = None, **kwargs: Any) -> Field:
    return Field(key, type_, doc, default, **kwargs)


# a NetworkPolicy port: lockdown.dns/istiod.ports and lockdown.allow[].ports
NETWORK_PORT_FIELDS = (
    _f("port", "int", "Port number.", REQUIRED),
    _f("protocol", "str", "Protocol.", "TCP", choices=("TCP", "UDP", "SCTP")),
)

PEER_FIELDS = (
    _f("namespace", "str", "Namespace of the peer pods."),
    _f("pod_selector", "labels", "Labels of the peer pods."),
    _f(
        "ip_blocks",
        "list",
        "CIDRs the peer is also reachable at (e.g. NodeLocal DNSCache C(169.254.20.10/32)).",
        [],
        elements="str",
    ),
    _f(
        "ports",
        "list",
        "Ports allowed to the peer; each C({port, protocol}).",
        None,
        fields=NETWORK_PORT_FIELDS,
    ),
)

SOURCE_FIELDS = (
    _f("namespace", "str", "Namespace of the client pod.", REQUIRED),
    _f(
        "service_account",
        "str",
        "The client's service account (its identity in the plan).",
        REQUIRED,
    ),
    _f("pod", "str", "Pod name; or give C(label_selector)."),
    _f("label_selector", "str", "Label selector of the client pod (first running pod)."),
    _f("container", "str", "Container to exec into (default the pod's first)."),
    _f("debug_image", "str", "Run the probe in an ephemeral debug container of this image."),
    _f("headers", "dict", "Extra request headers for this source's probes.", {}, free_form=True),
    _f(
        "controller",
        "bool",
        "Probe from the controller host instead of a pod (through C(verify.connect_to), for "
        "example a port-forwarded gateway); the identity then travels only in C(headers).",
        False,
    ),
)

SCHEMA = Field(
    "egress",
    "dict",
    "The egress description.",
    fields=(
        _f(
            "name",
            "str",
            "Name of this description: every object it writes is labelled "
            "C(meshguard.io/description=<name>), and teardown and drift repair touch only "
            "those. Two descriptions on one cluster need different names.",
            "egress",
        ),
        _f(
            "flavor",
            "str",
            "Which API renders routes and policies: C(gloo) (Gloo Mesh v2) "
            "or C(istio) (upstream Istio).",
            "gloo",
            choices=("gloo", "istio"),
        ),
        _f(
            "cluster",
            "str",
            "Mesh cluster name (Gloo object references, client default).",
            "cluster-1",
        ),
        _f("trust_domain", "str", "Istio trust domain of client principals.", "cluster.local"),
        _f(
            "revision",
            "str",
            "Mesh revision (C(istio.io/rev)); empty for the default control plane.",
            "",
        ),
        _f(
            "services_namespace",
            "str",
            "Namespace of the ExternalServices / ServiceEntries and VirtualServices.",
            "global",
        ),
        _f(
            "adopt",
            "bool",
            "Take over objects of the plan that already exist without this "
            "description's ownership label (otherwise the run fails before any write).",
            False,
        ),
        _f(
            "gateway",
            "dict",
            "The egress gateway: where it runs, how it is installed.",
            {},
            fields=(
                _f("namespace", "str", "Namespace of the gateway.", "istio-egress"),
                _f(
                    "name",
                    "str",
                    "Helm release name (also the Service name).",
                    "istio-egressgateway",
                ),
                _f("selector", "labels", "Labels of the gateway pods.", {"istio": "egressgateway"}),
                _f(
                    "listener_port",
                    "int",
                    "Port sidecars use to reach the gateway (ISTIO_MUTUAL).",
                    443,
                ),
                _f("virtual_gateway_name", "str", "Gloo VirtualGateway name.", "egress-vg"),
                _f("istio_gateway_name", "str", "Istio Gateway name.", "meshguard-egress"),
                _f(
                    "chart_ref",
                    "str",
                    "Chart: a name in C(chart_repo_url), an C(oci://) reference or a local path.",
                    "gateway",
                ),
                _f(
                    "chart_repo_url",
                    "str",
                    "HTTP chart repository; empty for OCI references and local paths.",
                    "",
                ),
                _f(
                    "chart_version",
                    "str",
                    "Chart version (the Istio version); empty keeps "
                    "the installed one (or the local chart's).",
                    "",
                ),
                _f(
                    "values_schema",
                    "str",
                    "Path of the chart's C(values.schema.json) on the "
                    "controller; the values are checked against it before any write.",
                    "",
                ),
                _f(
                    "revision",
                    "str",
                    "Mesh revision of the gateway; default the top-level C(revision).",
                    "",
                ),
                _f("image_hub", "str", "Image registry (chart value C(global.hub)).", ""),
                _f("image_tag", "str", "Image tag (chart value C(global.tag)).", ""),
                _f("replicas", "int", "Replicas (autoscaling is off).", 1),
                _f("resources", "dict", "Container resources.", {}, free_form=True),
                _f(
                    "service_type",
                    "str",
                    "Service type.",
                    "ClusterIP",
                    choices=("ClusterIP", "NodePort", "LoadBalancer"),
                ),
                _f(
                    "service_ports",
                    "list",
                    "Service ports; default the chart's status-port 15021, http2 80, https 443.",
                    None,
                    fields=(
                        _f("name", "str", "Port name.", REQUIRED),
                        _f("port", "int", "Port.", REQUIRED),
                        _f("protocol", "str", "Protocol.", "TCP", choices=("TCP", "UDP", "SCTP")),
                        _f("targetPort", "int", "Target port; default C(port)."),
                        _f("nodePort", "int", "Node port."),
                    ),
                ),
                _f("node_selector", "labels", "Extra nodeSelector of the gateway pods.", {}),
                _f(
                    "tolerations",
                    "list",
                    "Extra tolerations of the gateway pods.",
                    [],
                    elements="dict",
                ),
                _f(
                    "dedicated_nodes",
                    "list",
                    "Nodes to label (and taint) for the gateway; the gateway is pinned there.",
                    [],
                    elements="str",
                ),
                _f(
                    "node_label",
                    "str",
                    "Label (and taint key) of dedicated nodes.",
                    "meshguard.io/egress-gateway",
                ),
                _f("taint_nodes", "bool", "Also taint the dedicated nodes (NoSchedule).", False),
                _f(
                    "access_log",
                    "bool",
                    "Turn the gateway's Envoy access log on (an Istio "
                    "Telemetry object selecting the gateway).",
                    False,
                ),
                _f("atomic", "bool", "Roll back a failed install or upgrade (and wait).", True),
                _f("wait_timeout", "int", "Seconds Helm waits for the gateway.", 300),
                _f("extra_values", "dict", "Helm values deep-merged last.", {}, free_form=True),
            ),
        ),
        _f(
            "services",
            "list",
            "The external hosts that may be reached.",
            REQUIRED,
            fields=(
                _f(
                    "host",
                    "str",
                    "FQDN, or one leading wildcard label (C(*.example.com)).",
                    REQUIRED,
                ),
                _f("name", "str", "Object name; default the host with C(*) -> C(wildcard)."),
                _f(
                    "access_policy_name", "str", "Gloo AccessPolicy name; default C(<name>-access)."
                ),
                _f(
                    "endpoints",
                    "list",
                    "Gloo only: addresses (IPs, or FQDNs without a wildcard) the host's traffic "
                    "goes to, written as ExternalEndpoints the ExternalService selects. Required "
                    "for a wildcard host: without endpoints Gloo resolves the host by DNS.",
                    [],
                    elements="str",
                ),
                _f(
                    "ports",
                    "list",
                    "Ports of the external host.",
                    REQUIRED,
                    fields=(
                        _f("number", "int", "The external endpoint's port.", REQUIRED),
                        _f(
                            "protocol",
                            "str",
                            "Protocol.",
                            REQUIRED,
                            choices=("HTTP", "HTTPS", "TLS", "TCP"),
                        ),
                        _f("name", "str", "Port name; default C(<protocol>-<number>)."),
                        _f(
                            "client_port",
                            "int",
                            "Port clients send to; default 80 for HTTPS "
                            "with origination, else C(number).",
                        ),
                        _f(
                            "tls_origination",
                            "bool",
                            "Originate TLS at the gateway (HTTPS only); default true for HTTPS.",
                        ),
                        _f("sni", "str", "SNI for origination; default the host."),
                        _f(
                            "ca_certificates",
                            "str",
                            "CA bundle path inside the gateway for origination.",
                        ),
                        _f(
                            "via_gateway",
                            "bool",
                            "Send this port through the gateway; "
                            "default true for HTTP/HTTPS, TLS/TCP must be false.",
                        ),
                    ),
                ),
                _f(
                    "clients",
                    "list",
                    "Who may use the host: omitted for everyone, C([]) for nobody.",
                    None,
                    fields=(
                        _f("namespace", "str", "Client namespace.", REQUIRED),
                        _f("service_account", "str", "Client service account."),
                        _f("cluster", "str", "Client cluster; default C(cluster)."),
                        _f(
                            "labels",
                            "labels",
                            "Gloo only: service-account labels instead of a name.",
                        ),
                    ),
                ),
            ),
        ),
        _f(
            "outbound_policy",
            "dict",
            "The mesh's outbound traffic policy.",
            {},
            fields=(
                _f(
                    "mode",
                    "str",
                    "Outbound mode.",
                    "REGISTRY_ONLY",
                    choices=("REGISTRY_ONLY", "ALLOW_ANY"),
                ),
                _f(
                    "scope",
                    "str",
                    "C(mesh): Sidecar C(default) in the root namespace; "
                    "C(namespaces): one per namespace.",
                    "mesh",
                    choices=("mesh", "namespaces"),
                ),
                _f(
                    "root_namespace",
                    "str",
                    "The mesh's root namespace (C(meshConfig.rootNamespace)).",
                    "istio-system",
                ),
                _f("namespaces", "list", "Namespaces for scope C(namespaces).", [], elements="str"),
                _f(
                    "method",
                    "str",
                    "C(sidecar): write Sidecar objects; C(istiod_helm): set "
                    "C(meshConfig.outboundTrafficPolicy.mode) in istiod's Helm release.",
                    "sidecar",
                    choices=("sidecar", "istiod_helm"),
                ),
                _f(
                    "istiod",
                    "dict",
                    "istiod's Helm release (method C(istiod_helm)).",
                    {},
                    fields=(
                        _f("release", "str", "Release name.", "istiod"),
                        _f("namespace", "str", "Release namespace.", "istio-system"),
                        _f(
                            "chart_ref",
                            "str",
                            "Chart reference the release was installed from.",
                            "istiod",
                        ),
                        _f("chart_repo_url", "str", "HTTP chart repository.", ""),
                        _f(
                            "chart_version",
                            "str",
                            "Chart version; empty uses the installed "
                            "release's version (istiod is never upgraded implicitly).",
                            "",
                        ),
                    ),
                ),
            ),
        ),
        _f(
            "lockdown",
            "dict",
            "NetworkPolicies that keep pods bypassing their sidecar in.",
            {},
            fields=(
                _f("namespaces", "list", "Namespaces to lock down.", [], elements="str"),
                _f(
                    "dns",
                    "dict",
                    "Where DNS runs.",
                    {"namespace": "kube-system", "pod_selector": {"k8s-app": "kube-dns"}},
                    fields=PEER_FIELDS,
                ),
                _f(
                    "istiod",
                    "dict",
                    "Where istiod runs.",
                    {"namespace": "istio-system", "pod_selector": {"app": "istiod"}},
                    fields=PEER_FIELDS,
                ),
                _f(
                    "allow",
                    "list",
                    "In-mesh destinations outside the locked-down namespaces.",
                    [],
                    fields=(
                        _f("namespace", "str", "Namespace of the destination pods."),
                        _f("pod_selector", "labels", "Labels of the destination pods."),
                        _f("ip_blocks", "list", "CIDRs of the destination.", [], elements="str"),
                        _f(
                            "ports",
                            "list",
                            "Ports; each C({port, protocol}).",
                            [],
                            fields=NETWORK_PORT_FIELDS,
                        ),
                    ),
                ),
                _f(
                    "label_namespaces",
                    "bool",
                    "Add C(kubernetes.io/metadata.name) to the "
                    "namespaces the policies select (Kubernetes < 1.21 lacks it).",
                    True,
                ),
            ),
        ),
        _f(
            "verify",
            "dict",
            "How playbooks/verify.yml proves the description.",
            {},
            fields=(
                _f(
                    "sources",
                    "list",
                    "Client pods to probe from; each gets the outcome the "
                    "plan expects for its service account.",
                    [],
                    fields=SOURCE_FIELDS,
                ),
                _f(
                    "bypass_sources",
                    "list",
                    "Pods without a sidecar in locked-down "
                    "namespaces; their direct requests must be unreachable.",
                    [],
                    fields=SOURCE_FIELDS,
                ),
                _f(
                    "bypass_image",
                    "str",
                    "Image with C(sh) and C(curl) for the automatic bypass probes: in every "
                    "namespace of C(lockdown.namespaces), C(egress_probe) creates a temporary "
                    "pod of this image without a sidecar (C(sidecar.istio.io/inject: "
                    '"false")), requests the first service host directly (expected '
                    "C(unreachable)) and deletes the pod; an empty string turns these probes "
                    "off. The verify ClusterRole grants C(pods) create/delete for them.",
                    "docker.io/curlimages/curl:8.11.1",
                ),
                _f(
                    "network_policies_enforced",
                    "bool",
                    "Whether the cluster's CNI enforces NetworkPolicies; C(false) on clusters "
                    "whose CNI does not enforce NetworkPolicies, e.g. the embedded test node. "
                    "Bypass probes then still run but are reported as not proven (neither "
                    "passed nor failed).",
                    True,
                ),
                _f(
                    "unregistered_host",
                    "str",
                    "A host no service names: REGISTRY_ONLY must block it.",
                    "unregistered.meshguard.invalid",
                ),
                _f("path", "str", "Request path of the probes.", "/get"),
                _f(
                    "connect_to",
                    "list",
                    "curl C(--connect-to) entries for every probe.",
                    [],
                    elements="str",
                ),
                _f("deadline", "int", "Seconds to retry until every expectation holds.", 60),
                _f("probe_timeout", "int", "Per-request timeout in seconds.", 5),
                _f("connect_timeout", "int", "Connect timeout in seconds.", 3),
                _f(
                    "access_log",
                    "bool",
                    "Check the gateway access log for every allowed "
                    "request; default C(gateway.access_log).",
                ),
                _f("access_log_container", "str", "Gateway container.", "istio-proxy"),
                _f(
                    "access_log_path",
                    "str",
                    "Read the access log from this controller file instead of the pods.",
                ),
                _f("junit_path", "str", "Where to write the JUnit report; none when empty.", ""),
                _f("junit_suite", "str", "JUnit suite name.", "meshguard.egress.verify"),
            ),
        ),
    ),
)

# Which top-level keys each concern's objects depend on (the role argument_specs list these).
CONCERN_KEYS: dict[str, tuple[str, ...]] = {
    "outbound_policy": ("name", "adopt", "flavor", "outbound_policy"),
    "gateway": ("name", "adopt", "flavor", "revision", "gateway"),
    "routes": (
        "name",
        "adopt",
        "flavor",
        "cluster",
        "revision",
        "services_namespace",
        "gateway",
        "services",
    ),
    "access": (
        "name",
        "adopt",
        "flavor",
        "cluster",
        "trust_domain",
        "services_namespace",
        "gateway",
        "services",
    ),
    "lockdown": ("name", "adopt", "flavor", "gateway", "lockdown"),
}
CONCERNS = tuple(CONCERN_KEYS)
VARIABLE_PREFIX = "egress_"
OVERRIDE_PREFIX = "egress_override_"
# egress_* variables that are not description keys: the cluster to use, the hosts to target
CONNECTION_VARIABLES = ("egress_kubeconfig", "egress_context", "egress_hosts")


def lookup(path: str) -> Field:
    """The field at a dotted path (``gateway.namespace``)."""
    node = SCHEMA
    for key in path.split("."):
        node = node.child(key)
    return node


def default(path: str) -> Any:
    """The default of the field at ``path`` (a fresh copy for mappings and lists)."""
    value = lookup(path).default
    if isinstance(value, dict):
        return {k: (dict(v) if isinstance(v, dict) else v) for k, v in value.items()}
    if isinstance(value, list):
        return list(value)
    return value


def keys(path: str = "") -> tuple[str, ...]:
    """The allowed keys of the mapping at ``path`` (top level when empty)."""
    return (lookup(path) if path else SCHEMA).keys
