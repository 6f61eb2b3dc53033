"""The egress audit (module egress_audit, playbooks/audit.yml) on the real API server.

Each test seeds holes with the admin kubeconfig into fresh namespaces (its own istiod/root
namespace among them, so the mesh configuration it audits is its own) and checks that the
audit reports them with the right objects. The converged example description (site.yml, as
hack/run.sh runs it) reports nothing at or above warning. One test runs the audit as the
testbed's ``nobody`` user bound only to playbooks/rbac/audit-clusterrole.yml.

Configuration only: the local control plane has no kubelet, so no traffic is sent; what
the audit reads is the objects, which is all it ever reads.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
NS_LABEL = "kubernetes.io/metadata.name"
ISTIO = "networking.istio.io/v1"
GLOO = "networking.gloo.solo.io/v2"
DELETE_DEADLINE = 300.0


def _env(kubeconfig: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    return dict(
        os.environ,
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".venv" / "collections"),
        ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default",
        ANSIBLE_NOCOLOR="1",
        K8S_AUTH_KUBECONFIG=kubeconfig,
        PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        **(extra or {}),
    )


def run_audit(kubeconfig: str, *args: str, **params: Any) -> dict[str, Any]:
    """Run the module ad hoc; its result, with ``_ok`` (SUCCESS vs FAILED)."""
    cmd = [
        str(VENV_BIN / "ansible"),
        "localhost",
        "-m",
        "meshguard.egress.egress_audit",
        "-a",
        json.dumps({"kubeconfig": kubeconfig, **params}),
        *args,
    ]
    proc = subprocess.run(
        cmd,
        cwd=ROOT,
        env=_env(kubeconfig),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    head, sep, body = proc.stdout.partition(" => ")
    assert sep, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(body)
    result["_ok"] = "SUCCESS" in head
    assert result["changed"] is False
    return result


def found(result: dict[str, Any], check_id: str) -> list[dict[str, Any]]:
    return [f for f in result["findings"] if f["id"] == check_id]


def texts(finding: dict[str, Any]) -> list[str]:
    return [
        f"{o['kind']}/{o['namespace'] + '/' if o['namespace'] else ''}{o['name']}"
        for o in finding["objects"]
    ]


def one(result: dict[str, Any], check_id: str, obj: str) -> dict[str, Any]:
    """The single finding of ``check_id`` whose objects start with ``obj``."""
    matches = [f for f in found(result, check_id) if texts(f)[0] == obj]
    assert len(matches) == 1, (check_id, obj, result["table"])
    return matches[0]


class Seeder:
    """Creates objects as the admin and deletes what it created (namespaces last, awaited)."""

    def __init__(self, k8s: Any) -> None:
        self.k8s = k8s
        self.created: list[tuple[Any, str, str | None]] = []
        self.namespaces: list[str] = []
        self.uid = uuid.uuid4().hex[:6]

    def namespace(self, suffix: str, **labels: str) -> str:
        name = f"mg-audit-{self.uid}-{suffix}"
        body = {"metadata": {"name": name, "labels": {NS_LABEL: name, **labels}}}
        api = self.k8s.resources.get(api_version="v1", kind="Namespace")
        api.create(body={"apiVersion": "v1", "kind": "Namespace", **body})
        self.namespaces.append(name)
        return name

    def apply(self, api_version: str, kind: str, name: str, namespace: str | None, **body: Any):
        api = self.k8s.resources.get(api_version=api_version, kind=kind)
        metadata = {"name": name, **body.pop("metadata", {})}
        if namespace:
            metadata["namespace"] = namespace
        obj = {"apiVersion": api_version, "kind": kind, "metadata": metadata, **body}
        api.create(body=obj, namespace=namespace)
        self.created.append((api, name, namespace))
        return obj

    def mesh(self, namespace: str, mesh: dict[str, Any], revision: str = "") -> None:
        name = f"istio-{revision}" if revision else "istio"
        self.apply("v1", "ConfigMap", name, namespace, data={"mesh": yaml.safe_dump(mesh)})

    def cleanup(self) -> None:
        from kubernetes.dynamic.exceptions import NotFoundError

        for api, name, namespace in reversed(self.created):
            with contextlib.suppress(NotFoundError):
                api.delete(name=name, namespace=namespace)
        ns_api = self.k8s.resources.get(api_version="v1", kind="Namespace")
        for name in self.namespaces:
            with contextlib.suppress(NotFoundError):
                ns_api.delete(name=name)
        wait_namespaces_gone(self.k8s, self.namespaces)


def wait_namespaces_gone(k8s: Any, names: list[str]) -> None:
    """Until the namespaces are deleted (the namespace controller empties them first)."""
    api = k8s.resources.get(api_version="v1", kind="Namespace")
    deadline = time.monotonic() + DELETE_DEADLINE
    while True:
        left = sorted({n.metadata.name for n in api.get().items} & set(names))
        if not left:
            return
        assert time.monotonic() < deadline, f"namespaces not deleted: {left}"
        time.sleep(0.5)


@pytest.fixture
def seed(k8s: Any) -> Iterator[Seeder]:
    seeder = Seeder(k8s)
    try:
        yield seeder
    finally:
        seeder.cleanup()


def istiod_namespace(seed: Seeder, mesh: dict[str, Any] | None, revision: str = "") -> str:
    """A namespace playing istiod's (and the root's), with its mesh ConfigMap."""
    ns = seed.namespace("istio")
    if mesh is not None:
        seed.mesh(ns, {"rootNamespace": ns, **mesh}, revision)
    return ns


def netpol(seed: Seeder, name: str, ns: str, egress: list[dict[str, Any]], selector=None):
    spec = {"podSelector": selector or {}, "policyTypes": ["Egress"], "egress": egress}
    return seed.apply("networking.k8s.io/v1", "NetworkPolicy", name, ns, spec=spec)


def dns_rule() -> dict[str, Any]:
    return {
        "to": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
        "ports": [{"port": 53, "protocol": "UDP"}],
    }


def istiod_rule(istiod_ns: str) -> dict[str, Any]:
    return {
        "to": [
            {
                "namespaceSelector": {"matchLabels": {NS_LABEL: istiod_ns}},
                "podSelector": {"matchLabels": {"app": "istiod"}},
            }
        ],
        "ports": [{"port": 15012, "protocol": "TCP"}],
    }


# --------------------------------------------------------------------------- outbound


def test_outbound_holes(kubeconfig: str, seed: Seeder) -> None:
    rev = f"r{seed.uid}"
    root = istiod_namespace(seed, {"accessLogFile": "/dev/stdout"}, rev)
    open_ns = seed.namespace("open", **{"istio.io/rev": rev})
    inherit_ns = seed.namespace("inherit", **{"istio.io/rev": rev})
    plain_ns = seed.namespace("plain")
    seed.apply(
        ISTIO, "Sidecar", "default", open_ns, spec={"outboundTrafficPolicy": {"mode": "ALLOW_ANY"}}
    )
    seed.apply(
        ISTIO,
        "Sidecar",
        "reviews",
        open_ns,
        spec={
            "workloadSelector": {"labels": {"app": "reviews"}},
            "outboundTrafficPolicy": {"mode": "ALLOW_ANY"},
        },
    )
    seed.apply(ISTIO, "Sidecar", "default", inherit_ns, spec={"egress": [{"hosts": ["./*"]}]})
    seed.apply(
        ISTIO,
        "Sidecar",
        "default",
        plain_ns,
        spec={"outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"}},
    )

    # no root Sidecar yet: the mesh is open; the namespaces with their own Sidecar are not
    # in the "affected" list of the mesh-wide finding but have findings of their own
    result = run_audit(kubeconfig, istiod_namespace=root)
    assert result["_ok"]
    mesh = one(result, "outbound.mesh_allow_any", f"ConfigMap/{root}/istio-{rev}")
    assert mesh["severity"] in ("warning", "critical")
    assert f"Namespace/{open_ns}" not in texts(mesh)
    ns_open = one(result, "outbound.namespace_allow_any", f"Sidecar/{open_ns}/default")
    assert ns_open["severity"] == "error"
    assert one(result, "outbound.workload_allow_any", f"Sidecar/{open_ns}/reviews")["severity"] == (
        "error"
    )
    inherits = one(result, "outbound.sidecar_inherits_allow_any", f"Sidecar/{inherit_ns}/default")
    assert texts(inherits) == [f"Sidecar/{inherit_ns}/default", f"ConfigMap/{root}/istio-{rev}"]
    outside = one(result, "outbound.sidecar_outside_root", f"Sidecar/{plain_ns}/default")
    assert outside["severity"] == "warning"
    assert f"the root namespace is {root}" in outside["message"]

    # the root Sidecar closes the mesh; the mesh config's ALLOW_ANY stays an info
    seed.apply(
        ISTIO, "Sidecar", "default", root, spec={"outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"}}
    )
    closed = run_audit(kubeconfig, istiod_namespace=root)
    assert not [f for f in found(closed, "outbound.mesh_allow_any") if root in texts(f)[0]]
    info = one(closed, "outbound.mesh_config_allow_any", f"ConfigMap/{root}/istio-{rev}")
    assert info["severity"] == "info"
    assert one(closed, "outbound.namespace_allow_any", f"Sidecar/{open_ns}/default")


def test_missing_mesh_config_and_fail_on(kubeconfig: str, seed: Seeder) -> None:
    root = istiod_namespace(seed, None)
    result = run_audit(kubeconfig, istiod_namespace=root, fail_on="warning")
    assert result["_ok"] is False  # fail_on: warning
    finding = one(result, "outbound.mesh_config_missing", f"Namespace/{root}")
    assert finding["severity"] == "warning"
    assert result["summary"]["warning"] >= 1


# --------------------------------------------------------------------------- routing and access


def test_routing_and_access_holes_istio(kubeconfig: str, seed: Seeder) -> None:
    root = istiod_namespace(seed, {"accessLogFile": "/dev/stdout"})
    services = seed.namespace("svc")
    gw_ns = seed.namespace("gw")
    gw_labels = {"istio": f"egress-{seed.uid}"}
    gw_host = f"egress.{gw_ns}.svc.cluster.local"
    for name, host, resolution in [
        ("direct", f"direct-{seed.uid}.example.com", "DNS"),
        ("wild", f"*.wild-{seed.uid}.example.com", "DNS"),
        ("routed", f"routed-{seed.uid}.example.com", "DNS"),
    ]:
        seed.apply(
            ISTIO,
            "ServiceEntry",
            name,
            services,
            spec={
                "hosts": [host],
                "location": "MESH_EXTERNAL",
                "resolution": resolution,
                "ports": [{"number": 80, "name": "http", "protocol": "HTTP"}],
            },
        )
    routed = f"routed-{seed.uid}.example.com"
    seed.apply(
        ISTIO,
        "Gateway",
        "egress",
        gw_ns,
        spec={
            "selector": gw_labels,
            "servers": [
                {
                    "port": {"number": 443, "name": "https", "protocol": "HTTPS"},
                    "hosts": [f"{services}/{routed}"],
                    "tls": {"mode": "ISTIO_MUTUAL"},
                }
            ],
        },
    )
    seed.apply(
        ISTIO,
        "VirtualService",
        "routed",
        services,
        spec={
            "hosts": [routed],
            "gateways": ["mesh", f"{gw_ns}/egress"],
            "http": [
                {
                    "match": [{"gateways": ["mesh"], "port": 80}],
                    "route": [{"destination": {"host": gw_host, "port": {"number": 443}}}],
                },
                {
                    "match": [{"gateways": [f"{gw_ns}/egress"], "port": 443}],
                    "route": [{"destination": {"host": routed, "port": {"number": 80}}}],
                },
            ],
        },
    )

    result = run_audit(kubeconfig, istiod_namespace=root)
    direct = one(result, "routing.service_entry_direct", f"ServiceEntry/{services}/direct")
    assert f"direct-{seed.uid}.example.com" in direct["message"]
    assert one(result, "routing.wildcard_unroutable", f"ServiceEntry/{services}/wild")[
        "severity"
    ] == ("error")
    assert one(result, "routing.service_entry_direct", f"ServiceEntry/{services}/wild")[
        "severity"
    ] == ("error")
    assert not [f for f in result["findings"] if f"ServiceEntry/{services}/routed" in texts(f)]
    no_policy = one(result, "access.host_without_policy", f"Gateway/{gw_ns}/egress")
    assert no_policy["severity"] == "error" and routed in no_policy["message"]
    assert one(result, "lockdown.gateway_namespace_open", f"Namespace/{gw_ns}")

    # an ALLOW policy for one principal closes it; a rule without `from` opens it to everyone
    rules = [
        {"from": [{"source": {"principals": ["cluster.local/ns/bookinfo/sa/productpage"]}}]},
        {"to": [{"operation": {"hosts": [routed]}}]},
    ]
    seed.apply(
        "security.istio.io/v1",
        "AuthorizationPolicy",
        "allow",
        gw_ns,
        spec={"selector": {"matchLabels": gw_labels}, "action": "ALLOW", "rules": rules},
    )
    result = run_audit(kubeconfig, istiod_namespace=root)
    assert not [f for f in found(result, "access.host_without_policy") if gw_ns in texts(f)[0]]
    everyone = one(result, "access.allow_everyone", f"AuthorizationPolicy/{gw_ns}/allow")
    assert texts(everyone) == [f"AuthorizationPolicy/{gw_ns}/allow", f"Gateway/{gw_ns}/egress"]


def test_routing_and_access_holes_gloo(kubeconfig: str, seed: Seeder) -> None:
    root = istiod_namespace(seed, {"accessLogFile": "/dev/stdout"})
    services = seed.namespace("svc")
    gw_ns = seed.namespace("gw")
    vg_ref = {"name": "egress-vg", "namespace": gw_ns, "cluster": "cluster-1"}
    host = f"api-{seed.uid}.example.com"
    seed.apply(
        GLOO,
        "VirtualGateway",
        "egress-vg",
        gw_ns,
        spec={
            "workloads": [
                {"selector": {"labels": {"istio": f"egress-{seed.uid}"}, "namespace": gw_ns}}
            ],
            "listeners": [
                {
                    "port": {"number": 443},
                    "tls": {"mode": "ISTIO_MUTUAL"},
                    "http": {},
                    "exposedExternalServices": [{"host": host}],
                }
            ],
        },
    )

    def routed_port(number: int, match: int) -> dict[str, Any]:
        return {
            "number": number,
            "name": f"https-{number}",
            "protocol": "HTTPS",
            "clientsideTls": {},
            "egressGatewayRoutes": {"portMatch": match, "virtualGatewayRefs": [vg_ref]},
        }

    seed.apply(
        GLOO,
        "ExternalService",
        "api",
        services,
        spec={
            "hosts": [host],
            "ports": [routed_port(443, 80), {"number": 8443, "protocol": "TLS"}],
        },
    )
    seed.apply(
        GLOO,
        "ExternalService",
        "direct",
        services,
        spec={"hosts": [f"direct-{seed.uid}.example.com"], "ports": [{"number": 443}]},
    )
    seed.apply(
        GLOO,
        "ExternalService",
        "unexposed",
        services,
        spec={"hosts": [f"other-{seed.uid}.example.com"], "ports": [routed_port(443, 80)]},
    )
    result = run_audit(kubeconfig, istiod_namespace=root)
    assert one(result, "routing.external_service_direct", f"ExternalService/{services}/direct")
    port = one(result, "routing.port_direct", f"ExternalService/{services}/api")
    assert "port 8443" in port["message"]
    unexposed = one(result, "routing.not_exposed", f"ExternalService/{services}/unexposed")
    assert texts(unexposed)[1] == f"VirtualGateway/{gw_ns}/egress-vg"
    no_policy = one(result, "access.host_without_policy", f"VirtualGateway/{gw_ns}/egress-vg")
    assert texts(no_policy)[1] == f"ExternalService/{services}/api"

    seed.apply(
        "security.policy.gloo.solo.io/v2",
        "AccessPolicy",
        "everyone",
        gw_ns,
        spec={
            "applyToDestinations": [
                {
                    "kind": "EXTERNAL_SERVICE",
                    "selector": {"name": "api", "namespace": services},
                }
            ],
            "config": {"authz": {"allowedClients": [{"serviceAccountSelector": {}}]}},
        },
    )
    result = run_audit(kubeconfig, istiod_namespace=root)
    assert not [f for f in found(result, "access.host_without_policy") if gw_ns in texts(f)[0]]
    everyone = one(result, "access.allow_everyone", f"AccessPolicy/{gw_ns}/everyone")
    assert texts(everyone)[1] == f"ExternalService/{services}/api"


# --------------------------------------------------------------------------- lockdown, access log


def test_lockdown_and_access_log_holes(kubeconfig: str, seed: Seeder) -> None:
    root = istiod_namespace(seed, {})  # no accessLogFile
    seed.apply(
        ISTIO, "Sidecar", "default", root, spec={"outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"}}
    )
    bare = seed.namespace("bare", **{"istio-injection": "enabled"})
    wide = seed.namespace("wide", **{"istio-injection": "enabled"})
    nodns = seed.namespace("nodns", **{"istio-injection": "enabled"})
    noistiod = seed.namespace("noistiod", **{"istio-injection": "enabled"})
    good = seed.namespace("good", **{"istio-injection": "enabled"})
    gw_ns = seed.namespace("gw")
    netpol(seed, "lockdown", wide, [dns_rule(), istiod_rule(root)])
    netpol(seed, "internet", wide, [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}])
    netpol(seed, "lockdown", nodns, [istiod_rule(root)])
    netpol(seed, "lockdown", noistiod, [dns_rule()])
    netpol(seed, "lockdown", good, [dns_rule(), istiod_rule(root), {"to": [{"podSelector": {}}]}])
    gw_labels = {"istio": f"egress-{seed.uid}"}
    seed.apply(
        ISTIO,
        "ServiceEntry",
        "api",
        gw_ns,
        spec={"hosts": [f"api-{seed.uid}.example.com"], "ports": [{"number": 80, "name": "h"}]},
    )
    seed.apply(
        ISTIO,
        "Gateway",
        "egress",
        gw_ns,
        spec={
            "selector": gw_labels,
            "servers": [
                {
                    "port": {"number": 80, "name": "http", "protocol": "HTTP"},
                    "hosts": [f"./api-{seed.uid}.example.com"],
                }
            ],
        },
    )
    # the gateway namespace: internet for every pod, not only the gateway's
    netpol(seed, "lockdown", gw_ns, [dns_rule(), istiod_rule(root)])
    netpol(seed, "internet", gw_ns, [{}], {"matchLabels": {"role": "anything"}})

    result = run_audit(kubeconfig, istiod_namespace=root)
    assert one(result, "lockdown.namespace_without_egress_policy", f"Namespace/{bare}")
    open_rule = one(result, "lockdown.egress_open", f"NetworkPolicy/{wide}/internet")
    assert open_rule["severity"] == "error"
    assert texts(one(result, "lockdown.blocks_dns", f"Namespace/{nodns}")) == [
        f"Namespace/{nodns}",
        f"NetworkPolicy/{nodns}/lockdown",
    ]
    assert one(result, "lockdown.blocks_istiod", f"Namespace/{noistiod}")
    gw_open = one(result, "lockdown.gateway_namespace_open", f"NetworkPolicy/{gw_ns}/internet")
    assert texts(gw_open)[1] == f"Gateway/{gw_ns}/egress"
    log = one(result, "observability.access_log_off", f"Gateway/{gw_ns}/egress")
    assert texts(log)[1] == f"ConfigMap/{root}/istio"
    assert not [f for f in result["findings"] if any(good in t for t in texts(f))]

    # a Telemetry in the root namespace turns the gateway's access log on
    seed.apply(
        "telemetry.istio.io/v1",
        "Telemetry",
        "mesh-default",
        root,
        spec={"accessLogging": [{"providers": [{"name": "envoy"}]}]},
    )
    result = run_audit(kubeconfig, istiod_namespace=root)
    assert not [
        f
        for f in found(result, "observability.access_log_off")
        if f"Gateway/{gw_ns}/egress" in texts(f)
    ]


# ---------------------------------------------------------------- drift, JUnit, check mode


def test_drift_against_expected_objects_junit_and_check_mode(
    kubeconfig: str, seed: Seeder, tmp_path: Path
) -> None:
    root = istiod_namespace(seed, {"accessLogFile": "/dev/stdout"})
    ns = seed.namespace("drift")
    managed = {"labels": {"app.kubernetes.io/managed-by": "meshguard.egress"}}
    live = netpol(seed, "lockdown", ns, [{"to": [{"podSelector": {}}]}])
    seed.apply(
        "networking.k8s.io/v1",
        "NetworkPolicy",
        "stray",
        ns,
        metadata=managed,
        spec={"podSelector": {}, "policyTypes": ["Egress"]},
    )
    planned = json.loads(json.dumps(live))
    planned["spec"]["egress"] = [
        {"to": [{"podSelector": {}}]},
        {"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]},
    ]
    missing = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "absent", "namespace": ns},
        "spec": {"podSelector": {}},
    }
    junit = tmp_path / "audit.xml"
    result = run_audit(
        kubeconfig,
        "--check",
        istiod_namespace=root,
        expected_objects=[planned, missing],
        junit_path=str(junit),
        fail_severity="warning",
    )
    changed = one(result, "drift.changed", f"NetworkPolicy/{ns}/lockdown")
    assert "spec.egress: planned" in changed["message"]
    assert one(result, "drift.missing", f"NetworkPolicy/{ns}/absent")["severity"] == "error"
    assert one(result, "drift.unplanned", f"NetworkPolicy/{ns}/stray")["severity"] == "warning"

    cases = {c.get("name").split(":")[0]: c for c in ET.parse(junit).getroot().iter("testcase")}
    checks = {c["id"]: c for c in result["checks"]}
    assert list(cases) == list(checks)  # one testcase per check, in report order
    for check_id, case in cases.items():
        assert (case.find("failure") is not None) == checks[check_id]["failed"], check_id
    assert cases["drift.changed"].find("failure").get("type") == "warning"
    assert cases["audit.incomplete"].find("failure") is None

    without_plan = run_audit(kubeconfig, istiod_namespace=root, junit_path=str(junit))
    cases = {c.get("name").split(":")[0]: c for c in ET.parse(junit).getroot().iter("testcase")}
    assert cases["drift.missing"].find("skipped") is not None
    assert not found(without_plan, "drift.changed")


# --------------------------------------------------------------------------- read-only RBAC


def _rbac_items() -> list[dict[str, Any]]:
    return yaml.safe_load((ROOT / "playbooks" / "rbac" / "audit-clusterrole.yml").read_text())[
        "items"
    ]


def test_the_audit_role_is_read_only() -> None:
    for item in _rbac_items():
        for rule in item["rules"]:
            assert set(rule["verbs"]) <= {"get", "list"}, (item["metadata"]["name"], rule)
            assert "secrets" not in rule["resources"]


@pytest.fixture
def nobody_kubeconfig(testbed_dir: Path | None) -> str:
    if testbed_dir is None:
        pytest.skip("needs the local control plane's static-token user nobody")
    import testbed

    return testbed.LocalControlPlane(testbed_dir).kubeconfig_for("nobody")


def test_audit_runs_under_the_read_only_cluster_role(
    kubeconfig: str, nobody_kubeconfig: str, seed: Seeder, k8s: Any
) -> None:
    # the shipped Role reads ConfigMaps in istio-system: audit that namespace's mesh config
    from kubernetes.dynamic.exceptions import ConflictError

    with contextlib.suppress(ConflictError):  # what prepare.yml creates, kept like it
        k8s.resources.get(api_version="v1", kind="Namespace").create(
            body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-system"}}
        )
    seed.namespace("hole", **{"istio-injection": "enabled"})  # no lockdown: a finding

    forbidden = run_audit(nobody_kubeconfig)
    incomplete = found(forbidden, "audit.incomplete")
    assert incomplete and "403" in incomplete[0]["message"], forbidden["table"]
    assert {o["kind"] for o in incomplete[0]["objects"]} >= {"Namespace", "Sidecar", "ConfigMap"}

    bindings = yaml.safe_load((ROOT / "playbooks" / "rbac" / "audit-bindings.yml").read_text())
    nobody = [{"kind": "User", "name": "nobody", "apiGroup": "rbac.authorization.k8s.io"}]
    for item in _rbac_items():
        item["metadata"]["name"] += f"-{seed.uid}"
        body = {k: v for k, v in item.items() if k not in ("apiVersion", "kind", "metadata")}
        seed.apply(
            item["apiVersion"],
            item["kind"],
            item["metadata"]["name"],
            item["metadata"].get("namespace"),
            metadata={"labels": item["metadata"]["labels"]},
            **body,
        )
    for item in bindings["items"]:
        if not item["kind"].endswith("Binding"):
            continue
        item["roleRef"]["name"] += f"-{seed.uid}"
        seed.apply(
            item["apiVersion"],
            item["kind"],
            f"{item['metadata']['name']}-{seed.uid}",
            item["metadata"].get("namespace"),
            roleRef=item["roleRef"],
            subjects=nobody,
        )
    allowed = wait_for_rbac(lambda: run_audit(nobody_kubeconfig))
    assert not found(allowed, "audit.incomplete"), allowed["table"]
    assert allowed["not_installed"] == []  # every kind, Istio's and Gloo's, was read
    hole = f"Namespace/mg-audit-{seed.uid}-hole"
    assert one(allowed, "lockdown.namespace_without_egress_policy", hole)
    assert one(run_audit(kubeconfig), "lockdown.namespace_without_egress_policy", hole)


def wait_for_rbac(run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """RBAC objects take effect once the API server's informer has them: retry (bounded)."""
    deadline = time.monotonic() + 60
    while True:
        result = run()
        if not found(result, "audit.incomplete") or time.monotonic() > deadline:
            return result
        time.sleep(0.5)


# --------------------------------------------------------------------------- the converged example


@pytest.fixture
def converged_env(kubeconfig: str, gateway_chart: dict[str, str]) -> dict[str, str]:
    return _env(kubeconfig, gateway_chart)


def ansible_playbook(env: dict[str, str], playbook: str, *args: str, ok: bool = True) -> str:
    cmd = [str(VENV_BIN / "ansible-playbook"), "-i", "playbooks/inventory/example", playbook]
    proc = subprocess.run(
        [*cmd, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False
    )
    assert (proc.returncode == 0) == ok, proc.stdout[-4000:] + proc.stderr[-2000:]
    return proc.stdout


def junit_cases_of(path: Path) -> dict[str, Any]:
    return {c.get("name").split(":")[0]: c for c in ET.parse(path).getroot().iter("testcase")}


@pytest.mark.parametrize("flavor", ["gloo", "istio"])
def test_converged_example_reports_nothing_at_or_above_warning(
    converged_env: dict[str, str], kubeconfig: str, k8s: Any, flavor: str, tmp_path: Path
) -> None:
    terminating = [
        n.metadata.name
        for n in k8s.resources.get(api_version="v1", kind="Namespace").get().items
        if n.metadata.deletionTimestamp
    ]
    wait_namespaces_gone(k8s, terminating)  # other tests' namespaces, still being emptied
    ansible_playbook(converged_env, "molecule/shared/prepare.yml")
    seeded: list[str] = []
    args = ("-e", "@hack/embedded-vars.yml", "-e", f"egress_flavor={flavor}")
    junit = tmp_path / "audit.xml"
    audit_args = (*args, "-e", "audit_fail_on=warning", "-e", f"audit_junit_path={junit}")
    try:
        seeded = seed_real_mesh(k8s)
        ansible_playbook(converged_env, "playbooks/site.yml", *args)
        out = ansible_playbook(converged_env, "playbooks/audit.yml", *audit_args)
        assert "egress audit: " in out and "0 critical, 0 error, 0 warning" in out, out[-3000:]
        cases = junit_cases_of(junit)
        assert [n for n, c in cases.items() if c.find("failure") is not None] == []
        # the drift checks ran against the description's plan
        assert cases["drift.changed"].find("skipped") is None
        result = run_audit(kubeconfig, cluster="cluster-1")
        assert [f for f in result["findings"] if f["severity"] != "info"] == [], result["table"]
        assert found(result, "outbound.mesh_config_allow_any")

        # drift: the access log Telemetry deleted, an owned NetworkPolicy changed by hand
        telemetry = k8s.resources.get(api_version="telemetry.istio.io/v1", kind="Telemetry")
        (log,) = telemetry.get(namespace="istio-egress").items
        telemetry.delete(name=log.metadata.name, namespace="istio-egress")
        policies = k8s.resources.get(api_version="networking.k8s.io/v1", kind="NetworkPolicy")
        policies.patch(
            name="meshguard-egress-lockdown",
            namespace="bookinfo",
            body={"spec": {"egress": [{}]}},
            content_type="application/merge-patch+json",
        )
        out = ansible_playbook(converged_env, "playbooks/audit.yml", *audit_args, ok=False)
        cases = junit_cases_of(junit)
        failing = sorted(n for n, c in cases.items() if c.find("failure") is not None)
        expected = ["drift.changed", "drift.missing", "lockdown.egress_open"]
        expected.append("observability.access_log_off")
        if flavor == "istio":  # port 443 of the ServiceEntry: bookinfo can now reach it directly
            expected.append("routing.port_direct")
        assert failing == sorted(expected), out[-4000:]
        assert f"Telemetry/istio-egress/{log.metadata.name}" in cases["drift.missing"].find(
            "failure"
        ).get("message")
        assert "NetworkPolicy/bookinfo/meshguard-egress-lockdown" in cases["drift.changed"].find(
            "failure"
        ).get("message")
    finally:
        unseed_real_mesh(k8s, seeded)
        ansible_playbook(converged_env, "playbooks/teardown.yml", *args)


def seed_real_mesh(k8s: Any) -> list[str]:
    """What a real mesh has and prepare.yml does not: istiod's mesh ConfigMap (revision main;
    Istio's defaults: ALLOW_ANY, no access log file, the gateway's log comes from the
    description's Telemetry) and the bookinfo namespace joined to the mesh. Only what is not
    there yet is added (on a real cluster, its own mesh stays as it is); returns what was."""
    from kubernetes.dynamic.exceptions import NotFoundError

    added = []
    mesh = {"rootNamespace": "istio-system", "defaultConfig": {"discoveryAddress": "istiod"}}
    cm_api = k8s.resources.get(api_version="v1", kind="ConfigMap")
    try:
        cm_api.get(name="istio-main", namespace="istio-system")
    except NotFoundError:
        cm_api.create(
            namespace="istio-system",
            body={
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "istio-main", "namespace": "istio-system"},
                "data": {"mesh": yaml.safe_dump(mesh)},
            },
        )
        added.append("configmap")
    ns_api = k8s.resources.get(api_version="v1", kind="Namespace")
    labels = ns_api.get(name="bookinfo").metadata.labels or {}
    if "istio.io/rev" not in labels and "istio-injection" not in labels:
        ns_api.patch(
            name="bookinfo",
            body={"metadata": {"labels": {"istio.io/rev": "main"}}},
            content_type="application/merge-patch+json",
        )
        added.append("label")
    return added


def unseed_real_mesh(k8s: Any, added: list[str]) -> None:
    from kubernetes.dynamic.exceptions import NotFoundError

    if "configmap" in added:
        with contextlib.suppress(NotFoundError):
            k8s.resources.get(api_version="v1", kind="ConfigMap").delete(
                name="istio-main", namespace="istio-system"
            )
    if "label" in added:
        with contextlib.suppress(NotFoundError):
            k8s.resources.get(api_version="v1", kind="Namespace").patch(
                name="bookinfo",
                body={"metadata": {"labels": {"istio.io/rev": None}}},
                content_type="application/merge-patch+json",
            )


def test_kinds_whose_crd_is_not_installed_are_skipped(
    kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from types import SimpleNamespace

    from kubernetes import config, dynamic

    sys.path.insert(0, str(ROOT / ".venv" / "collections"))
    from ansible_collections.meshguard.egress.plugins.module_utils import _audit
    from ansible_collections.meshguard.egress.plugins.modules import egress_audit

    client = dynamic.DynamicClient(config.new_client_from_config(kubeconfig))
    # a kind this API server does not serve, as Telemetry is on a cluster without its CRD
    monkeypatch.setitem(_audit.KINDS, "Telemetry", ("telemetry.example.invalid", ("v1",)))
    module = SimpleNamespace(params={"include_pods": False, "istiod_namespace": "istio-system"})
    inventory, missing, errors = egress_audit.read_inventory(module, client)
    assert (missing, errors) == (["Telemetry"], {})
    assert inventory["Telemetry"] == [] and inventory["Pod"] == []
    assert len(inventory["Namespace"]) > 0
