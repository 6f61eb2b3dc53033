"""A stand-in data plane on the test bed's node: istiod's part played by real Envoys (test-only).

There is no istiod here (it cannot be installed offline). This program plays the part of
istiod for one description, so that real pods give the procedure's real outcomes:

* **Injection.** A mutating admission webhook (served on 127.0.0.1, called by the API server)
  injects pods labelled ``sidecar.istio.io/inject: "true"``, as Istio's injector does: a
  gateway pod (annotation ``inject.istio.io/templates: gateway``, as the gateway chart
  renders it) gets its ``istio-proxy`` container replaced by a real Envoy configured as the
  egress gateway; any other pod gets an ``istio-proxy`` sidecar Envoy. Each Envoy holds a
  certificate for its pod's identity, ``spiffe://<trust domain>/ns/<namespace>/sa/<service
  account>``, issued at injection by a test CA (like istiod's CA).
* **Sidecars** listen on 127.0.0.1 at each gateway port's ``client_port`` (client pods name
  the external hosts with ``hostAliases`` to 127.0.0.1, where Istio would capture with
  iptables) and send every registered host through the gateway with mutual TLS; any other
  host gets the 502 of Istio's ``block_all`` route where REGISTRY_ONLY applies.
* **The gateway** requires mutual TLS, enforces each service's clients on the verified
  principal with Envoy's RBAC filter (the genuine ``403 RBAC: access denied``), writes
  Istio's JSON access log when ``gateway.access_log`` is on, and originates TLS (SNI and
  certificate check) to an in-cluster stand-in for every external host.
* **The external hosts** (``httpbin.org``...) are one Envoy pod in namespace
  ``meshguard-standin`` that serves ``/get`` over TLS with a certificate for every host.

Everything the Envoys do is derived from the plan of the description (``egress_plan`` with
``verify: true``): its services, ports, clients, trust domain, outbound policy and gateway.
So a description that is converged wrong (a client added, an access policy removed) gives
the wrong outcome on the wire, and verification against the intended description fails on
exactly those rows. What it does not prove: istiod's own translation of the Gloo or Istio
objects, and NetworkPolicy enforcement (the node has no enforcer). See docs/testing.md.

    python hack/standin_mesh.py start     --dir DIR --kubeconfig K --plan PLAN.json
    python hack/standin_mesh.py configure --dir DIR --plan PLAN.json   # another description
    python hack/standin_mesh.py clients   --dir DIR   # the verify sources' pods (bookinfo)
    python hack/standin_mesh.py stop      --dir DIR

Nothing here leaves the node: pods run on the node of hack/testbed.py (``start --node``),
whose network namespace has no default route; images are local (``imagePullPolicy: Never``).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime
import hashlib
import ipaddress
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import images

STANDIN_NAMESPACE = "meshguard-standin"
UPSTREAM_NAME = "external-hosts"
WEBHOOK_NAME = "meshguard-standin-injector"
INJECT_LABEL = "sidecar.istio.io/inject"
TEMPLATE_ANNOTATION = "inject.istio.io/templates"
INJECTED_LABEL = "meshguard.io/standin-injected"
PLAN_ANNOTATION = "meshguard.io/standin-plan"
SIDECAR = "istio-proxy"
TIMEOUT = 180.0
ENVOY_ARGS = ["--disable-hot-restart", "--log-level", "warn", "--file-flush-interval-msec", "100"]

ISTIO_JSON_FORMAT = {
    "authority": "%REQ(:AUTHORITY)%",
    "bytes_received": "%BYTES_RECEIVED%",
    "bytes_sent": "%BYTES_SENT%",
    "connection_termination_details": "%CONNECTION_TERMINATION_DETAILS%",
    "downstream_local_address": "%DOWNSTREAM_LOCAL_ADDRESS%",
    "downstream_remote_address": "%DOWNSTREAM_REMOTE_ADDRESS%",
    "duration": "%DURATION%",
    "method": "%REQ(:METHOD)%",
    "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
    "protocol": "%PROTOCOL%",
    "request_id": "%REQ(X-REQUEST-ID)%",
    "requested_server_name": "%REQUESTED_SERVER_NAME%",
    "response_code": "%RESPONSE_CODE%",
    "response_code_details": "%RESPONSE_CODE_DETAILS%",
    "response_flags": "%RESPONSE_FLAGS%",
    "route_name": "%ROUTE_NAME%",
    "start_time": "%START_TIME%",
    "upstream_cluster": "%UPSTREAM_CLUSTER%",
    "upstream_host": "%UPSTREAM_HOST%",
    "upstream_local_address": "%UPSTREAM_LOCAL_ADDRESS%",
    "upstream_service_time": "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%",
    "upstream_transport_failure_reason": "%UPSTREAM_TRANSPORT_FAILURE_REASON%",
    "user_agent": "%REQ(USER-AGENT)%",
    "x_forwarded_for": "%REQ(X-FORWARDED-FOR)%",
}

TLS = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3."
STDOUT_LOG = "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog"
HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."


class StandinError(RuntimeError):
    pass


# --------------------------------------------------------------------------- the plan's facts


def _wildcard(host: str) -> bool:
    return host.startswith("*")


def mesh_model(plan: dict[str, Any]) -> dict[str, Any]:
    """What the Envoys need from a plan (``egress_plan`` output with ``verify: true``)."""
    spec = plan["description"]
    gateway = spec["gateway"]
    values = (plan.get("release") or {}).get("values") or {}
    account = ((values.get("serviceAccount") or {}).get("name")) or gateway["name"]
    policy = spec["outbound_policy"]
    services = []
    for service in spec["services"]:
        if _wildcard(service["host"]):
            continue
        clients = service["clients"]
        principals = None
        if clients is not None:
            principals = sorted(
                spiffe(spec["trust_domain"], c["namespace"], c["service_account"])
                for c in clients
                if c.get("service_account")
            )
        services.append(
            {"host": service["host"], "ports": service["ports"], "principals": principals}
        )
    return {
        "trust_domain": spec["trust_domain"],
        "gateway": {
            "namespace": gateway["namespace"],
            "name": gateway["name"],
            "port": gateway["listener_port"],
            "principal": spiffe(spec["trust_domain"], gateway["namespace"], account),
        },
        "services": services,
        "registry_only": {
            "mode": policy["mode"],
            "scope": policy["scope"],
            "namespaces": list(policy.get("namespaces") or []),
        },
        "access_log": bool(gateway["access_log"]),
        "unregistered_host": spec["verify"]["unregistered_host"],
        "sources": spec["verify"]["sources"],
    }


def spiffe(trust_domain: str, namespace: str, account: str) -> str:
    return f"spiffe://{trust_domain}/ns/{namespace}/sa/{account}"


def registry_only(model: dict[str, Any], namespace: str) -> bool:
    policy = model["registry_only"]
    if policy["mode"] != "REGISTRY_ONLY":
        return False
    return policy["scope"] == "mesh" or namespace in policy["namespaces"]


def client_hosts(model: dict[str, Any]) -> list[str]:
    """The names client pods resolve to their sidecar (hostAliases to 127.0.0.1)."""
    return sorted({s["host"] for s in model["services"]} | {model["unregistered_host"]})


def plan_digest(plan: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(plan, sort_keys=True).encode()).hexdigest()[:12]


# --------------------------------------------------------------------------- certificates


class CertificateAuthority:
    """A test CA kept in ``dir`` (ca.key, ca.crt) that issues short-lived leaf certificates."""

    def __init__(self, directory: Path) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self._x509, self._hashes, self._ec, self._oid = x509, hashes, ec, NameOID
        self._ser = serialization
        key_path, cert_path = directory / "ca.key", directory / "ca.crt"
        if not key_path.exists():
            key = ec.generate_private_key(ec.SECP256R1())
            name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "meshguard stand-in CA")])
            cert = (
                self._builder(name, name, key.public_key(), 3650)
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(key, hashes.SHA256())
            )
            _write_private(key_path, self._key_pem(key))
            cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self.key = serialization.load_pem_private_key(key_path.read_bytes(), None)
        self.pem = cert_path.read_text()
        self.cert = x509.load_pem_x509_certificate(self.pem.encode())

    def _builder(self, subject: Any, issuer: Any, public_key: Any, days: int) -> Any:
        now = datetime.datetime.now(datetime.timezone.utc)
        return (
            self._x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public_key)
            .serial_number(self._x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
        )

    def _key_pem(self, key: Any) -> bytes:
        return key.private_bytes(
            self._ser.Encoding.PEM, self._ser.PrivateFormat.PKCS8, self._ser.NoEncryption()
        )

    def issue(self, uri: str = "", dns: tuple[str, ...] = (), ips: tuple[str, ...] = ()) -> dict:
        """A leaf certificate and key (PEM strings) with the given subject alternative names."""
        x509 = self._x509
        key = self._ec.generate_private_key(self._ec.SECP256R1())
        names: list[Any] = [x509.UniformResourceIdentifier(uri)] if uri else []
        names += [x509.DNSName(d) for d in dns]
        names += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        common = (uri or (dns or ips)[0])[:64]
        subject = x509.Name([x509.NameAttribute(self._oid.COMMON_NAME, common)])
        cert = (
            self._builder(subject, self.cert.subject, key.public_key(), 30)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(self.key, self._hashes.SHA256())
        )
        return {
            "cert": cert.public_bytes(self._ser.Encoding.PEM).decode(),
            "key": self._key_pem(key).decode(),
        }


def _write_private(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    path.chmod(0o600)


# --------------------------------------------------------------------------- Envoy configs


def _tls_certificate(leaf: dict[str, str]) -> dict[str, Any]:
    return {
        "certificate_chain": {"inline_string": leaf["cert"]},
        "private_key": {"inline_string": leaf["key"]},
    }


def _validation(ca_pem: str, san_type: str = "", san: str = "") -> dict[str, Any]:
    context: dict[str, Any] = {"trusted_ca": {"inline_string": ca_pem}}
    if san:
        context["match_typed_subject_alt_names"] = [
            {"san_type": san_type, "matcher": {"exact": san}}
        ]
    return context


def _upstream_tls(sni: str, ca_pem: str, san_type: str, san: str, leaf: dict | None = None) -> dict:
    common: dict[str, Any] = {"validation_context": _validation(ca_pem, san_type, san)}
    if leaf:
        common["tls_certificates"] = [_tls_certificate(leaf)]
    return {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": TLS + "UpstreamTlsContext",
            "sni": sni,
            "common_tls_context": common,
        },
    }


def _downstream_tls(leaf: dict[str, str], ca_pem: str | None = None) -> dict[str, Any]:
    common: dict[str, Any] = {"tls_certificates": [_tls_certificate(leaf)]}
    context: dict[str, Any] = {"@type": TLS + "DownstreamTlsContext", "common_tls_context": common}
    if ca_pem:
        common["validation_context"] = _validation(ca_pem)
        context["require_client_certificate"] = True
    return {"name": "envoy.transport_sockets.tls", "typed_config": context}


def _cluster(name: str, address: str, port: int, transport: dict | None = None) -> dict:
    endpoint = {"address": {"socket_address": {"address": address, "port_value": port}}}
    cluster: dict[str, Any] = {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "5s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": endpoint}]}],
        },
    }
    if transport:
        cluster["transport_socket"] = transport
    return cluster


def _router() -> dict[str, Any]:
    return {
        "name": "envoy.filters.http.router",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
        },
    }


def _hcm(prefix: str, virtual_hosts: list, filters: list | None = None, log: bool = False) -> dict:
    config: dict[str, Any] = {
        "@type": HCM + "HttpConnectionManager",
        "stat_prefix": prefix,
        "http_filters": [*(filters or []), _router()],
        "route_config": {"name": prefix, "virtual_hosts": virtual_hosts},
    }
    if log:
        config["access_log"] = [
            {
                "name": "envoy.access_loggers.stdout",
                "typed_config": {
                    "@type": STDOUT_LOG,
                    "log_format": {"json_format": ISTIO_JSON_FORMAT},
                },
            }
        ]
    return {"name": "envoy.filters.network.http_connection_manager", "typed_config": config}


def _listener(name: str, address: str, port: int, hcm: dict, transport: dict | None = None) -> dict:
    chain: dict[str, Any] = {"filters": [hcm]}
    if transport:
        chain["transport_socket"] = transport
    return {
        "name": name,
        "address": {"socket_address": {"address": address, "port_value": port}},
        "filter_chains": [chain],
    }


def _domains(host: str) -> list[str]:
    return [host, f"{host}:*"]


def _direct(status: int, body: str = "") -> dict[str, Any]:
    response: dict[str, Any] = {"status": status}
    if body:
        response["body"] = {"inline_string": body}
    return response


def _authority(host: str) -> dict[str, Any]:
    regex = "^" + re.escape(host) + "(:[0-9]+)?$"
    return {"header": {"name": ":authority", "string_match": {"safe_regex": {"regex": regex}}}}


def outbound_cluster(host: str, number: int) -> str:
    return f"outbound|{number}||{host}"


def gateway_config(model: dict[str, Any], upstream_ip: str, leaf: dict, ca_pem: str) -> dict:
    """The egress gateway: mTLS in, RBAC on the principal, TLS origination out."""
    policies: dict[str, Any] = {}
    virtual_hosts, clusters = [], []
    for service in model["services"]:
        host = service["host"]
        ports = [p for p in service["ports"] if p["via_gateway"]]
        if not ports:
            continue
        port = ports[0]
        cluster = outbound_cluster(host, port["number"])
        transport = None
        if port["tls_origination"]:
            sni = port.get("sni") or host
            transport = _upstream_tls(sni, ca_pem, "DNS", host)
        clusters.append(_cluster(cluster, upstream_ip, port["number"], transport))
        virtual_hosts.append(
            {
                "name": f"{host}:{port['number']}",
                "domains": _domains(host),
                "routes": [{"match": {"prefix": "/"}, "route": {"cluster": cluster}}],
            }
        )
        principals = (
            [{"any": True}]
            if service["principals"] is None
            else [
                {"authenticated": {"principal_name": {"exact": p}}} for p in service["principals"]
            ]
        )
        if principals:
            policies[f"clients-of-{host}"] = {
                "permissions": [_authority(host)],
                "principals": principals,
            }
    virtual_hosts.append(
        {
            "name": "no_route",
            "domains": ["*"],
            "routes": [{"match": {"prefix": "/"}, "direct_response": _direct(404)}],
        }
    )
    rbac = {
        "name": "envoy.filters.http.rbac",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
            "rules": {"action": "ALLOW", "policies": policies},
        },
    }
    hcm = _hcm("gateway", virtual_hosts, [rbac], log=model["access_log"])
    status = _hcm(
        "status",
        [
            {
                "name": "status",
                "domains": ["*"],
                "routes": [{"match": {"prefix": "/"}, "direct_response": _direct(200)}],
            }
        ],
    )
    return {
        "node": {"id": "gateway", "cluster": model["gateway"]["name"]},
        "static_resources": {
            "listeners": [
                _listener(
                    "gateway",
                    "0.0.0.0",
                    model["gateway"]["port"],
                    hcm,
                    _downstream_tls(leaf, ca_pem),
                ),
                _listener("status", "0.0.0.0", 15021, status),
            ],
            "clusters": clusters,
        },
    }


def sidecar_config(
    model: dict[str, Any], namespace: str, gateway_ip: str, leaf: dict, ca_pem: str
) -> dict:
    """A client's sidecar: registered hosts through the gateway with mTLS, the rest blocked."""
    gateway = model["gateway"]
    sni = (
        f"outbound_.{gateway['port']}_._.{gateway['name']}.{gateway['namespace']}.svc.cluster.local"
    )
    transport = _upstream_tls(sni, ca_pem, "URI", gateway["principal"], leaf)
    by_port: dict[int, list[str]] = {}
    for service in model["services"]:
        for port in service["ports"]:
            if port["via_gateway"]:
                by_port.setdefault(port["client_port"], []).append(service["host"])
    fallback = (
        {"direct_response": _direct(502)}
        if registry_only(model, namespace)
        else {"route": {"cluster": "PassthroughCluster"}}
    )
    listeners = []
    for client_port, hosts in sorted(by_port.items()):
        virtual_hosts = [
            {
                "name": f"{host}:{client_port}",
                "domains": _domains(host),
                "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "egressgateway"}}],
            }
            for host in sorted(set(hosts))
        ]
        virtual_hosts.append(
            {
                "name": "block_all",
                "domains": ["*"],
                "routes": [{"match": {"prefix": "/"}, **fallback}],
            }
        )
        listeners.append(
            _listener(
                f"outbound_{client_port}",
                "127.0.0.1",
                client_port,
                _hcm(f"outbound_{client_port}", virtual_hosts),
            )
        )
    passthrough = {
        "name": "PassthroughCluster",
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {"cluster_name": "PassthroughCluster", "endpoints": []},
    }
    return {
        "node": {"id": "sidecar", "cluster": namespace},
        "static_resources": {
            "listeners": listeners,
            "clusters": [
                _cluster("egressgateway", gateway_ip, gateway["port"], transport),
                passthrough,
            ],
        },
    }


def upstream_config(model: dict[str, Any], leaf: dict) -> dict:
    """The external hosts: ``/get`` answers 200 with a small httpbin-like JSON body."""
    listeners = []
    ports: dict[int, bool] = {}
    for service in model["services"]:
        for port in service["ports"]:
            tls = port["tls_origination"] or port["protocol"] in ("HTTPS", "TLS")
            ports[port["number"]] = ports.get(port["number"], False) or tls
    for number, tls in sorted(ports.items()):
        scheme = "https" if tls else "http"
        virtual_hosts = [
            {
                "name": service["host"],
                "domains": _domains(service["host"]),
                "routes": [
                    {
                        "match": {"path": "/get"},
                        "direct_response": _direct(
                            200,
                            json.dumps(
                                {
                                    "args": {},
                                    "url": f"{scheme}://{service['host']}/get",
                                    "standin": "meshguard.egress external host",
                                }
                            ),
                        ),
                        "response_headers_to_add": [
                            {"header": {"key": "content-type", "value": "application/json"}}
                        ],
                    },
                    {"match": {"prefix": "/"}, "direct_response": _direct(200, "ok\n")},
                ],
            }
            for service in model["services"]
        ]
        listeners.append(
            _listener(
                f"{scheme}_{number}",
                "0.0.0.0",
                number,
                _hcm(f"upstream_{number}", virtual_hosts),
                _downstream_tls(leaf) if tls else None,
            )
        )
    return {
        "node": {"id": "upstream", "cluster": UPSTREAM_NAME},
        "static_resources": {"listeners": listeners, "clusters": []},
    }


def upstream_ports(model: dict[str, Any]) -> list[int]:
    return sorted({p["number"] for s in model["services"] for p in s["ports"]})


# --------------------------------------------------------------------------- injection


def _patch_escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def _proxy_container(config: dict[str, Any], existing: dict[str, Any] | None = None) -> dict:
    container = dict(existing or {})
    container.update(
        {
            "name": SIDECAR,
            "image": images.image_names()["envoy"],
            "imagePullPolicy": "Never",
            "args": ["--config-yaml", json.dumps(config, sort_keys=True), *ENVOY_ARGS],
        }
    )
    container.pop("command", None)
    return container


class Injector:
    """Builds the JSON patch for one pod from the current plan (``DIR/plan.json``)."""

    def __init__(self, directory: Path, kubeconfig: str) -> None:
        self.dir = directory
        self.kubeconfig = kubeconfig
        self.ca = CertificateAuthority(directory)
        self._core: Any = None

    def core(self) -> Any:
        if self._core is None:
            self._core = core_api(self.kubeconfig)
        return self._core

    def plan(self) -> dict[str, Any]:
        return json.loads((self.dir / "plan.json").read_text())

    def state(self) -> dict[str, Any]:
        return json.loads((self.dir / "state.json").read_text())

    def patch(self, namespace: str, pod: dict[str, Any]) -> list[dict[str, Any]]:
        plan = self.plan()
        model = mesh_model(plan)
        spec = pod.get("spec") or {}
        account = spec.get("serviceAccountName") or "default"
        leaf = self.ca.issue(uri=spiffe(model["trust_domain"], namespace, account))
        meta = pod.get("metadata") or {}
        annotations = meta.get("annotations") or {}
        ops: list[dict[str, Any]] = []
        containers = spec.get("containers") or []
        if annotations.get(TEMPLATE_ANNOTATION) == "gateway":
            config = gateway_config(model, self.state()["upstream_ip"], leaf, self.ca.pem)
            index = next((i for i, c in enumerate(containers) if c["name"] == SIDECAR), None)
            if index is None:
                raise StandinError(f"gateway pod without an {SIDECAR} container")
            ops.append(
                {
                    "op": "replace",
                    "path": f"/spec/containers/{index}",
                    "value": _proxy_container(config, containers[index]),
                }
            )
        else:
            gateway = model["gateway"]
            svc = self.core().read_namespaced_service(gateway["name"], gateway["namespace"])
            config = sidecar_config(model, namespace, svc.spec.cluster_ip, leaf, self.ca.pem)
            ops.append(
                {"op": "add", "path": "/spec/containers/-", "value": _proxy_container(config)}
            )
        if not meta.get("labels"):
            ops.append({"op": "add", "path": "/metadata/labels", "value": {}})
        if not annotations:
            ops.append({"op": "add", "path": "/metadata/annotations", "value": {}})
        ops.append(
            {
                "op": "add",
                "path": f"/metadata/labels/{_patch_escape(INJECTED_LABEL)}",
                "value": "true",
            }
        )
        ops.append(
            {
                "op": "add",
                "path": f"/metadata/annotations/{_patch_escape(PLAN_ANNOTATION)}",
                "value": plan_digest(plan),
            }
        )
        return ops

    def review(self, body: dict[str, Any]) -> dict[str, Any]:
        request = body.get("request") or {}
        response: dict[str, Any] = {"uid": request.get("uid", ""), "allowed": True}
        try:
            ops = self.patch(request.get("namespace") or "default", request.get("object") or {})
        except Exception as exc:  # refuse the pod: the stand-in could not configure it
            response.update(
                allowed=False, status={"code": 500, "message": f"stand-in injector: {exc}"}
            )
        else:
            response.update(
                patchType="JSONPatch", patch=base64.b64encode(json.dumps(ops).encode()).decode()
            )
        return {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": response,
        }


def serve(directory: Path, kubeconfig: str, port: int) -> None:
    injector = Injector(directory, kubeconfig)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # readiness of the webhook server
            self._send(200, {"ok": True})

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            self._send(200, injector.review(json.loads(self.rfile.read(length) or b"{}")))

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(directory / "webhook.crt"), str(directory / "webhook.key"))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    server.serve_forever()


# --------------------------------------------------------------------------- cluster objects


def core_api(kubeconfig: str) -> Any:
    from kubernetes import client, config

    return client.CoreV1Api(config.new_client_from_config(kubeconfig))


def _api(kubeconfig: str, name: str) -> Any:
    from kubernetes import client, config

    return getattr(client, name)(config.new_client_from_config(kubeconfig))


def wait_for(condition: Any, what: str, timeout: float = TIMEOUT) -> Any:
    """Poll ``condition`` until it returns something truthy (bounded)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = condition()
        except Exception as exc:  # API errors while things settle
            last = exc
        else:
            if last:
                return last
        time.sleep(0.2)
    raise StandinError(f"{what}: not after {timeout:g}s (last: {last!r})")


def _ensure_namespace(core: Any, name: str) -> None:
    from kubernetes.client.rest import ApiException

    try:
        core.read_namespace(name)
    except ApiException as exc:
        if exc.status != 404:
            raise
        core.create_namespace({"metadata": {"name": name}})
    wait_for(
        lambda: core.read_namespaced_service_account("default", name).secrets,
        f"{name} default SA token",
    )


def _ensure_account(core: Any, namespace: str, name: str) -> None:
    from kubernetes.client.rest import ApiException

    try:
        core.read_namespaced_service_account(name, namespace)
    except ApiException as exc:
        if exc.status != 404:
            raise
        core.create_namespaced_service_account(namespace, {"metadata": {"name": name}})
    wait_for(
        lambda: core.read_namespaced_service_account(name, namespace).secrets,
        f"{namespace}/{name} token",
    )


def _delete_pod(core: Any, namespace: str, name: str) -> None:
    from kubernetes.client.rest import ApiException

    try:
        core.delete_namespaced_pod(name, namespace, grace_period_seconds=0, _preload_content=False)
    except ApiException as exc:
        if exc.status != 404:
            raise


def _gone(core: Any, namespace: str, name: str) -> bool:
    from kubernetes.client.rest import ApiException

    try:
        core.read_namespaced_pod(name, namespace)
    except ApiException as exc:
        return exc.status == 404
    return False


def _ready(pod: Any) -> bool:
    statuses = pod.status.container_statuses or []
    return pod.status.phase == "Running" and bool(statuses) and all(s.ready for s in statuses)


def pod_ready(core: Any, namespace: str, name: str) -> Any:
    def ready() -> Any:
        pod = core.read_namespaced_pod(name, namespace)
        return pod if _ready(pod) else None

    return wait_for(ready, f"pod {namespace}/{name} ready")


def _container(name: str, image: str, command: list[str] | None = None, **extra: Any) -> dict:
    spec: dict[str, Any] = {"name": name, "image": image, "imagePullPolicy": "Never"}
    if command:
        spec["command"] = command
    spec.update(extra)
    return spec


def _webhook_config(ca_pem: str, port: int) -> dict[str, Any]:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": WEBHOOK_NAME},
        "webhooks": [
            {
                "name": "sidecar-injector.standin.meshguard.io",
                "clientConfig": {
                    "url": f"https://127.0.0.1:{port}/inject",
                    "caBundle": base64.b64encode(ca_pem.encode()).decode(),
                },
                "rules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["pods"],
                    }
                ],
                "objectSelector": {"matchLabels": {INJECT_LABEL: "true"}},
                "failurePolicy": "Fail",
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "timeoutSeconds": 10,
            }
        ],
    }


class Standin:
    """The stand-in's state in ``dir``: CA, webhook server, plan, external-hosts pod."""

    def __init__(self, directory: str | Path, kubeconfig: str | None = None) -> None:
        self.dir = Path(directory).resolve()
        self.dir.mkdir(parents=True, exist_ok=True)
        state = self._state()
        self.kubeconfig = kubeconfig or state.get("kubeconfig", "")
        if not self.kubeconfig:
            raise StandinError(f"no kubeconfig given and none recorded in {self.dir}")
        self.core = core_api(self.kubeconfig)

    def _state(self) -> dict[str, Any]:
        path = self.dir / "state.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def _save(self, **values: Any) -> None:
        state = {**self._state(), **values}
        (self.dir / "state.json").write_text(json.dumps(state, indent=2))

    def plan(self) -> dict[str, Any]:
        return json.loads((self.dir / "plan.json").read_text())

    # -- start / stop ---------------------------------------------------------------
    def start(self, plan_path: str) -> None:
        ca = CertificateAuthority(self.dir)
        self._write_plan(plan_path)
        webhook = ca.issue(dns=("localhost",), ips=("127.0.0.1",))
        (self.dir / "webhook.crt").write_text(webhook["cert"])
        _write_private(self.dir / "webhook.key", webhook["key"].encode())
        self._save(kubeconfig=self.kubeconfig)
        port = self._serve()
        model = mesh_model(self.plan())
        upstream_ip = self._external_hosts(model, ca)
        self._save(upstream_ip=upstream_ip, port=port)
        admission = _api(self.kubeconfig, "AdmissionregistrationV1Api")
        body = _webhook_config(ca.pem, port)
        with contextlib.suppress(Exception):  # not there yet
            admission.delete_mutating_webhook_configuration(WEBHOOK_NAME)
        admission.create_mutating_webhook_configuration(body)
        # the mesh's own namespaces and configuration (what an Istio install has before the
        # procedure starts): istio-system with istiod's mesh ConfigMap, the clients' namespaces
        for namespace in ("istio-system", *sorted({s["namespace"] for s in model["sources"]})):
            _ensure_namespace(self.core, namespace)
        self._mesh_config()

    def _mesh_config(self) -> None:
        from kubernetes.client.rest import ApiException

        body = {
            "metadata": {"name": "istio", "labels": {"meshguard.io/standin": "true"}},
            "data": {"mesh": "rootNamespace: istio-system\ntrustDomain: cluster.local\n"},
        }
        try:
            self.core.create_namespaced_config_map("istio-system", body)
        except ApiException as exc:
            if exc.status != 409:  # an istiod's own configuration is left as it is
                raise

    def _write_plan(self, plan_path: str) -> None:
        plan = json.loads(Path(plan_path).read_text())
        if "plan" in plan and "description" not in plan:
            plan = plan["plan"]  # a registered egress_plan result
        if "expectations" not in plan:
            raise StandinError(f"{plan_path}: not a plan computed with verify: true")
        (self.dir / "plan.json").write_text(json.dumps(plan, sort_keys=True))

    def _serve(self) -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        log = open(self.dir / "webhook.log", "ab")  # noqa: SIM115 - the child keeps it
        child = subprocess.Popen(
            [sys.executable, __file__, "serve", "--dir", str(self.dir), "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._save(pid=child.pid)
        context = ssl.create_default_context(cafile=str(self.dir / "ca.crt"))

        def answers() -> bool:
            if child.poll() is not None:
                raise StandinError(
                    f"webhook server exited: {(self.dir / 'webhook.log').read_text()[-2000:]}"
                )
            import urllib.request

            with urllib.request.urlopen(
                f"https://127.0.0.1:{port}/", context=context, timeout=2
            ) as r:
                return r.status == 200

        wait_for(answers, "stand-in webhook server", 30)
        return port

    def _external_hosts(self, model: dict[str, Any], ca: CertificateAuthority) -> str:
        core = self.core
        _ensure_namespace(core, STANDIN_NAMESPACE)
        hosts = tuple(sorted({s["host"] for s in model["services"]}))
        leaf = ca.issue(dns=hosts)
        config = upstream_config(model, leaf)
        _delete_pod(core, STANDIN_NAMESPACE, UPSTREAM_NAME)
        wait_for(
            lambda: _gone(core, STANDIN_NAMESPACE, UPSTREAM_NAME), "old external-hosts pod gone"
        )
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": UPSTREAM_NAME, "labels": {"app": UPSTREAM_NAME}},
            "spec": {
                "terminationGracePeriodSeconds": 0,
                "enableServiceLinks": False,
                "automountServiceAccountToken": False,
                "containers": [
                    _container(
                        "envoy",
                        images.image_names()["envoy"],
                        args=["--config-yaml", json.dumps(config), *ENVOY_ARGS],
                    )
                ],
            },
        }
        core.create_namespaced_pod(STANDIN_NAMESPACE, pod)
        from kubernetes.client.rest import ApiException

        ports = [{"name": f"p{n}", "port": n, "targetPort": n} for n in upstream_ports(model)]
        service = {
            "metadata": {"name": UPSTREAM_NAME},
            "spec": {"selector": {"app": UPSTREAM_NAME}, "ports": ports},
        }
        try:
            ip = core.read_namespaced_service(UPSTREAM_NAME, STANDIN_NAMESPACE).spec.cluster_ip
        except ApiException as exc:
            if exc.status != 404:
                raise
            ip = core.create_namespaced_service(STANDIN_NAMESPACE, service).spec.cluster_ip
        else:
            core.patch_namespaced_service(UPSTREAM_NAME, STANDIN_NAMESPACE, service)
        pod_ready(core, STANDIN_NAMESPACE, UPSTREAM_NAME)
        return ip

    def stop(self) -> None:
        pid = self._state().get("pid")
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline and _alive(pid):
                    time.sleep(0.1)
                if _alive(pid):
                    os.killpg(pid, signal.SIGKILL)
        admission = _api(self.kubeconfig, "AdmissionregistrationV1Api")
        with contextlib.suppress(Exception):  # already gone, or the cluster is gone
            admission.delete_mutating_webhook_configuration(WEBHOOK_NAME)
        with contextlib.suppress(Exception):
            self.core.delete_namespace(STANDIN_NAMESPACE, _preload_content=False)
        self._save(pid=None)

    # -- description changes --------------------------------------------------------
    def configure(self, plan_path: str) -> None:
        """Switch to another plan: the external hosts and every injected pod are redone."""
        self._write_plan(plan_path)
        model = mesh_model(self.plan())
        self._save(upstream_ip=self._external_hosts(model, CertificateAuthority(self.dir)))
        self.restart_injected()

    def restart_injected(self) -> None:
        """Delete every injected pod (their controllers or :meth:`clients` recreate them)."""
        pods = self.core.list_pod_for_all_namespaces(label_selector=f"{INJECTED_LABEL}=true").items
        for pod in pods:
            _delete_pod(self.core, pod.metadata.namespace, pod.metadata.name)
        for pod in pods:
            wait_for(
                lambda p=pod: _gone(self.core, p.metadata.namespace, p.metadata.name),
                "injected pod gone",
            )
        self.gateway_ready()
        self.clients()

    def gateway_ready(self) -> list[Any]:
        """Wait until the gateway's pods run with the current plan (if the gateway exists)."""
        plan = self.plan()
        gateway = mesh_model(plan)["gateway"]
        selector = ",".join(
            f"{k}={v}" for k, v in plan["description"]["gateway"]["selector"].items()
        )
        digest = plan_digest(plan)
        try:
            self.core.read_namespaced_service(gateway["name"], gateway["namespace"])
        except Exception:
            return []  # not installed (yet)

        def current() -> list[Any]:
            pods = self.core.list_namespaced_pod(
                gateway["namespace"], label_selector=selector
            ).items
            pods = [p for p in pods if p.metadata.deletion_timestamp is None]
            fresh = [
                p for p in pods if (p.metadata.annotations or {}).get(PLAN_ANNOTATION) == digest
            ]
            return (
                fresh if fresh and len(fresh) == len(pods) and all(_ready(p) for p in pods) else []
            )

        return wait_for(current, f"gateway pods in {gateway['namespace']} running the current plan")

    # -- the verify sources' pods -----------------------------------------------------
    def clients(self) -> list[str]:
        """One injected pod per verify source that names its pod by labels or by name
        (bookinfo's productpage and reviews in the example); returns their names."""
        model = mesh_model(self.plan())
        made = []
        for source in model["sources"]:
            if source.get("controller"):
                continue
            made.append(self._client_pod(model, source))
        for namespace, name in made:
            pod_ready(self.core, namespace, name)
        self._wait_routes(model, made)
        return [f"{ns}/{name}" for ns, name in made]

    def _client_pod(self, model: dict[str, Any], source: dict[str, Any]) -> tuple[str, str]:
        namespace = source["namespace"]
        labels = dict(
            part.split("=", 1)
            for part in (source.get("label_selector") or "").split(",")
            if "=" in part
        )
        name = source.get("pod") or "-".join(labels.values()) or source["service_account"]
        _ensure_namespace(self.core, namespace)
        _ensure_account(self.core, namespace, source["service_account"])
        _delete_pod(self.core, namespace, name)
        wait_for(lambda: _gone(self.core, namespace, name), f"old pod {namespace}/{name} gone")
        images_ = images.image_names()
        if source.get("container") and not source.get("debug_image"):
            app = _container(source["container"], images_["curl"], ["sleep", "86400"])
        else:  # an application without curl: probed through an ephemeral debug container
            app = _container(source.get("container") or "app", images_["pause"])
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": {**labels, INJECT_LABEL: "true"}},
            "spec": {
                "serviceAccountName": source["service_account"],
                "terminationGracePeriodSeconds": 0,
                "enableServiceLinks": False,
                "hostAliases": [{"ip": "127.0.0.1", "hostnames": client_hosts(model)}],
                "containers": [app],
            },
        }
        self.core.create_namespaced_pod(namespace, pod)
        return namespace, name

    def _wait_routes(self, model: dict[str, Any], made: list[tuple[str, str]]) -> None:
        """A pod being Ready does not mean kube-proxy programmed the gateway's Service yet:
        wait (bounded) until a curl from a client pod gets an HTTP answer from the gateway."""
        hosts = [s["host"] for s in model["services"] if any(p["via_gateway"] for p in s["ports"])]
        curl_pods = [
            (ns, name, s["container"])
            for (ns, name), s in zip(made, [s for s in model["sources"] if not s.get("controller")])
            if s.get("container") and not s.get("debug_image")
        ]
        if not hosts or not curl_pods or not self.gateway_ready():
            return
        namespace, name, container = curl_pods[0]
        port = next(
            p["client_port"]
            for s in model["services"]
            if s["host"] == hosts[0]
            for p in s["ports"]
            if p["via_gateway"]
        )
        url = f"http://{hosts[0]}:{port}/get"
        command = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-m", "3", url]

        def answered() -> str | None:
            out = exec_in(self.core, namespace, name, container, command)
            return out if out.strip() not in ("", "000", "503") else None

        wait_for(answered, f"{url} answering through the gateway from {namespace}/{name}")


def exec_in(core: Any, namespace: str, pod: str, container: str, command: list[str]) -> str:
    from kubernetes.stream import stream

    return stream(
        core.connect_get_namespaced_pod_exec,
        pod,
        namespace,
        container=container,
        command=command,
        stdout=True,
        stderr=False,
        stdin=False,
        tty=False,
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat")
    return not (state.exists() and state.read_text().split(") ", 1)[-1].startswith("Z"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("command", choices=("start", "configure", "clients", "stop", "serve"))
    parser.add_argument("--dir", required=True)
    parser.add_argument("--kubeconfig")
    parser.add_argument("--plan")
    parser.add_argument("--port", type=int)
    args = parser.parse_args(argv)
    if args.command == "serve":
        state = json.loads((Path(args.dir) / "state.json").read_text())
        serve(Path(args.dir), state["kubeconfig"], args.port)
        return 0
    standin = Standin(args.dir, args.kubeconfig)
    try:
        if args.command == "start":
            standin.start(args.plan)
        elif args.command == "configure":
            standin.configure(args.plan)
        elif args.command == "clients":
            for name in standin.clients():
                print(f"standin: client pod {name} ready (sidecar injected)")
        else:
            standin.stop()
    except StandinError as exc:
        print(f"standin: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
