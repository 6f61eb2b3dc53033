"""The local control plane: etcd + kube-apiserver (RBAC, token auth) + kube-controller-manager
on loopback, with Istio's CRDs and the project's Gloo Mesh CRDs registered.

CLI (what hack/test.sh and hack/run.sh use)::

    python hack/testbed.py start --dir DIR   # starts, waits for /readyz, registers CRDs
    python hack/testbed.py stop --dir DIR    # stops every process and removes DIR
    python hack/testbed.py status --dir DIR  # exit 0 when every process is alive
    python hack/testbed.py env --dir DIR     # export KUBECONFIG=... for a shell

As a library: ``with LocalControlPlane(workdir) as cp: cp.kubeconfig``.

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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
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
) -> x509.Certificate:
    """A CA certificate (issuer None: self-signed) or a serving certificate for loopback."""
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
    if issuer is not None:
        names = ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"]
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(n) for n in names]
                + [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ("127.0.0.1", "10.96.0.1")]
            ),
            critical=False,
        ).add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _write_private(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    path.chmod(0o600)


def _write_pki(workdir: Path) -> None:
    """CA, API server serving certificate and the service-account signing key pair."""
    ca_key, server_key, sa_key = _new_key(), _new_key(), _new_key()
    ca = _certificate("meshguard-testbed-ca", ca_key, None, ca_key)
    server = _certificate("kube-apiserver", server_key, ca, ca_key)
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
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


def _get_ok(url: str, token: str, ca_file: Path | None) -> bool:
    context = ssl.create_default_context(cafile=str(ca_file)) if ca_file else None
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, context=context, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


class LocalControlPlane:
    """etcd + kube-apiserver + kube-controller-manager, all state in ``workdir``."""

    def __init__(self, workdir: str | Path) -> None:
        self.dir = Path(workdir).resolve()
        self.kubeconfig = str(self.dir / "kubeconfig")
        self.timings: dict[str, float] = {}
        self._server = ""

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

    def start(self) -> LocalControlPlane:
        """Start everything, wait until ready and the CRDs are established."""
        binaries = self._binaries()
        crd_files = [istio_crds_path(), GLOO_CRDS]
        if any(self.alive().values()):
            raise TestbedError(f"a control plane is already running in {self.dir}")
        self.dir.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        try:
            self._start_processes(binaries, started)
            self.register_crds(crd_files)
            self.timings["crds"] = time.monotonic() - started
        except BaseException:
            self.stop(remove=False)
            raise
        return self

    def stop(self, remove: bool = True) -> None:
        """Stop the process groups in reverse start order (TERM, then KILL); remove the dir.

        The API server must go before etcd: without etcd its shutdown hangs for ~30 s.
        """
        for name, pid in reversed(list(self.pids().items())):
            if self._owned_and_alive(pid) and not _terminate_group(pid):
                raise TestbedError(f"{name} (pid {pid}) of {self.dir} did not exit")
        if remove:
            shutil.rmtree(self.dir, ignore_errors=True)

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
        return {
            "etcd": _etcd_binary(),
            "kube-apiserver": _kube_binary("kube-apiserver"),
            "kube-controller-manager": _kube_binary("kube-controller-manager"),
        }

    def _start_processes(self, binaries: dict[str, str], started: float) -> None:
        _write_pki(self.dir)
        tokens = _write_tokens(self.dir, {**USERS, CONTROLLER_MANAGER: ()})
        etcd_url = f"http://127.0.0.1:{_free_port()}"
        self._spawn("etcd", self._etcd_args(binaries["etcd"], etcd_url))
        self._wait_until(f"{etcd_url}/health", "", None, "etcd")
        self.timings["etcd"] = time.monotonic() - started
        self._spawn("kube-apiserver", self._apiserver_args(binaries["kube-apiserver"], etcd_url))
        self._wait_until(
            f"{self._server}/readyz", tokens[ADMIN], self.dir / "ca.crt", "kube-apiserver"
        )
        self.timings["apiserver"] = time.monotonic() - started
        self._write_kubeconfigs(tokens)
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
        port = _free_port()
        self._server = f"https://127.0.0.1:{port}"
        d = self.dir
        return [
            apiserver, "--etcd-servers", etcd_url,
            "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
            "--secure-port", str(port), "--insecure-port", "0", "--cert-dir", str(d),
            "--tls-cert-file", str(d / "server.crt"),
            "--tls-private-key-file", str(d / "server.key"),
            "--client-ca-file", str(d / "ca.crt"), "--token-auth-file", str(d / "tokens.csv"),
            "--authorization-mode", "RBAC", "--anonymous-auth=false",
            "--enable-admission-plugins", ADMISSION_PLUGINS,
            "--service-account-key-file", str(d / "sa.pub"),
            "--service-account-signing-key-file", str(d / "sa.key"),
            "--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
            "--api-audiences", "https://kubernetes.default.svc.cluster.local",
            "--service-cluster-ip-range", SERVICE_CIDR,
            *self._audit_args(),
        ]  # fmt: skip

    def _audit_args(self) -> list[str]:
        log = os.environ.get("MESHGUARD_AUDIT_LOG")
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

    def _write_kubeconfigs(self, tokens: dict[str, str]) -> None:
        ca_pem = (self.dir / "ca.crt").read_bytes()
        paths = {user: self.kubeconfig_for(user) for user in USERS}
        paths[CONTROLLER_MANAGER] = str(self.dir / "kubeconfig-controller-manager")
        for user, path in paths.items():
            config = _kubeconfig(self._server, ca_pem, user, tokens[user])
            _write_private(Path(path), yaml.safe_dump(config).encode())

    def _spawn(self, name: str, argv: list[str]) -> None:
        """Start ``argv`` daemonized in its own session (process group id == pid)."""
        with open(self.dir / f"{name}.log", "wb") as log:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.dir,
                start_new_session=True,
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
        state = {"server": self._server, "pids": pids}
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
    print(json.dumps({"server": cp.server, "alive": alive}))
    return 0 if alive and all(alive.values()) and len(alive) == len(PROCESSES) else 1


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
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](LocalControlPlane(args.dir))
    except TestbedError as exc:
        print(f"testbed: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
