"""Invalid descriptions through ``ansible-playbook playbooks/site.yml`` on the real API server.

Every case must fail before any write (in the description's validation, or in the
preflight that dry-runs every object and the chart's manifests on the API server), with a
message naming the offending field, and leave the cluster exactly as it was: same objects of
every kind the collection writes (their whole content, apart from what controllers change by
themselves), same namespaces and nodes, same Helm releases. The cluster is prepared the way
the procedure expects it (bookinfo, istio-system, a gateway node), so an input that slipped
through validation would really be written.
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ansible_collections.meshguard.egress.plugins.plugin_utils.plan import (
    MANAGED_KINDS as PLAN_KINDS,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
HELM = Path(sys.executable).parent / "helm"
MANAGED = "app.kubernetes.io/managed-by=meshguard.egress"
# the kinds the collection writes, and the namespaces it creates
MANAGED_KINDS = [*PLAN_KINDS, ("v1", "Namespace")]
EXAMPLE = yaml.safe_load(
    (ROOT / "playbooks/inventory/example/group_vars/all/egress.yml").read_text()
)
GATEWAY = yaml.safe_load((ROOT / "molecule/shared/gateway-vars.yml").read_text())[
    "egress_override_tests"
]["gateway"]
SERVICE = EXAMPLE["egress_services"][0]


def _service(**changes: Any) -> dict[str, Any]:
    """Extra vars with the example service changed (a value None removes the key)."""
    service = copy.deepcopy(SERVICE)
    service.update(changes)
    return {"egress_services": [{k: v for k, v in service.items() if v is not None}]}


def _port(**changes: Any) -> dict[str, Any]:
    port = {**SERVICE["ports"][0], **changes}
    return _service(ports=[{k: v for k, v in port.items() if v is not None}])


def _client(**changes: Any) -> dict[str, Any]:
    client = {**SERVICE["clients"][0], **changes}
    return _service(clients=[{k: v for k, v in client.items() if v is not None}])


def _gateway(**changes: Any) -> dict[str, Any]:
    """One gateway setting changed, as a partial override on top of the inventory's."""
    return {"egress_override_zz_case": {"gateway": changes}}


def _extra_values(values: dict[str, Any]) -> dict[str, Any]:
    return _gateway(extra_values={**GATEWAY["extra_values"], **values})


HTTP_80 = {"number": 80, "protocol": "HTTP", "name": "http"}
TCP_5432 = {"number": 5432, "protocol": "TCP", "name": "pg", "via_gateway": False}

# (id, extra vars, field path the message must name, text of the offending value)
CASES: list[tuple[str, dict[str, Any], str, str]] = [
    ("unknown-flavor", {"egress_flavor": "linkerd"}, "flavor", "'linkerd'"),
    ("flavor-not-a-string", {"egress_flavor": 3}, "flavor", "3"),
    ("cluster-not-a-name", {"egress_cluster": "Cluster_1"}, "cluster", "'Cluster_1'"),
    ("trust-domain", {"egress_trust_domain": "cluster local"}, "trust_domain", "cluster local"),
    ("revision", {"egress_revision": "1-23/x"}, "revision", "1-23/x"),
    ("services-namespace", {"egress_services_namespace": "Global"}, "services_namespace", "Global"),
    ("services-not-a-list", {"egress_services": {"host": "a.com"}}, "services", "a.com"),
    ("services-empty", {"egress_services": []}, "services", "[]"),
    ("host-missing", _service(host=None), "services[0].host", "None"),
    ("host-not-a-string", _service(host=42), "services[0].host", "42"),
    ("host-with-scheme", _service(host="https://a.com"), "services[0].host", "https://a.com"),
    ("host-with-port", _service(host="httpbin.org:443"), "services[0].host", "httpbin.org:443"),
    ("host-with-path", _service(host="httpbin.org/get"), "services[0].host", "httpbin.org/get"),
    ("host-inner-wildcard", _service(host="a.*.example.com"), "services[0].host", "a.*.example"),
    ("host-double-wildcard", _service(host="*.*.example.com"), "services[0].host", "*.*.example"),
    ("host-uppercase-underscore", _service(host="Bad_Host.org"), "services[0].host", "Bad_Host"),
    ("unknown-service-key", _service(hosts=["a.com"]), "services[0].hosts", "a.com"),
    ("ports-missing", _service(ports=None), "services[0].ports", "None"),
    ("ports-empty", _service(ports=[]), "services[0].ports", "[]"),
    ("port-zero", _port(number=0), "services[0].ports[0].number", "0"),
    ("port-too-big", _port(number=99999), "services[0].ports[0].number", "99999"),
    ("port-a-string", _port(number="https"), "services[0].ports[0].number", "'https'"),
    ("protocol-unknown", _port(protocol="GRPC"), "services[0].ports[0].protocol", "GRPC"),
    ("client-port-too-big", _port(client_port=70000), "services[0].ports[0].client_port", "70000"),
    (
        "client-ports-conflict",
        _service(ports=[SERVICE["ports"][0], {**HTTP_80, "client_port": 80}]),
        "services[0].ports[1].client_port",
        "80",
    ),
    (
        "origination-on-http",
        _service(ports=[{**HTTP_80, "tls_origination": True}]),
        "services[0].ports[0].tls_origination",
        "True",
    ),
    (
        "sni-without-origination",
        _port(tls_origination=False, sni="httpbin.org"),
        "services[0].ports[0].sni",
        "httpbin.org",
    ),
    (
        "tcp-via-gateway",
        _service(ports=[{**TCP_5432, "via_gateway": True}]),
        "services[0].ports[0].via_gateway",
        "True",
    ),
    (
        "wildcard-not-via-gateway",
        _service(host="*.example.com", ports=[TCP_5432], clients=None),
        "services[0].ports[0].via_gateway",
        "False",
    ),
    (  # gloo routes an ExternalService without ExternalEndpoints by DNS: not a wildcard
        "gloo-wildcard-without-endpoints",
        _service(host="*.example.com", ports=[HTTP_80], clients=None),
        "services[0].host",
        "*.example.com",
    ),
    (  # Gloo's default SNI would be the wildcard itself
        "gloo-wildcard-origination-without-sni",
        _service(host="*.example.com", endpoints=["203.0.113.10"], clients=None),
        "services[0].ports[0].sni",
        "None",
    ),
    (
        "endpoint-wildcard",
        _service(endpoints=["*.example.net"]),
        "services[0].endpoints[0]",
        "*.example.net",
    ),
    (
        "endpoints-with-istio",
        {**_service(endpoints=["203.0.113.10"]), "egress_flavor": "istio"},
        "services[0].endpoints",
        "203.0.113.10",
    ),
    (
        "duplicate-host",
        {"egress_services": [SERVICE, {**SERVICE, "access_policy_name": "second"}]},
        "services[1].host",
        "httpbin.org",
    ),
    ("clients-not-a-list", _service(clients="bookinfo"), "services[0].clients", "bookinfo"),
    ("client-without-namespace", _client(namespace=None), "services[0].clients[0].namespace", ""),
    (
        "client-without-service-account",
        _client(service_account=None),
        "services[0].clients[0].service_account",
        "",
    ),
    (
        "client-bad-namespace",
        _client(namespace="Book_Info"),
        "services[0].clients[0].namespace",
        "Book_Info",
    ),
    (
        "labels-client-on-istio",
        {"egress_flavor": "istio", **_client(service_account=None, labels={"app": "x"})},
        "services[0].clients[0].labels",
        "app",
    ),
    ("gateway-listener-port", _gateway(listener_port=0), "gateway.listener_port", "0"),
    (
        "gateway-empty-selector",
        {"egress_gateway": {**EXAMPLE["egress_gateway"], "selector": {}}},
        "gateway.selector",
        "{}",
    ),
    ("gateway-bad-namespace", _gateway(namespace="istio egress"), "gateway.namespace", "istio"),
    ("gateway-replicas-zero", _gateway(replicas=0), "gateway.replicas", "0"),
    ("extra-values-not-a-dict", _gateway(extra_values=["x"]), "gateway.extra_values", "['x']"),
    ("gateway-key-typo", _gateway(replicsa=2), "gateway.replicsa", "2"),
    ("unknown-variable", {"egress_gatway": {"replicas": 2}}, "egress_gatway", "replicas"),
    ("gateway-reserved-port", _gateway(listener_port=15001), "gateway.listener_port", "15001"),
    ("client-reserved-port", _port(client_port=15006), "services[0].ports[0].client_port", "15006"),
    (
        "lockdown-kube-system",
        {"egress_lockdown": {"namespaces": ["bookinfo", "kube-system"]}},
        "lockdown.namespaces[1]",
        "kube-system",
    ),
    ("chart-version-a-number", _gateway(chart_version=1.2), "gateway.chart_version", "1.2"),
    (
        "outbound-mode",
        {"egress_outbound_policy": {"mode": "DENY"}},
        "outbound_policy.mode",
        "DENY",
    ),
    (
        "outbound-scope",
        {"egress_outbound_policy": {"scope": "cluster"}},
        "outbound_policy.scope",
        "cluster",
    ),
    (
        "lockdown-namespaces-not-a-list",
        {"egress_lockdown": {"namespaces": "bookinfo"}},
        "lockdown.namespaces",
        "bookinfo",
    ),
    (
        "lockdown-allow-bad-port",
        {"egress_lockdown": {"allow": [{"namespace": "db", "ports": [{"port": 70000}]}]}},
        "lockdown.allow[0].ports[0].port",
        "70000",
    ),
    # values Istio's gateway chart schema rejects (values.schema.json)
    ("chart-kind", _extra_values({"kind": "StatefulSet"}), "values.kind", "StatefulSet"),
    ("chart-replica-count", _extra_values({"replicaCount": "two"}), "values.replicaCount", "two"),
    (
        "chart-pull-policy",
        _extra_values({"imagePullPolicy": "Sometimes"}),
        "values.imagePullPolicy",
        "Sometimes",
    ),
    (
        "chart-autoscaling-type",
        _extra_values({"autoscaling": {"enabled": "yes"}}),
        "values.autoscaling.enabled",
        "yes",
    ),
    # values the chart schema allows but the API server rejects (the preflight's dry run)
    ("api-service-type", _extra_values({"service": {"type": "Bogus"}}), "spec.type", "Bogus"),
]


def _helm_releases(kubeconfig: str) -> list[tuple[str, str, str, str]]:
    listed = subprocess.run(
        [str(HELM), "list", "--all-namespaces", "--all", "--output", "json"],
        env={"KUBECONFIG": kubeconfig, "HOME": str(Path.home())},
        capture_output=True,
        text=True,
        check=True,
    )
    return sorted(
        (r["namespace"], r["name"], r["revision"], r["status"]) for r in json.loads(listed.stdout)
    )


# What controllers change on their own, which a snapshot must not compare (everything else,
# labels, annotations, taints and specs included, is compared):
# - metadata.resourceVersion and metadata.managedFields: bumped and recorded by every write,
#   a controller's too (the node lifecycle controller updates a Node without a kubelet
#   about a minute after it is created);
# - status: the controllers' reports (Node conditions, Namespace phase);
# - on Nodes, the taints the node lifecycle controller manages (node.kubernetes.io/*) and the
#   ttl controller's annotation.
CONTROLLER_TAINT_PREFIX = "node.kubernetes.io/"
CONTROLLER_ANNOTATIONS = ("node.alpha.kubernetes.io/ttl",)


def _comparable(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    obj = copy.deepcopy(obj)
    obj.pop("status", None)
    meta = obj["metadata"]
    for key in ("resourceVersion", "managedFields"):
        meta.pop(key, None)
    if kind == "Node":
        annotations = {
            k: v for k, v in (meta.get("annotations") or {}).items()
            if k not in CONTROLLER_ANNOTATIONS
        }  # fmt: skip
        meta["annotations"] = annotations or None
        spec = obj.get("spec") or {}
        taints = [
            t for t in spec.get("taints") or [] if not t["key"].startswith(CONTROLLER_TAINT_PREFIX)
        ]
        spec["taints"] = taints or None
        obj["spec"] = spec
    return obj


def cluster_snapshot(k8s: Any, kubeconfig: str) -> dict[str, Any]:
    """Every object of the kinds the collection writes, namespaces and nodes (all of their
    content but what controllers change by themselves), and the Helm releases of every
    namespace."""
    objects = {}
    for api_version, kind in [*MANAGED_KINDS, ("v1", "Node")]:
        for item in k8s.resources.get(api_version=api_version, kind=kind).get().items:
            obj = item.to_dict()
            meta = obj["metadata"]
            objects[(kind, meta.get("namespace") or "", meta["name"])] = _comparable(kind, obj)
    return {"objects": objects, "helm": _helm_releases(kubeconfig)}


def test_the_snapshot_ignores_controllers_and_sees_writes(k8s: Any, kubeconfig: str) -> None:
    """What a controller does to a Node is ignored; a label or taint the collection could
    write shows (so the comparison below can fail)."""
    nodes = k8s.resources.get(api_version="v1", kind="Node")
    name = "mg-snapshot-probe"
    nodes.create(body={"metadata": {"name": name}})
    try:
        before = cluster_snapshot(k8s, kubeconfig)
        # what the node lifecycle and ttl controllers do to a Node that has no kubelet
        nodes.patch(
            name=name,
            body={
                "metadata": {"annotations": {"node.alpha.kubernetes.io/ttl": "0"}},
                "spec": {
                    "taints": [{"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}]
                },
            },
            content_type="application/merge-patch+json",
        )
        nodes.status.patch(
            name=name,
            body={"status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}},
            content_type="application/merge-patch+json",
        )
        after_controllers = cluster_snapshot(k8s, kubeconfig)
        diff = {
            key: (before["objects"].get(key), value)
            for key, value in after_controllers["objects"].items()
            if before["objects"].get(key) != value
        }
        assert after_controllers == before, diff
        nodes.patch(
            name=name,
            body={"metadata": {"labels": {"egress": "true"}}},
            content_type="application/merge-patch+json",
        )
        after = cluster_snapshot(k8s, kubeconfig)
        assert after != before
        assert after["objects"][("Node", "", name)]["metadata"]["labels"]["egress"] == "true"
        taint = {"key": "egress", "value": "true", "effect": "NoSchedule"}
        nodes.patch(
            name=name,
            body={"spec": {"taints": [taint]}},
            content_type="application/merge-patch+json",
        )
        assert cluster_snapshot(k8s, kubeconfig) != after
    finally:
        nodes.delete(name=name)


@pytest.fixture(scope="module")
def prepared_cluster(k8s: Any) -> Iterator[None]:
    """What molecule/shared/prepare.yml creates: bookinfo, istio-system and a gateway node."""
    from kubernetes.dynamic.exceptions import ConflictError

    namespaces = k8s.resources.get(api_version="v1", kind="Namespace")
    nodes = k8s.resources.get(api_version="v1", kind="Node")
    for name in ("bookinfo", "istio-system"):
        with contextlib.suppress(ConflictError):
            namespaces.create(body={"metadata": {"name": name}})
    with contextlib.suppress(ConflictError):
        nodes.create(body={"metadata": {"name": GATEWAY["dedicated_nodes"][0]}})
    yield
    _delete_managed_objects(k8s)  # only a failed case leaves any: keep later tests clean


def _delete_managed_objects(k8s: Any) -> None:
    for api_version, kind in MANAGED_KINDS:
        api = k8s.resources.get(api_version=api_version, kind=kind)
        for item in api.get(label_selector=MANAGED).items:
            api.delete(name=item.metadata.name, namespace=item.metadata.namespace)


def failed_task(stdout: str) -> str:
    """The name of the task whose result was the first failure of the run."""
    failure = re.search(r"^(fatal|failed): \[", stdout, re.MULTILINE)
    assert failure, f"the run reported no failed task:\n{stdout[-3000:]}"
    tasks = re.findall(r"^TASK \[(.+?)\] \*+$", stdout[: failure.start()], re.MULTILINE)
    assert tasks, stdout[-3000:]
    return tasks[-1]


@pytest.mark.parametrize(
    ("extra_vars", "field", "value"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_invalid_description_fails_before_any_write(
    extra_vars: dict[str, Any],
    field: str,
    value: str,
    run_playbook: Any,
    k8s: Any,
    kubeconfig: str,
    gateway_chart: dict[str, str],
    prepared_cluster: None,
) -> None:
    if field.startswith("values.") and not gateway_chart.get("MESHGUARD_GATEWAY_SCHEMA"):
        pytest.skip("the gateway chart has no values.schema.json (hack/chart.sh)")
    before = cluster_snapshot(k8s, kubeconfig)

    proc = run_playbook("playbooks/site.yml", extra_vars)

    assert proc.returncode != 0, proc.stdout[-3000:]
    assert proc.stats["localhost"]["changed"] == 0
    assert failed_task(proc.stdout) == "Apply the plan of the egress description", proc.stdout[
        -3000:
    ]
    assert re.search(r"invalid egress description|nothing was written", proc.stdout), proc.stdout[
        -3000:
    ]
    assert re.search(rf"(^|\W){re.escape(field)}: [^\n]*{re.escape(value)}", proc.stdout), (
        f"no message naming {field} (with {value}):\n{proc.stdout[-3000:]}"
    )
    assert cluster_snapshot(k8s, kubeconfig) == before


def test_check_mode_reports_the_failure_the_real_run_would_hit(
    run_playbook: Any, k8s: Any, kubeconfig: str, prepared_cluster: None
) -> None:
    """A value only the API server rejects, and a namespace nobody creates: --check fails
    with the same message as the real run, and neither writes anything."""
    before = cluster_snapshot(k8s, kubeconfig)
    cases = [
        (_extra_values({"service": {"type": "Bogus"}}), 'Unsupported value: \\"Bogus\\"'),
        (
            {"egress_outbound_policy": {"root_namespace": "istio-config"}},
            "namespace 'istio-config' does not exist, and this description does not create it",
        ),
    ]
    for extra_vars, message in cases:
        checked = run_playbook("playbooks/site.yml", extra_vars, "--check")
        real = run_playbook("playbooks/site.yml", extra_vars)
        for proc in (checked, real):
            assert proc.returncode != 0
            assert message in proc.stdout, proc.stdout[-3000:]
            assert "nothing was written" in proc.stdout
    assert cluster_snapshot(k8s, kubeconfig) == before
