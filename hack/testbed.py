"""The local control plane: etcd + kube-apiserver (RBAC, token auth) + kube-controller-manager
on loopback, with Istio's CRDs and the project's Gloo Mesh CRDs registered.

CLI (what hack/test.sh and hack/run.sh use)::

    python hack/testbed.py start --dir DIR   # starts, waits for /readyz, registers CRDs
    python hack/testbed.py start --node --dir DIR   # ... and a node that runs real pods
    python hack/testbed.py stop --dir DIR    # stops every process and removes DIR
    python hack/testbed.py status --dir DIR  # exit 0 when every process is alive
    python hack/testbed.py env --dir DIR     # export KUBECONFIG=... for a shell

As a library: ``with LocalControlPlane(workdir) as cp: cp.kubeconfig``;
``LocalControlPlane(workdir, node=True)`` adds the node.

The node (``--node``, opt-in; needs root and what ``make setup`` installs): containerd,
kubelet, kube-proxy and kube-scheduler inside a private network namespace with no default
route (see hack/testbed_node.py for the safety rules and the cleanup). The API server then
listens on the host end of the node's veth pair (``https://10.213.x.y:PORT``, an address
that exists only on that veth) instead of 127.0.0.1, so the node can reach it; node name
``meshguard-node``; images ``localhost/meshguard/{pause,curl,envoy}:TAG`` (hack/images.py)
are imported with ``ctr``, pods must use ``imagePullPolicy: Never``; feature gate
``EphemeralContainers`` on the API server and the kubelet.

Users (static tokens): ``admin`` (group system:masters), ``meshguard-automation`` and
``nobody`` (no groups, no rights until RBAC grants some); kubeconfigs ``DIR/kubeconfig``,
``DIR/kubeconfig-meshguard-automation``, ``DIR/kubeconfig-nobody``.

Environment:
- ``MESHGUARD_CACHE`` (default ``~/.cache/meshguard-egress``): ``kube/bin`` holds
  kube-apiserver and kube-controller-manager (``bash hack/setup.sh`` builds them).
- ``MESHGUARD_ETCD`` (default ``/usr/bin/etcd``, Debian's etcd-server).
- ``MESHGUARD_ISTIO_CRDS`` (default ``<repo>/../shared/fixtures/istio/1.23.4/crd-all.gen.yaml``).
- ``MESHGUARD_AUDIT_LOG``: optional path; the API server then writes a metadata audit log
  there (handy to see which verbs a least-privilege role needs).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

sys.path.insert(0, str(Path(__file__).resolve().parent))
import images
import testbed_node
from testbed_node import NODE_ENV, NODE_NAME, NodeError, NodeResources

ROOT = Path(__file__).resolve().parents[1]
GLOO_CRDS = ROOT / "hack" / "crds" / "gloo-mesh-v2.yaml"
DEFAULT_ISTIO_CRDS = ROOT.parent / "shared" / "fixtures" / "istio" / "1.23.4" / "crd-all.gen.yaml"
ISTIO_CRDS_SOURCE = (
    "https://raw.githubusercontent.com/istio/istio/1.23.4/"
    "manifests/charts/base/files/crd-all.gen.yaml"
)
ADMIN = "admin"
# static token users and their groups
USERS: dict[str, tuple[str, ...]] = {
    ADMIN: ("system:masters",),
    "meshguard-automation": (),
    "nobody": (),
}
# the controller-manager's own identity; bootstrap RBAC grants it what it needs, and each
# controller then runs under its own service account (--use-service-account-credentials)
CONTROLLER_MANAGER = "system:kube-controller-manager"
ADMISSION_PLUGINS = (
    "NamespaceLifecycle,LimitRanger,ServiceAccount,DefaultTolerationSeconds,"
    "DefaultStorageClass,StorageObjectInUseProtection,PersistentVolumeClaimResize,"
    "RuntimeClass,CertificateApproval,CertificateSigning,CertificateSubjectRestriction,"
    "DefaultIngressClass,MutatingAdmissionWebhook,ValidatingAdmissionWebhook,ResourceQuota"
)
SERVICE_CIDR = "10.96.0.0/16"
PROCESSES = ("etcd", "kube-apiserver", "kube-controller-manager")
NODE_PROCESSES = ("containerd", "kubelet", "kube-proxy", "kube-scheduler")
NODE_USERS: dict[str, tuple[str, ...]] = {
    f"system:node:{NODE_NAME}": ("system:nodes",),
    "system:kube-proxy": (),
    "system:kube-scheduler": (),
}
NODE_READY_TIMEOUT = 120.0
STATE_FILE = "pids.json"
LEGACY_STATE_FILE = "state.json"  # written by earlier versions of this script
APISERVER_ARGV_FILE = "kube-apiserver.argv.json"  # kept by stop_apiserver
READY_TIMEOUT = 90.0
CRD_TIMEOUT = 60.0
STOP_GRACE = 10.0


class TestbedError(RuntimeError):
    """The local control plane could not be started; the message says what to do."""


# -- locating inputs -------------------------------------------------------------------
def kube_bin_dir() -> Path:
    cache = os.environ.get("MESHGUARD_CACHE") or str(Path.home() / ".cache" / "meshguard-egress")
    return Path(cache) / "kube" / "bin"


def _kube_binary(name: str) -> str:
    path = kube_bin_dir() / name
    if not os.access(path, os.X_OK):
        raise TestbedError(
            f"{path} is missing: run 'bash hack/setup.sh' (it calls hack/build-kube.sh, which "
            "builds kube-apiserver and kube-controller-manager from Debian's kubernetes source "
            "package), or set MESHGUARD_KUBECONFIG to test against an existing cluster"
        )
    return str(path)


def _etcd_binary() -> str:
    etcd = os.environ.get("MESHGUARD_ETCD") or "/usr/bin/etcd"
    if not os.access(etcd, os.X_OK):
        raise TestbedError(
            f"etcd not found at {etcd}: install Debian's etcd-server (bash hack/setup.sh "
            "lists it) or set MESHGUARD_ETCD"
        )
    return etcd


def istio_crds_path() -> Path:
    path = Path(os.environ.get("MESHGUARD_ISTIO_CRDS") or DEFAULT_ISTIO_CRDS)
    if not path.is_file():
        raise TestbedError(
            f"Istio CRDs not found at {path}. Take manifests/charts/base/files/crd-all.gen.yaml "
            f"of the Istio 1.23.4 release ({ISTIO_CRDS_SOURCE}) and set MESHGUARD_ISTIO_CRDS "
            "to its path"
        )
    return path


def _free_port(address: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]


# -- credentials -----------------------------------------------------------------------
def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey,
    ips: tuple[str, ...] = ("127.0.0.1", "10.96.0.1"),
    names: tuple[str, ...] = (
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
    ),
    client: bool = False,
) -> x509.Certificate:
    """A CA certificate (issuer None: self-signed), a serving certificate for ``ips`` and
    ``names`` (loopback by default), or with ``client`` a client certificate."""
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if issuer is not None and client:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    elif issuer is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(n) for n in names]
                + [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
            ),
            critical=False,
        ).add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _write_private(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    path.chmod(0o600)


def _write_pki(workdir: Path, node: NodeResources | None = None) -> None:
    """CA, API server serving certificate and the service-account signing key pair; with a
    node also the kubelet's serving certificate and the API server's kubelet client one."""
    ca_key, server_key, sa_key = _new_key(), _new_key(), _new_key()
    ca = _certificate("meshguard-testbed-ca", ca_key, None, ca_key)
    ips = ("127.0.0.1", "10.96.0.1") + ((node.host_ip,) if node else ())
    server = _certificate("kube-apiserver", server_key, ca, ca_key, ips=ips)
    if node is not None:
        kubelet_key, client_key = _new_key(), _new_key()
        kubelet = _certificate(
            NODE_NAME, kubelet_key, ca, ca_key, ips=(node.node_ip,), names=(NODE_NAME,)
        )
        client = _certificate("kube-apiserver-kubelet-client", client_key, ca, ca_key, client=True)
        for name, cert, key in (
            ("kubelet", kubelet, kubelet_key),
            ("kubelet-client", client, client_key),
        ):
            (workdir / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
            _write_private(workdir / f"{name}.key", _pem_key(key))
    (workdir / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (workdir / "server.crt").write_bytes(server.public_bytes(serialization.Encoding.PEM))
    _write_private(workdir / "server.key", _pem_key(server_key))
    _write_private(workdir / "sa.key", _pem_key(sa_key))
    (workdir / "sa.pub").write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def _write_tokens(workdir: Path, users: dict[str, tuple[str, ...]]) -> dict[str, str]:
    """The API server's static token file; returns user -> token."""
    tokens = {user: os.urandom(24).hex() for user in users}
    lines = []
    for user, groups in users.items():
        line = f"{tokens[user]},{user},{user}"
        lines.append(f'{line},"{",".join(groups)}"' if groups else line)
    _write_private(workdir / "tokens.csv", ("\n".join(lines) + "\n").encode())
    return tokens


def _read_tokens(workdir: Path) -> dict[str, str]:
    """user -> token, from the static token file ``_write_tokens`` wrote."""
    tokens = {}
    for line in (workdir / "tokens.csv").read_text().splitlines():
        token, user = line.split(",")[:2]
        tokens[user] = token
    return tokens


def _kubeconfig(server: str, ca_pem: bytes, user: str, token: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "meshguard-testbed",
                "cluster": {
                    "server": server,
                    "certificate-authority-data": base64.b64encode(ca_pem).decode(),
                },
            }
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [
            {
                "name": f"{user}@meshguard-testbed",
                "context": {"cluster": "meshguard-testbed", "user": user},
            }
        ],
        "current-context": f"{user}@meshguard-testbed",
    }


# -- processes -------------------------------------------------------------------------
def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "X"


def _reap(pid: int) -> None:
    """Collect the exit status if ``pid`` is our own child (library use)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _alive(pid: int) -> bool:
    _reap(pid)
    return _state(pid) not in ("X", "Z")


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _wait_exit(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _terminate_group(pid: int) -> bool:
    """SIGTERM the process group led by ``pid``, SIGKILL it after a grace period."""
    _signal_group(pid, signal.SIGTERM)
    if _wait_exit(pid, STOP_GRACE):
        _signal_group(pid, signal.SIGKILL)  # stray group members, if any
        return True
    _signal_group(pid, signal.SIGKILL)
    return _wait_exit(pid, 5.0)


def _tail(path: Path, chars: int = 3000) -> str:
    """The end of a log; a klog fatal line (``F1201 ...``, followed by a goroutine dump)
    comes first."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    fatal = [line for line in text.splitlines() if line[:1] == "F" and line[1:5].isdigit()]
    return (fatal[0] + "\n...\n" if fatal else "") + text[-chars:]


def _get_json(url: str, token: str, ca_file: Path) -> dict[str, Any] | None:
    context = ssl.create_default_context(cafile=str(ca_file))
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, context=context, timeout=2) as response:
            return json.loads(response.read())
    except (OSError, ValueError):
        return None


def _pids_with_cmdline(*parts: str) -> list[int]:
    """Processes whose command line contains one of ``parts``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            cmdline = _cmdline(int(entry.name))
            if any(part in cmdline for part in parts) and _state(int(entry.name)) not in "XZ":
                found.append(int(entry.name))
    return found


def _get_ok(url: str, token: str, ca_file: Path | None) -> bool:
    context = ssl.create_default_context(cafile=str(ca_file)) if ca_file else None
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, context=context, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


class LocalControlPlane:
    """etcd + kube-apiserver + kube-controller-manager, all state in ``workdir``; with
    ``node=True`` also a node (containerd, kubelet, kube-proxy, kube-scheduler) in a private
    network namespace. ``audit_log``: a path for a metadata audit log of the API server
    (default ``$MESHGUARD_AUDIT_LOG``, else with a node ``<workdir>/audit.log``)."""

    def __init__(
        self, workdir: str | Path, node: bool | None = None, audit_log: str | None = None
    ) -> None:
        self.dir = Path(workdir).resolve()
        self.kubeconfig = str(self.dir / "kubeconfig")
        self.timings: dict[str, float] = {}
        self._server = ""
        saved = self._load_state().get("node")
        self._node: NodeResources | None = NodeResources.from_dict(saved) if saved else None
        # node=None: whatever the saved state says (stop/status of a running test bed)
        self.node = bool(saved) if node is None else node
        default_audit = str(self.dir / "audit.log") if self.node else ""
        self._audit_log = audit_log or os.environ.get("MESHGUARD_AUDIT_LOG") or default_audit

    # -- public ---------------------------------------------------------------------
    @property
    def server(self) -> str:
        """The API server URL (``https://127.0.0.1:PORT``)."""
        return self._server or str(self._load_state().get("server", ""))

    def kubeconfig_for(self, user: str) -> str:
        """Path of the kubeconfig of one of the static users."""
        if user not in USERS:
            raise KeyError(f"unknown test-bed user {user!r}; known: {sorted(USERS)}")
        return self.kubeconfig if user == ADMIN else str(self.dir / f"kubeconfig-{user}")

    def pids(self) -> dict[str, int]:
        return {k: int(v) for k, v in self._load_state().get("pids", {}).items()}

    def alive(self) -> dict[str, bool]:
        return {name: self._owned_and_alive(pid) for name, pid in self.pids().items()}

    @property
    def node_resources(self) -> NodeResources | None:
        """Names of the node's network namespace, veth pair, cgroups... (None without node)."""
        return self._node

    def start(self) -> LocalControlPlane:
        """Start everything, wait until ready and the CRDs are established (and with a node,
        until the node is Ready)."""
        binaries = self._binaries()
        crd_files = [istio_crds_path(), GLOO_CRDS]
        if any(self.alive().values()):
            raise TestbedError(f"a control plane is already running in {self.dir}")
        self.dir.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        try:
            if self.node:
                self._create_node_network()
            self._start_processes(binaries, started)
            if self.node:
                self._start_node(binaries, started)
            self.register_crds(crd_files)
            self.timings["crds"] = time.monotonic() - started
        except BaseException:
            self.stop(remove=False)
            raise
        return self

    def stop(self, remove: bool = True) -> None:
        """Stop the process groups in reverse start order (TERM, then KILL); remove the dir.

        The node goes first (its processes, then every container, mount, cgroup, the
        network namespace and the host files it wrote; see ``leftovers``). The API server
        must go before etcd: without etcd its shutdown hangs for ~30 s.
        """
        if self._node is not None:
            self._stop_node()
        for name, pid in reversed(list(self.pids().items())):
            if self._owned_and_alive(pid) and not _terminate_group(pid):
                raise TestbedError(f"{name} (pid {pid}) of {self.dir} did not exit")
        if remove:
            shutil.rmtree(self.dir, ignore_errors=True)

    def leftovers(self) -> dict[str, Any]:
        """What the node left behind after ``stop`` (every value empty or False when clean):
        container processes in its cgroups, mounts under its directories, its cgroups, its
        network namespace and veth, changed kernel settings, and our processes."""
        if self._node is None:
            return {}
        found = self._node.leftovers(self.dir)
        found["our_processes"] = _pids_with_cmdline(str(self.dir), self._node.run_dir)
        return found

    def stop_apiserver(self) -> None:
        """Kill only kube-apiserver, as a crash would (SIGKILL; for fault tests); etcd and the
        controller-manager keep running.

        Its command line is kept, so ``start_apiserver`` brings it back on the same port.
        """
        pid = self.pids().get("kube-apiserver", 0)
        if not self._owned_and_alive(pid):
            raise TestbedError(f"kube-apiserver of {self.dir} is not running")
        argv = [
            arg for arg in Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0") if arg
        ]
        (self.dir / APISERVER_ARGV_FILE).write_text(json.dumps(argv) + "\n")
        _signal_group(pid, signal.SIGKILL)
        if not _wait_exit(pid, STOP_GRACE):
            raise TestbedError(f"kube-apiserver (pid {pid}) of {self.dir} did not exit")

    def start_apiserver(self) -> None:
        """Start kube-apiserver again after ``stop_apiserver`` and wait until it is ready."""
        if self._owned_and_alive(self.pids().get("kube-apiserver", 0)):
            raise TestbedError(f"kube-apiserver of {self.dir} is already running")
        argv = json.loads((self.dir / APISERVER_ARGV_FILE).read_text())
        self._server = self.server  # _spawn saves it with the new pid
        self._spawn("kube-apiserver", argv)
        token = _read_tokens(self.dir)[ADMIN]
        self._wait_until(f"{self.server}/readyz", token, self.dir / "ca.crt", "kube-apiserver")

    def __enter__(self) -> LocalControlPlane:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- startup steps ----------------------------------------------------------------
    def _binaries(self) -> dict[str, str]:
        binaries = {
            "etcd": _etcd_binary(),
            "kube-apiserver": _kube_binary("kube-apiserver"),
            "kube-controller-manager": _kube_binary("kube-controller-manager"),
        }
        if self.node:
            for name in ("kubelet", "kube-proxy", "kube-scheduler"):
                binaries[name] = _kube_binary(name)
            try:
                testbed_node.check_host()
            except NodeError as exc:
                raise TestbedError(str(exc)) from exc
            binaries["containerd"] = shutil.which("containerd") or "containerd"
            for short in images.BUILDERS:
                if not images.archive_path(short).is_file():
                    raise TestbedError(
                        f"image archive {images.archive_path(short)} is missing: run make setup "
                        "(python hack/images.py build)"
                    )
        return binaries

    def _start_processes(self, binaries: dict[str, str], started: float) -> None:
        _write_pki(self.dir, self._node)
        users = {**USERS, CONTROLLER_MANAGER: (), **(NODE_USERS if self.node else {})}
        tokens = _write_tokens(self.dir, users)
        etcd_url = f"http://127.0.0.1:{_free_port()}"
        self._spawn("etcd", self._etcd_args(binaries["etcd"], etcd_url))
        self._wait_until(f"{etcd_url}/health", "", None, "etcd")
        self.timings["etcd"] = time.monotonic() - started
        self._spawn("kube-apiserver", self._apiserver_args(binaries["kube-apiserver"], etcd_url))
        self._wait_until(
            f"{self._server}/readyz", tokens[ADMIN], self.dir / "ca.crt", "kube-apiserver"
        )
        self.timings["apiserver"] = time.monotonic() - started
        self._write_kubeconfigs(tokens, users)
        self._spawn(
            "kube-controller-manager",
            self._controller_manager_args(binaries["kube-controller-manager"]),
        )

    def _etcd_args(self, etcd: str, client: str) -> list[str]:
        peer = f"http://127.0.0.1:{_free_port()}"
        return [
            etcd, "--name", "testbed", "--data-dir", str(self.dir / "etcd"),
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"testbed={peer}", "--unsafe-no-fsync",
        ]  # fmt: skip

    def _apiserver_args(self, apiserver: str, etcd_url: str) -> list[str]:
        address = self._node.host_ip if self._node else "127.0.0.1"
        port = _free_port(address)
        self._server = f"https://{address}:{port}"
        d = self.dir
        return [
            apiserver, "--etcd-servers", etcd_url,
            "--bind-address", address, "--advertise-address", address,
            "--secure-port", str(port), "--insecure-port", "0", "--cert-dir", str(d),
            "--tls-cert-file", str(d / "server.crt"),
            "--tls-private-key-file", str(d / "server.key"),
            "--client-ca-file", str(d / "ca.crt"), "--token-auth-file", str(d / "tokens.csv"),
            "--authorization-mode", "Node,RBAC" if self.node else "RBAC",
            "--anonymous-auth=false",
            "--enable-admission-plugins", ADMISSION_PLUGINS,
            "--service-account-key-file", str(d / "sa.pub"),
            "--service-account-signing-key-file", str(d / "sa.key"),
            "--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
            "--api-audiences", "https://kubernetes.default.svc.cluster.local",
            "--service-cluster-ip-range", SERVICE_CIDR,
            *self._audit_args(), *self._apiserver_node_args(),
        ]  # fmt: skip

    def _apiserver_node_args(self) -> list[str]:
        if not self.node:
            return []
        d = self.dir
        return [
            "--feature-gates", "EphemeralContainers=true",
            "--kubelet-client-certificate", str(d / "kubelet-client.crt"),
            "--kubelet-client-key", str(d / "kubelet-client.key"),
            "--kubelet-certificate-authority", str(d / "ca.crt"),
            "--kubelet-preferred-address-types", "InternalIP",
        ]  # fmt: skip

    def _audit_args(self) -> list[str]:
        log = self._audit_log
        if not log:
            return []
        policy = self.dir / "audit-policy.yaml"
        policy.write_text("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n")
        return ["--audit-policy-file", str(policy), "--audit-log-path", log]

    def _controller_manager_args(self, manager: str) -> list[str]:
        d = self.dir
        return [
            manager, "--kubeconfig", str(d / "kubeconfig-controller-manager"),
            "--leader-elect=false", "--use-service-account-credentials=true",
            "--service-account-private-key-file", str(d / "sa.key"),
            "--root-ca-file", str(d / "ca.crt"), "--service-cluster-ip-range", SERVICE_CIDR,
            "--bind-address", "127.0.0.1", "--secure-port", "0", "--port", "0",
        ]  # fmt: skip

    def _write_kubeconfigs(self, tokens: dict[str, str], users: dict[str, Any]) -> None:
        ca_pem = (self.dir / "ca.crt").read_bytes()
        paths = {user: self.kubeconfig_for(user) for user in USERS}
        paths[CONTROLLER_MANAGER] = str(self.dir / "kubeconfig-controller-manager")
        for user in NODE_USERS:
            if user in users:
                paths[user] = str(self.dir / f"kubeconfig-{user.split(':')[1]}")
        for user, path in paths.items():
            config = _kubeconfig(self._server, ca_pem, user, tokens[user])
            _write_private(Path(path), yaml.safe_dump(config).encode())

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        """Start ``argv`` daemonized in its own session (process group id == pid)."""
        with open(self.dir / f"{name}.log", "wb") as log:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.dir,
                start_new_session=True,
                env=env,
            )
        self._save_state({**self.pids(), name: proc.pid})

    def _wait_until(self, url: str, token: str, ca_file: Path | None, name: str) -> None:
        pid = self.pids()[name]
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if _get_ok(url, token, ca_file):
                return
            if not _alive(pid):
                raise TestbedError(f"{name} exited; end of its log:\n{_tail(self._log(name))}")
            time.sleep(0.1)
        raise TestbedError(
            f"{name} not ready after {READY_TIMEOUT:.0f}s; end of its log:\n"
            f"{_tail(self._log(name))}"
        )

    def _log(self, name: str) -> Path:
        return self.dir / f"{name}.log"

    # -- the node ---------------------------------------------------------------------
    @property
    def node_dir(self) -> Path:
        return self.dir / "node"

    def _create_node_network(self) -> None:
        """The node's network namespace exists before containerd starts (and before the
        API server, which listens on the host end of its veth pair)."""
        self._node = NodeResources.for_dir(self.dir)
        self._save_state(self.pids())  # from here on, stop() knows what to clean up
        try:
            self._node.create_network()
        except NodeError as exc:
            raise TestbedError(str(exc)) from exc

    def _node_env(self) -> dict[str, str]:
        return {**os.environ, **NODE_ENV}

    def _spawn_in_node(self, name: str, argv: list[str]) -> None:
        assert self._node is not None
        self._spawn(name, self._node.nsenter(argv), env=self._node_env())

    def _start_node(self, binaries: dict[str, str], started: float) -> None:
        node = self._node
        assert node is not None
        names = images.image_names()
        testbed_node.write_node_files(node, self.node_dir, names["pause"])
        self._spawn_in_node(
            "containerd",
            [binaries["containerd"], "--config", str(self.node_dir / "containerd.toml")],
        )
        self._wait_containerd()
        self._import_images()
        self.timings["images"] = time.monotonic() - started
        node.record_sysctls()
        node.create_cgroups()
        self._save_state(self.pids())
        d, nd = self.dir, self.node_dir
        pki = {
            "cert": str(d / "kubelet.crt"),
            "key": str(d / "kubelet.key"),
            "ca": str(d / "ca.crt"),
        }
        kubelet_config = nd / "kubelet.yaml"
        kubelet_config.write_text(yaml.safe_dump(testbed_node.kubelet_config(node, nd, pki)))
        self._spawn_in_node("kubelet", [
            binaries["kubelet"], "--config", str(kubelet_config),
            "--kubeconfig", str(d / "kubeconfig-node"),
            "--container-runtime=remote",
            "--container-runtime-endpoint", f"unix://{node.run_dir}/containerd.sock",
            "--root-dir", str(nd / "kubelet"), "--cert-dir", str(nd / "kubelet-pki"),
            "--hostname-override", NODE_NAME, "--node-ip", node.node_ip,
            "--pod-infra-container-image", names["pause"],
            "--volume-plugin-dir", str(nd / "volume-plugins"),
        ])  # fmt: skip
        self._spawn_in_node("kube-proxy", [
            binaries["kube-proxy"], "--kubeconfig", str(d / "kubeconfig-kube-proxy"),
            "--proxy-mode=iptables", "--hostname-override", NODE_NAME,
            "--cluster-cidr", testbed_node.CLUSTER_CIDR,
            # leave the host's conntrack settings alone
            "--conntrack-max-per-core=0", "--conntrack-tcp-timeout-established=0",
            "--conntrack-tcp-timeout-close-wait=0",
            # loopback of the node's namespace
            "--healthz-bind-address=127.0.0.1:10256", "--metrics-bind-address=127.0.0.1:10249",
            "--iptables-min-sync-period=0s",
        ])  # fmt: skip
        self._spawn_in_node("kube-scheduler", [
            binaries["kube-scheduler"], "--kubeconfig", str(d / "kubeconfig-kube-scheduler"),
            "--leader-elect=false", "--port=0", "--secure-port=0",
        ])  # fmt: skip
        self._wait_node_ready()
        self.timings["node"] = time.monotonic() - started

    def _ctr(self, *args: str) -> subprocess.CompletedProcess[str]:
        assert self._node is not None
        address = f"{self._node.run_dir}/containerd.sock"
        return subprocess.run(
            ["ctr", "--address", address, "--namespace", "k8s.io", *args],
            capture_output=True, text=True, check=False,
        )  # fmt: skip

    def _wait_containerd(self) -> None:
        pid = self.pids()["containerd"]
        deadline = time.monotonic() + READY_TIMEOUT
        while self._ctr("version").returncode != 0:
            if not _alive(pid):
                raise TestbedError(
                    f"containerd exited; end of its log:\n{_tail(self._log('containerd'))}"
                )
            if time.monotonic() > deadline:
                raise TestbedError(
                    f"containerd not ready; end of its log:\n{_tail(self._log('containerd'))}"
                )
            time.sleep(0.1)

    def _import_images(self) -> None:
        for short in images.BUILDERS:
            proc = self._ctr("images", "import", str(images.archive_path(short)))
            if proc.returncode != 0:
                raise TestbedError(f"ctr images import {short}: {proc.stderr.strip()}")

    def _wait_node_ready(self) -> None:
        token = _read_tokens(self.dir)[ADMIN]
        url = f"{self.server}/api/v1/nodes/{NODE_NAME}"
        deadline = time.monotonic() + NODE_READY_TIMEOUT
        while time.monotonic() < deadline:
            node = _get_json(url, token, self.dir / "ca.crt")
            conditions = (node or {}).get("status", {}).get("conditions", [])
            if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
                return
            for name in NODE_PROCESSES:
                if not _alive(self.pids()[name]):
                    raise TestbedError(f"{name} exited; end of its log:\n{_tail(self._log(name))}")
            time.sleep(0.2)
        raise TestbedError(
            f"node {NODE_NAME} not Ready after {NODE_READY_TIMEOUT:.0f}s; end of the kubelet "
            f"log:\n{_tail(self._log('kubelet'))}"
        )

    def _stop_node(self) -> None:
        """Node processes, then every container, mount, cgroup, the network namespace and
        the host files; restores the kernel settings the kubelet changed."""
        node = self._node
        assert node is not None
        pids = self.pids()
        for name in ("kube-proxy", "kube-scheduler", "kubelet"):
            pid = pids.get(name, 0)
            if self._owned_and_alive(pid) and not _terminate_group(pid):
                raise TestbedError(f"{name} (pid {pid}) of {self.dir} did not exit")
        node.kill_containers()
        pid = pids.get("containerd", 0)
        sockets = node.shim_sockets(pid) if self._owned_and_alive(pid) else []
        if self._owned_and_alive(pid) and not _terminate_group(pid):
            raise TestbedError(f"containerd (pid {pid}) of {self.dir} did not exit")
        for shim in _pids_with_cmdline(node.run_dir):  # containerd-shim-runc-v2 -address ...
            with contextlib.suppress(ProcessLookupError):
                os.kill(shim, signal.SIGKILL)
            _wait_exit(shim, 5.0)
        node.kill_containers()
        node.remove_sockets(sockets)
        left = node.unmount_all([str(self.dir), node.run_dir])
        if left:
            raise TestbedError(f"could not unmount {left}")
        node.delete_network()
        cgroups = node.remove_cgroups()
        if cgroups:
            raise TestbedError(f"could not remove the node's cgroups {cgroups}")
        node.remove_host_files()
        node.restore_sysctls()
        for name in NODE_PROCESSES:
            pids.pop(name, None)
        self._save_state(pids)

    # -- CRDs -------------------------------------------------------------------------
    def register_crds(self, files: list[Path]) -> None:
        """Create CRDs through the API and wait until each is Established.

        Not ``kubectl apply``: Istio's file is too large for the last-applied annotation,
        and kubectl's validation against a 1.20 server rejects ``x-kubernetes-validations``.
        """
        from kubernetes import config, dynamic
        from kubernetes.dynamic.exceptions import ConflictError

        api = dynamic.DynamicClient(config.new_client_from_config(self.kubeconfig))
        crds = api.resources.get(
            api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition"
        )
        names = set()
        for doc in _crd_documents(files):
            names.add(doc["metadata"]["name"])
            with contextlib.suppress(ConflictError):  # already there: a reused etcd
                crds.create(body=doc)
        self._wait_established(crds, names)

    @staticmethod
    def _wait_established(crds: Any, names: set[str]) -> None:
        deadline = time.monotonic() + CRD_TIMEOUT
        pending = set(names)
        while pending:
            for crd in crds.get().items:
                conditions = (crd.status or {}).get("conditions") or []
                if any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
                    pending.discard(crd.metadata.name)
            if not pending:
                return
            if time.monotonic() > deadline:
                raise TestbedError(
                    f"CRDs not established after {CRD_TIMEOUT:.0f}s: {sorted(pending)}"
                )
            time.sleep(0.2)

    # -- state ------------------------------------------------------------------------
    def _load_state(self) -> dict[str, Any]:
        for name in (STATE_FILE, LEGACY_STATE_FILE):
            try:
                return json.loads((self.dir / name).read_text())
            except (OSError, ValueError):
                continue
        return {}

    def _save_state(self, pids: dict[str, int]) -> None:
        state: dict[str, Any] = {"server": self._server, "pids": pids}
        if self._node is not None:
            state["node"] = self._node.as_dict()
        (self.dir / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")

    def _owned_and_alive(self, pid: int) -> bool:
        """Alive, and still one of ours (its command line names our work directory)."""
        return _alive(pid) and str(self.dir) in _cmdline(pid)


def _crd_documents(files: list[Path]) -> list[dict[str, Any]]:
    docs = []
    for path in files:
        for doc in yaml.safe_load_all(path.read_text()):
            items = doc.get("items", []) if doc and doc.get("kind") == "List" else [doc]
            docs.extend(d for d in items if d and d.get("kind") == "CustomResourceDefinition")
    return docs


# -- CLI -------------------------------------------------------------------------------
def _cmd_start(cp: LocalControlPlane) -> int:
    cp.start()
    phases = ", ".join(f"{k} {v:.1f}s" for k, v in cp.timings.items())
    print(f"testbed: ready at {cp.server} ({phases}); kubeconfig {cp.kubeconfig}")
    return 0


def _cmd_stop(cp: LocalControlPlane) -> int:
    cp.stop()
    print(f"testbed: stopped; removed {cp.dir}")
    return 0


def _cmd_status(cp: LocalControlPlane) -> int:
    alive = cp.alive()
    print(json.dumps({"server": cp.server, "node": cp.node, "alive": alive}))
    expected = len(PROCESSES) + (len(NODE_PROCESSES) if cp.node else 0)
    return 0 if alive and all(alive.values()) and len(alive) == expected else 1


def _cmd_env(cp: LocalControlPlane) -> int:
    print(f"export KUBECONFIG={cp.kubeconfig}")
    print(f"export K8S_AUTH_KUBECONFIG={cp.kubeconfig}")
    print(f"export MESHGUARD_TESTBED_DIR={cp.dir}")
    return 0


COMMANDS = {"start": _cmd_start, "stop": _cmd_stop, "status": _cmd_status, "env": _cmd_env}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", maxsplit=1)[0])
    parser.add_argument("command", choices=sorted(COMMANDS))
    parser.add_argument("--dir", required=True, help="work directory of this control plane")
    parser.add_argument(
        "--node", action="store_true", help="start: also a node that runs pods (needs root)"
    )
    args = parser.parse_args(argv)
    try:
        node = True if args.command == "start" and args.node else None
        if args.command == "start" and not args.node:
            node = False
        return COMMANDS[args.command](LocalControlPlane(args.dir, node=node))
    except TestbedError as exc:
        print(f"testbed: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
