"""The verification modules against real pods on the test bed's node.

In one namespace: an upstream pod (busybox httpd, playing httpbin.org), a real Envoy pod
playing the egress gateway (container ``istio-proxy``; RBAC denies ``forbidden.example``
with Envoy's own ``403 RBAC: access denied``, routes ``httpbin.org`` to the upstream, and
answers other hosts 502 like REGISTRY_ONLY; Istio's JSON access log on stdout, flushed
every 200 ms), a client pod with curl (``productpage``) and a pod without curl
(``nocurl``, only the pause binary). The test hosts resolve to the gateway's ClusterIP
through hostAliases; all traffic stays inside the node's network namespace.

* ``egress_probe`` with a pod source runs every probe of the pod in one exec (counted in
  the API server's audit log) and classifies 200 / 403 RBAC / 502;
* with ``debug_image`` it adds an ephemeral container (feature gate EphemeralContainers,
  alpha in 1.20) to the pod without curl and probes from there;
* ``gateway_access_log`` reads the Envoy pod's log through the API and finds the requests;
* a ``bypass_image`` source creates a temporary pod without a sidecar, probes from it and
  deletes it; a claimed ``service_account`` that the pod does not run as is an error; a
  ``not_proven`` probe is reported, neither held nor failed.
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import node_pods
from envoy_gateway import ISTIO_JSON_FORMAT, run_module
from node_pods import IMAGES, container, pod_body

pytestmark = pytest.mark.integration

HOSTS = ["httpbin.org", "forbidden.example", "unregistered.example"]
UPSTREAM_CLUSTER = "outbound|80||httpbin.org"


def envoy_config(upstream_ip: str) -> dict[str, Any]:
    authority = {"header": {"name": ":authority", "string_match": {"exact": "forbidden.example"}}}
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager"
        ".v3.HttpConnectionManager",
        "stat_prefix": "egress",
        "access_log": [
            {
                "name": "envoy.access_loggers.stdout",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3"
                    ".StdoutAccessLog",
                    "log_format": {"json_format": ISTIO_JSON_FORMAT},
                },
            }
        ],
        "http_filters": [
            {
                "name": "envoy.filters.http.rbac",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
                    "rules": {
                        "action": "DENY",
                        "policies": {
                            "deny-forbidden": {
                                "permissions": [authority],
                                "principals": [{"any": True}],
                            }
                        },
                    },
                },
            },
            {
                "name": "envoy.filters.http.router",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
                },
            },
        ],
        "route_config": {
            "virtual_hosts": [
                {
                    "name": "httpbin.org:80",
                    "domains": ["httpbin.org", "forbidden.example"],
                    "routes": [{"match": {"prefix": "/"}, "route": {"cluster": UPSTREAM_CLUSTER}}],
                },
                {
                    "name": "block_all",
                    "domains": ["*"],
                    "routes": [{"match": {"prefix": "/"}, "direct_response": {"status": 502}}],
                },
            ]
        },
    }
    endpoint = {"address": {"socket_address": {"address": upstream_ip, "port_value": 80}}}
    return {
        "static_resources": {
            "listeners": [
                {
                    "name": "http",
                    "address": {"socket_address": {"address": "0.0.0.0", "port_value": 8080}},
                    "filter_chains": [
                        {
                            "filters": [
                                {
                                    "name": "envoy.filters.network.http_connection_manager",
                                    "typed_config": hcm,
                                }
                            ]
                        }
                    ],
                }
            ],
            "clusters": [
                {
                    "name": UPSTREAM_CLUSTER,
                    "type": "STATIC",
                    "connect_timeout": "5s",
                    "load_assignment": {
                        "cluster_name": UPSTREAM_CLUSTER,
                        "endpoints": [{"lb_endpoints": [{"endpoint": endpoint}]}],
                    },
                }
            ],
        }
    }


@pytest.fixture(scope="module")
def mesh(node_testbed: Any) -> Any:
    """The pods and Services of the module docstring; yields a small namespace object."""
    core = node_pods.core_api(node_testbed.kubeconfig)
    ns = "mg-verify-node"
    node_pods.delete_namespace(core, ns)
    node_pods.wait_for(lambda: ns not in _namespaces(core), 120, f"old {ns} gone")
    node_pods.create_namespace(core, ns)
    try:
        httpd = (
            'mkdir -p /www && echo \'{"url": "/get"}\' > /www/get && exec httpd -f -p 8080 -h /www'
        )
        node_pods.run_pod(
            core,
            ns,
            pod_body("httpbin", [container("httpbin", IMAGES["curl"], ["/bin/sh", "-c", httpd])]),
        )
        upstream_ip = node_pods.service(core, ns, "httpbin", {"app": "httpbin"}, 80, 8080)
        core.create_namespaced_config_map(
            ns,
            {
                "metadata": {"name": "egressgateway"},
                "data": {"envoy.yaml": yaml.safe_dump(envoy_config(upstream_ip))},
            },
        )
        envoy_args = [
            "-c", "/etc/envoy/envoy.yaml", "--file-flush-interval-msec", "200",
            "--disable-hot-restart", "--log-level", "warn",
        ]  # fmt: skip
        gateway = pod_body(
            "egressgateway",
            [
                container(
                    "istio-proxy",
                    IMAGES["envoy"],
                    args=envoy_args,
                    volumeMounts=[{"name": "config", "mountPath": "/etc/envoy"}],
                )
            ],
            labels={"app": "egressgateway", "istio": "egressgateway"},
            volumes=[{"name": "config", "configMap": {"name": "egressgateway"}}],
        )
        node_pods.run_pod(core, ns, gateway)
        gateway_ip = node_pods.service(
            core, ns, "egressgateway", {"app": "egressgateway"}, 80, 8080
        )
        aliases = {gateway_ip: HOSTS}
        node_pods.run_pod(
            core,
            ns,
            pod_body(
                "productpage",
                [container("curl", IMAGES["curl"], ["sleep", "3600"])],
                host_aliases=aliases,
            ),
        )
        node_pods.run_pod(
            core,
            ns,
            pod_body("nocurl", [container("app", IMAGES["pause"])], host_aliases=aliases),
        )
        # Ready pods do not mean programmed Services: wait (bounded) for both ClusterIPs
        node_pods.wait_http(core, ns, "productpage", f"http://{upstream_ip}/get")
        status = node_pods.wait_http(core, ns, "productpage", "http://httpbin.org/get")
        assert status == "200", status
        httpbin_ip = core.read_namespaced_pod("httpbin", ns).status.pod_ip
        yield type(
            "Mesh",
            (),
            {
                "ns": ns,
                "core": core,
                "kubeconfig": node_testbed.kubeconfig,
                "upstream_ip": upstream_ip,
                "httpbin_ip": httpbin_ip,
            },
        )
    finally:
        node_pods.delete_namespace(core, ns)


def _namespaces(core: Any) -> list[str]:
    return [n.metadata.name for n in core.list_namespace().items]


def _exec_requests(audit_log: Path, namespace: str, pod: str) -> set[str]:
    """Audit IDs of exec requests into ``namespace/pod`` (the API server's audit log)."""
    ids = set()
    if not audit_log.exists():
        return ids
    for line in audit_log.read_text().splitlines():
        event = json.loads(line)
        ref = event.get("objectRef") or {}
        if (
            ref.get("subresource") == "exec"
            and ref.get("namespace") == namespace
            and ref.get("name") == pod
        ):
            ids.add(event["auditID"])
    return ids


def _probe(host: str, expect: str, source: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": f"{source['pod']} -> {host}",
        "url": f"http://{host}/get",
        "expect": expect,
        "source": source,
        "timeout": 5,
        "connect_timeout": 3,
    }


def test_egress_probe_from_a_pod_one_exec(mesh: Any, node_testbed: Any, tmp_path: Path) -> None:
    source = {"namespace": mesh.ns, "pod": "productpage", "container": "curl"}
    probes = [
        _probe("httpbin.org", "allowed", source),
        _probe("forbidden.example", "denied", source),
        _probe("unregistered.example", "blocked", source),
    ]
    audit = node_testbed.dir / "audit.log"
    before = _exec_requests(audit, mesh.ns, "productpage")
    result = run_module(
        "egress_probe",
        {"probes": probes, "deadline": 20, "kubeconfig": mesh.kubeconfig},
        tmp_path,
    )
    assert not result["failed"], result
    assert result["changed"] is False
    by_name = {p["name"]: p for p in result["probes"]}
    allowed = by_name["productpage -> httpbin.org"]
    assert allowed["outcome"] == "allowed" and allowed["status"] == 200, allowed
    assert allowed["headers"].get("server") == "envoy"
    assert allowed["source"] == f"{mesh.ns}/productpage/curl"
    denied = by_name["productpage -> forbidden.example"]
    assert denied["outcome"] == "denied" and denied["status"] == 403, denied
    assert "RBAC: access denied" in denied["body_excerpt"]
    blocked = by_name["productpage -> unregistered.example"]
    assert blocked["outcome"] == "blocked" and blocked["status"] == 502, blocked
    # one exec per source pod and round (a round re-runs the probes that did not hold yet)
    rounds = max(p["attempts"] for p in result["probes"])
    execs = node_pods.wait_for(
        lambda: _exec_requests(audit, mesh.ns, "productpage") - before or None,
        30,
        "exec requests in the audit log",
    )
    assert len(execs) == rounds, (execs, result["probes"])


def test_egress_probe_mismatch_fails(mesh: Any, tmp_path: Path) -> None:
    source = {"namespace": mesh.ns, "pod": "productpage", "container": "curl"}
    result = run_module(
        "egress_probe",
        {
            "probes": [_probe("forbidden.example", "allowed", source)],
            "deadline": 0,
            "kubeconfig": mesh.kubeconfig,
        },
        tmp_path,
    )
    assert result["failed"], result
    assert result["probes"][0]["outcome"] == "denied"
    assert "1 of 1 probes did not hold" in result["msg"]


def test_egress_probe_from_an_ephemeral_debug_container(mesh: Any, tmp_path: Path) -> None:
    source = {
        "namespace": mesh.ns,
        "pod": "nocurl",
        "container": "app",
        "debug_image": IMAGES["curl"],
    }
    # without the debug container, the pod has no shell or curl to run the probes with
    plain = {k: v for k, v in source.items() if k != "debug_image"}
    no_shell = run_module(
        "egress_probe",
        {
            "probes": [_probe("httpbin.org", "allowed", plain)],
            "deadline": 0,
            "kubeconfig": mesh.kubeconfig,
        },
        tmp_path,
    )
    assert no_shell["failed"] and no_shell["probes"][0]["outcome"] == "error", no_shell
    result = run_module(
        "egress_probe",
        {
            "probes": [
                _probe("httpbin.org", "allowed", source),
                _probe("forbidden.example", "denied", source),
            ],
            "deadline": 20,
            "kubeconfig": mesh.kubeconfig,
        },
        tmp_path,
    )
    assert not result["failed"], result
    assert [p["outcome"] for p in result["probes"]] == ["allowed", "denied"]
    pod = mesh.core.read_namespaced_pod("nocurl", mesh.ns).to_dict()
    debug = pod["spec"]["ephemeral_containers"]
    assert len(debug) == 1 and debug[0]["name"].startswith("meshguard-probe-"), debug
    assert debug[0]["image"] == IMAGES["curl"] and debug[0]["target_container_name"] == "app"
    # a second run reuses the running debug container
    again = run_module(
        "egress_probe",
        {"probes": [_probe("httpbin.org", "allowed", source)], "kubeconfig": mesh.kubeconfig},
        tmp_path,
    )
    assert not again["failed"], again
    pod = mesh.core.read_namespaced_pod("nocurl", mesh.ns).to_dict()
    assert len(pod["spec"]["ephemeral_containers"]) == 1


def test_gateway_access_log_reads_the_envoy_pod(mesh: Any, tmp_path: Path) -> None:
    source = {"namespace": mesh.ns, "pod": "productpage", "container": "curl"}
    sent = run_module(
        "egress_probe",
        {
            "probes": [
                {**_probe("httpbin.org", "allowed", source), "url": "http://httpbin.org/get?x=log"},
                _probe("forbidden.example", "denied", source),
            ],
            "kubeconfig": mesh.kubeconfig,
        },
        tmp_path,
    )
    assert not sent["failed"], sent
    args = {
        "namespace": mesh.ns,
        "label_selector": "istio=egressgateway",
        "container": "istio-proxy",
        "kubeconfig": mesh.kubeconfig,
        "expect_requests": [
            {"authority": "httpbin.org", "path": "/get", "response_code": [200]},
            {"authority": "forbidden.example", "response_code": [403]},
        ],
    }

    def logged() -> dict[str, Any] | None:  # Envoy flushes its access log every 200 ms
        result = run_module("gateway_access_log", args, tmp_path)
        return None if result["failed"] else result

    result = node_pods.wait_for(logged, 30, "the requests in the gateway's log", interval=0.5)
    assert result["changed"] is False
    records = [r for r in result["records"] if r["path"] == "/get?x=log"]
    assert records and records[0]["authority"] == "httpbin.org", result["records"]
    assert records[0]["response_code"] == 200
    assert records[0]["upstream_cluster"] == UPSTREAM_CLUSTER
    denied = [r for r in result["records"] if r["authority"] == "forbidden.example"]
    assert denied and denied[0]["response_code"] == 403
    assert denied[0]["response_code_details"] == "rbac_access_denied_matched_policy[deny-forbidden]"

    missing = run_module(
        "gateway_access_log",
        {**args, "expect_requests": [{"authority": "never.example"}]},
        tmp_path,
    )
    assert missing["failed"], missing
    assert "never.example" in missing["msg"]


# --------------------------------------------------------------------------- bypass pods

NOT_ENFORCED = (
    "NetworkPolicies are not enforced on this cluster (verify.network_policies_enforced: "
    "false), so a bypass outcome proves nothing"
)


def _pod_requests(audit_log: Path, namespace: str, verb: str) -> set[str]:
    """Audit IDs of ``verb`` requests on pods (no subresource) in ``namespace``."""
    ids = set()
    if not audit_log.exists():
        return ids
    for line in audit_log.read_text().splitlines():
        event = json.loads(line)
        ref = event.get("objectRef") or {}
        if (
            event.get("verb") == verb
            and ref.get("resource") == "pods"
            and not ref.get("subresource")
            and ref.get("namespace") == namespace
        ):
            ids.add(event["auditID"])
    return ids


def _pod_names(core: Any, namespace: str) -> list[str]:
    return [p.metadata.name for p in core.list_namespaced_pod(namespace).items]


def test_a_bypass_source_probes_from_a_temporary_pod_that_is_gone_afterwards(
    mesh: Any, node_testbed: Any, tmp_path: Path
) -> None:
    source = {"namespace": mesh.ns, "bypass_image": IMAGES["curl"]}
    upstream = f"http://{mesh.upstream_ip}/get"
    probes = [
        # no sidecar and no enforcer on this node: the upstream answers directly (no Envoy)
        {"name": "bypass -> upstream", "url": upstream, "expect": "allowed",
         "require_envoy": False, "source": source},
        {"name": "bypass -> closed port", "url": f"http://{mesh.httpbin_ip}:81/",
         "expect": "unreachable", "source": source},
        {"name": "bypass -> upstream (not proven)", "url": upstream, "expect": "unreachable",
         "not_proven": NOT_ENFORCED, "source": source},
    ]  # fmt: skip
    junit = tmp_path / "bypass.xml"
    before = set(_pod_names(mesh.core, mesh.ns))
    result = run_module(
        "egress_probe",
        {"probes": probes, "deadline": 20, "kubeconfig": mesh.kubeconfig, "junit_path": str(junit)},
        tmp_path,
    )
    assert not result["failed"], result
    assert result["changed"] is False
    [pod] = result["bypass_pods"]
    name = pod["name"]
    assert pod == {"namespace": mesh.ns, "name": name, "deleted": True}
    assert name.startswith("meshguard-bypass-") and name not in before
    by_name = {p["name"]: p for p in result["probes"]}
    assert {p["source"] for p in result["probes"]} == {f"{mesh.ns}/(bypass {IMAGES['curl']})"}
    direct = by_name["bypass -> upstream"]
    assert (direct["outcome"], direct["status"], direct["held"]) == ("allowed", 200, True), direct
    assert "server" not in direct["headers"] or direct["headers"]["server"] != "envoy"
    closed = by_name["bypass -> closed port"]
    assert (closed["outcome"], closed["curl_exit"], closed["held"]) == ("unreachable", 7, True)
    not_proven = by_name["bypass -> upstream (not proven)"]
    assert (not_proven["not_proven"], not_proven["held"]) == (NOT_ENFORCED, False)
    assert (not_proven["outcome"], not_proven["status"], not_proven["attempts"]) == (
        "error",
        200,
        1,
    ), not_proven
    summary = result["summary"]
    assert (summary["total"], summary["held"], summary["not_proven"], summary["failed"]) == (
        3,
        2,
        1,
        0,
    )
    assert result["mismatches"] == ""
    skipped = ET.parse(junit).getroot().findall("testsuite/testcase/skipped")
    assert [s.get("message") for s in skipped] == [f"not proven: {NOT_ENFORCED}"]
    # the probes ran in that pod (the API server's audit log), and it is gone now
    audit = node_testbed.dir / "audit.log"
    node_pods.wait_for(lambda: _exec_requests(audit, mesh.ns, name), 30, "exec into the bypass pod")
    node_pods.wait_for(
        lambda: name not in _pod_names(mesh.core, mesh.ns), 120, f"bypass pod {name} deleted"
    )


def test_check_mode_creates_no_bypass_pod(mesh: Any, node_testbed: Any, tmp_path: Path) -> None:
    source = {"namespace": mesh.ns, "bypass_image": IMAGES["curl"]}
    audit = node_testbed.dir / "audit.log"
    before = _pod_requests(audit, mesh.ns, "create")
    lists_before = _pod_requests(audit, mesh.ns, "list")
    result = run_module(
        "egress_probe",
        {
            "probes": [{"url": f"http://{mesh.upstream_ip}/get", "expect": "unreachable",
                        "source": source}],
            "kubeconfig": mesh.kubeconfig,
        },
        tmp_path,
        check=True,
    )  # fmt: skip
    assert not result["failed"], result
    [probe] = result["probes"]
    assert probe["outcome"] == "not_run" and probe["attempts"] == 0
    assert probe["not_proven"].startswith("check mode: the probes from ")
    assert "need a temporary pod" in probe["not_proven"]
    assert result["bypass_pods"] == []
    # a later request shows up after this one's in the audit log: then nothing was created
    mesh.core.list_namespaced_pod(mesh.ns)
    node_pods.wait_for(
        lambda: _pod_requests(audit, mesh.ns, "list") - lists_before,
        30,
        "the list request audited",
    )
    assert _pod_requests(audit, mesh.ns, "create") == before


@pytest.mark.parametrize(("claimed", "held"), [("default", True), ("bookinfo-productpage", False)])
def test_a_source_is_checked_against_its_pods_service_account(
    mesh: Any, tmp_path: Path, claimed: str, held: bool
) -> None:
    source = {
        "namespace": mesh.ns,
        "pod": "productpage",
        "container": "curl",
        "service_account": claimed,
    }
    result = run_module(
        "egress_probe",
        {
            "probes": [_probe("httpbin.org", "allowed", source)],
            "deadline": 0,
            "kubeconfig": mesh.kubeconfig,
        },
        tmp_path,
    )
    [probe] = result["probes"]
    assert probe["source"] == f"{mesh.ns}/productpage/curl as {claimed}"
    if held:
        assert not result["failed"] and probe["outcome"] == "allowed", result
        return
    assert result["failed"], result
    assert probe["outcome"] == "error"
    assert probe["detail"] == (
        f"pod {mesh.ns}/productpage runs as service account 'default', not "
        "'bookinfo-productpage' as its source claims: its probes would not prove "
        "bookinfo-productpage's access"
    )
