"""The local test bed's node (used by hack/testbed.py ``start --node``): a private network
namespace, and containerd, kubelet, kube-proxy and kube-scheduler inside it.

Safety: nothing in the node can send a packet off this machine. Its network namespace has
exactly two routes -- a /30 on a veth pair to the host (the host end carries the API
server's address) and the pods' bridge -- and no default route. The kubelet is built
without the cloud credential providers (hack/build-kube.sh) and every node process runs
with ``AWS_EC2_METADATA_DISABLED=true``; pods get ``nameserver 127.0.0.1``; images are
imported locally under ``localhost/`` (hack/images.py).

Cleanup (``NodeResources.cleanup``) removes everything the node leaves outside its work
directory: container processes (found by their cgroup), mounts under the node's
directories, its cgroups, the network namespace (and with it the veth pair, the bridge,
the pods' veths and every iptables rule kube-proxy and the CNI plugins wrote, which live
in that namespace), /var/log/pods entries of its pods, CNI result files, and the kernel
settings the kubelet changes (restored to the values read before it started).
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

NODE_NAME = "meshguard-node"
POD_SUBNET = "10.244.0.0/24"  # exists only inside the node's network namespace
CLUSTER_CIDR = "10.244.0.0/16"
VETH_POOL = ipaddress.ip_network("10.213.0.0/16")  # one /30 of it, only on our veth pair
CNI_BIN_DIR = "/usr/lib/cni"
NODE_ENV = {"AWS_EC2_METADATA_DISABLED": "true"}
# what the kubelet's container manager sets (setupKernelTunables); restored on stop
KERNEL_TUNABLES = (
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
)
CGROUP_FS = Path("/sys/fs/cgroup")
# fixed host paths the kubelet, containerd and the CNI plugins write to whatever they are told
HOST_DIRS = ("/var/lib/kubelet", "/var/lib/cni", "/var/log/pods", "/var/log/containers",
             "/run/containerd")  # fmt: skip
HOST_TOOLS = ("ip", "nsenter", "containerd", "containerd-shim-runc-v2", "runc", "ctr")


class NodeError(RuntimeError):
    pass


def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise NodeError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def check_host() -> None:
    """The node needs root and the Debian packages hack/setup.sh installs."""
    if os.geteuid() != 0:
        raise NodeError("the local node needs root (network namespaces, mounts, cgroups)")
    missing = [tool for tool in HOST_TOOLS if not shutil.which(tool)]
    if not Path(CNI_BIN_DIR, "bridge").exists():
        missing.append(f"{CNI_BIN_DIR}/bridge (containernetworking-plugins)")
    if missing:
        raise NodeError(f"missing for the local node: {', '.join(missing)}; run make setup")


@dataclass
class NodeResources:
    """Names of everything the node creates outside its work directory (saved in the
    test bed's state file, so that ``stop`` can clean up after a crash too)."""

    ident: str
    netns: str
    veth_host: str
    veth_node: str
    host_ip: str
    node_ip: str
    prefix: int
    run_dir: str
    cgroup_name: str
    cni_network: str
    created_run_netns: bool = False
    created_host_dirs: list[str] = field(default_factory=list)
    preexisting_pod_logs: list[str] = field(default_factory=list)
    sysctls: dict[str, str] = field(default_factory=dict)

    @classmethod
    def for_dir(cls, workdir: Path) -> NodeResources:
        ident = hashlib.sha256(str(workdir).encode()).hexdigest()[:8]
        host_ip, node_ip = _free_slash30(ident)
        return cls(
            ident=ident,
            netns=f"meshguard-{ident}",
            veth_host=f"mgh{ident}",
            veth_node=f"mgn{ident}",
            host_ip=host_ip,
            node_ip=node_ip,
            prefix=30,
            run_dir=f"/run/meshguard-{ident}",
            cgroup_name=f"meshguard-{ident}",
            cni_network=f"meshguard-{ident}",
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NodeResources:
        return cls(**data)

    @property
    def netns_path(self) -> str:
        return f"/run/netns/{self.netns}"

    def nsenter(self, argv: list[str]) -> list[str]:
        """``argv`` run inside the node's network namespace (only the network namespace:
        mounts stay shared with the host, as the kubelet and containerd need)."""
        return ["nsenter", f"--net={self.netns_path}", "--", *argv]

    # -- network ----------------------------------------------------------------------
    def create_network(self) -> None:
        """The namespace, the veth pair on a /30, loopback up; no default route."""
        self.created_run_netns = not Path("/run/netns").exists()
        self.created_host_dirs = [d for d in HOST_DIRS if not Path(d).exists()]
        pod_logs = Path("/var/log/pods")
        self.preexisting_pod_logs = sorted(os.listdir(pod_logs)) if pod_logs.is_dir() else []
        run("ip", "netns", "add", self.netns)
        # IPv4 only: no IPv6 (not even link-local) inside the node's namespace
        for key in ("all", "default"):
            run(*self.nsenter(["sysctl", "-q", "-w", f"net.ipv6.conf.{key}.disable_ipv6=1"]))
        run("ip", "link", "add", self.veth_host, "type", "veth", "peer", "name", self.veth_node)
        with contextlib.suppress(OSError):
            Path(f"/proc/sys/net/ipv6/conf/{self.veth_host}/disable_ipv6").write_text("1\n")
        run("ip", "link", "set", self.veth_node, "netns", self.netns)
        run("ip", "addr", "add", f"{self.host_ip}/{self.prefix}", "dev", self.veth_host)
        run("ip", "link", "set", self.veth_host, "up")
        ns = ("ip", "-n", self.netns)
        run(*ns, "addr", "add", f"{self.node_ip}/{self.prefix}", "dev", self.veth_node)
        run(*ns, "link", "set", self.veth_node, "up")
        run(*ns, "link", "set", "lo", "up")
        # routing between the pods' bridge and the Service rules, inside the namespace only
        for key in ("net.ipv4.ip_forward=1", "net.ipv4.conf.all.route_localnet=1"):
            run(*self.nsenter(["sysctl", "-q", "-w", key]))
        # kube-proxy's Service NAT for pod-to-pod traffic across the bridge needs
        # br_netfilter (a kernel module; its sysctls are per network namespace)
        if not Path("/proc/sys/net/bridge").exists() and shutil.which("modprobe"):
            run("modprobe", "br_netfilter", check=False)
        bridge_nf = "net.bridge.bridge-nf-call-iptables=1"
        run(*self.nsenter(["sysctl", "-q", "-w", bridge_nf]), check=False)

    def routes(self) -> str:
        return run("ip", "-n", self.netns, "route", "show").stdout

    # -- kernel settings the kubelet changes ------------------------------------------
    def record_sysctls(self) -> None:
        for key in KERNEL_TUNABLES:
            with contextlib.suppress(OSError):
                self.sysctls[key] = Path("/proc/sys", key).read_text().strip()

    def restore_sysctls(self) -> None:
        for key, value in self.sysctls.items():
            path = Path("/proc/sys", key)
            with contextlib.suppress(OSError):
                if path.read_text().strip() != value:
                    path.write_text(value + "\n")

    # -- cgroups ----------------------------------------------------------------------
    def cgroup_dirs(self) -> list[Path]:
        """The node's cgroup root in every mounted hierarchy (cgroup v1 and v2)."""
        dirs = []
        for hierarchy in sorted(CGROUP_FS.iterdir()) if CGROUP_FS.is_dir() else []:
            candidate = hierarchy / self.cgroup_name
            if candidate.is_dir():
                dirs.append(candidate)
        return dirs

    def create_cgroups(self) -> None:
        """The kubelet's --cgroup-root must exist in every v1 controller it uses."""
        for hierarchy in sorted(CGROUP_FS.iterdir()):
            if not (hierarchy / "cgroup.procs").exists():
                continue
            target = hierarchy / self.cgroup_name
            target.mkdir(exist_ok=True)
            for name in ("cpuset.cpus", "cpuset.mems"):  # a new cpuset cgroup starts empty
                parent_value = hierarchy / name
                if parent_value.exists() and not (target / name).read_text().strip():
                    (target / name).write_text(parent_value.read_text())

    def container_pids(self) -> list[int]:
        """Processes in the node's cgroups (the pods' containers and sandboxes)."""
        marker = f"/{self.cgroup_name}/"
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cgroups = (entry / "cgroup").read_text()
            except OSError:
                continue
            if marker in cgroups:
                pids.append(int(entry.name))
        return pids

    def kill_containers(self, timeout: float = 10.0) -> list[int]:
        """SIGKILL every container process until none is left; returns the survivors."""
        deadline = time.monotonic() + timeout
        while True:
            pids = self.container_pids()
            if not pids or time.monotonic() > deadline:
                return pids
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)

    def remove_cgroups(self, timeout: float = 10.0) -> list[str]:
        """rmdir the node's cgroup trees bottom-up; returns what could not be removed."""
        deadline = time.monotonic() + timeout
        while True:
            left = []
            for top in self.cgroup_dirs():
                for current, _dirs, _files in os.walk(top, topdown=False):
                    try:
                        os.rmdir(current)
                    except OSError:
                        left.append(current)
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.2)

    # -- mounts -----------------------------------------------------------------------
    def mounts_under(self, roots: list[str]) -> list[str]:
        prefixes = [r.rstrip("/") + "/" for r in roots]
        found = []
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            point = line.split()[4].replace("\\040", " ")
            if any(point.startswith(p) or point == p[:-1] for p in prefixes):
                found.append(point)
        return found

    def unmount_all(self, roots: list[str]) -> list[str]:
        """Unmount everything under ``roots`` (deepest first); returns what is left."""
        for _attempt in range(3):
            points = self.mounts_under(roots)
            if not points:
                return []
            for point in sorted(set(points), key=lambda p: p.count("/"), reverse=True):
                if run("umount", point, check=False).returncode != 0:
                    run("umount", "-l", point, check=False)
        return self.mounts_under(roots)

    # -- the rest of the cleanup ------------------------------------------------------
    @staticmethod
    def shim_sockets(pid: int) -> list[str]:
        """Socket files under /run/containerd bound in the node's network namespace (the
        shims' sockets: containerd 1.6 puts them in /run/containerd/s whatever its state
        directory; /proc/PID/net/unix lists the sockets of PID's network namespace)."""
        try:
            lines = Path(f"/proc/{pid}/net/unix").read_text().splitlines()[1:]
        except OSError:
            return []
        paths = {line.split()[-1] for line in lines if len(line.split()) >= 8}
        return sorted(p for p in paths if p.startswith("/run/containerd/"))

    @staticmethod
    def remove_sockets(paths: list[str]) -> None:
        for path in paths:
            with contextlib.suppress(OSError):
                os.unlink(path)

    def delete_network(self) -> None:
        if Path(self.netns_path).exists():
            run("ip", "netns", "delete", self.netns, check=False)
        if run("ip", "link", "show", self.veth_host, check=False).returncode == 0:
            run("ip", "link", "delete", self.veth_host, check=False)
        netns_dir = Path("/run/netns")
        if self.created_run_netns and netns_dir.is_dir() and not any(netns_dir.iterdir()):
            # `ip netns add` made /run/netns a bind mount of itself
            while run("umount", str(netns_dir), check=False).returncode == 0:
                pass
            with contextlib.suppress(OSError):
                netns_dir.rmdir()

    def remove_host_files(self) -> None:
        """What the kubelet and the CNI plugins write to fixed host paths.

        /var/log/pods/NAMESPACE_POD_UID (a fixed path in 1.20; the kubelet removes an entry
        only a while after its pod is gone): the entries that appeared while this node ran,
        except those of pods another running test-bed node still has."""
        pods_log = Path("/var/log/pods")
        removed = []
        if pods_log.is_dir():
            others = _other_nodes_pod_uids(self.run_dir)
            for entry in pods_log.iterdir():
                uid = entry.name.rsplit("_", 1)[-1]
                if entry.name not in self.preexisting_pod_logs and uid not in others:
                    shutil.rmtree(entry, ignore_errors=True)
                    removed.append(str(entry) + "/")
        containers_log = Path("/var/log/containers")
        if containers_log.is_dir():
            for link in containers_log.iterdir():
                target = os.readlink(link) if link.is_symlink() else ""
                if any(target.startswith(prefix) for prefix in removed):
                    link.unlink()
        results = Path("/var/lib/cni/results")
        if results.is_dir():  # NETWORK-SANDBOXID-IFNAME; containerd's loopback is cni-loopback
            for entry in results.glob(f"{self.cni_network}-*"):
                sandbox = entry.name[len(self.cni_network) + 1 :].rsplit("-", 1)[0]
                with contextlib.suppress(OSError):
                    Path(results, f"cni-loopback-{sandbox}-lo").unlink()
                entry.unlink()
        # the kubelet's device plugin socket has a fixed path in 1.20
        plugins = Path("/var/lib/kubelet/device-plugins")
        if "/var/lib/kubelet" in self.created_host_dirs:
            for name in ("kubelet.sock", "DEPRECATION"):
                with contextlib.suppress(OSError):
                    (plugins / name).unlink()
        # the directories that were not there before the node started go when empty
        created = set(self.created_host_dirs)
        for child in (results, plugins, Path("/run/containerd/s")):
            if str(child.parent) in created:
                with contextlib.suppress(OSError):
                    child.rmdir()
        for directory in sorted(created, reverse=True):
            with contextlib.suppress(OSError):
                Path(directory).rmdir()
        shutil.rmtree(self.run_dir, ignore_errors=True)

    def leftovers(self, workdir: Path) -> dict[str, Any]:
        """What of the node is still there (empty lists when the cleanup was complete)."""
        return {
            "host_dirs": [d for d in self.created_host_dirs if Path(d).exists()],
            "processes": self.container_pids(),
            "mounts": self.mounts_under([str(workdir), self.run_dir, self.netns_path]),
            "cgroups": [str(d) for d in self.cgroup_dirs()],
            "netns": Path(self.netns_path).exists(),
            "veth": run("ip", "link", "show", self.veth_host, check=False).returncode == 0,
            "sysctls": {
                k: v
                for k, v in self.sysctls.items()
                if Path("/proc/sys", k).read_text().strip() != v
            },
        }


def _other_nodes_pod_uids(own_run_dir: str) -> set[str]:
    """Pod UIDs of the other test-bed nodes running on this host (their kubelets' pods
    directories, found through /run/meshguard-*/kubelet-root)."""
    uids: set[str] = set()
    for marker in Path("/run").glob("meshguard-*/kubelet-root"):
        if str(marker.parent) == own_run_dir:
            continue
        with contextlib.suppress(OSError):
            uids.update(os.listdir(Path(marker.read_text().strip()) / "pods"))
    return uids


def _free_slash30(ident: str) -> tuple[str, str]:
    """A /30 of VETH_POOL that no address or route of this host overlaps."""
    used = []
    for line in run("ip", "-o", "-4", "route", "show", "table", "all").stdout.splitlines():
        dest = line.split()[0]
        if dest in ("default", "broadcast", "local", "unreachable", "blackhole", "prohibit"):
            dest = line.split()[1] if len(line.split()) > 1 else ""
        with contextlib.suppress(ValueError):
            net = ipaddress.ip_network(dest, strict=False)
            if net.prefixlen > 0:
                used.append(net)
    subnets = list(VETH_POOL.subnets(new_prefix=30))
    start = int(ident, 16) % len(subnets)
    for offset in range(len(subnets)):
        subnet = subnets[(start + offset) % len(subnets)]
        if not any(subnet.overlaps(net) for net in used):
            hosts = list(subnet.hosts())
            return str(hosts[0]), str(hosts[1])
    raise NodeError(f"no free /30 in {VETH_POOL} for the node's veth pair")


# -- configuration files ----------------------------------------------------------------
def containerd_config(res: NodeResources, node_dir: Path, pause_image: str) -> str:
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""version = 2
root = "{node_dir}/containerd/root"
state = "{res.run_dir}/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "{res.run_dir}/containerd.sock"
[ttrpc]
  address = "{res.run_dir}/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "{node_dir}/containerd/opt"
  [{cri}]
    sandbox_image = "{pause_image}"
    restrict_oom_score_adj = true
    disable_apparmor = true
    netns_mounts_under_state_dir = true
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
    enable_selinux = false
    [{cri}.containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "runc"
      [{cri}.containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [{cri}.containerd.runtimes.runc.options]
          SystemdCgroup = false
          Root = "{res.run_dir}/runc"
    [{cri}.cni]
      bin_dir = "{CNI_BIN_DIR}"
      conf_dir = "{node_dir}/cni"
      max_conf_num = 1
    [{cri}.registry]
      config_path = ""
"""


def cni_config(res: NodeResources, node_dir: Path) -> dict[str, Any]:
    return {
        "cniVersion": "0.4.0",
        "name": res.cni_network,
        "plugins": [
            {
                "type": "bridge",
                "bridge": "cni0",
                "isGateway": True,
                "hairpinMode": True,
                "ipMasq": False,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_SUBNET}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(node_dir / "cni-ipam"),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def kubelet_config(res: NodeResources, node_dir: Path, pki: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": res.node_ip,
        "port": 10250,
        "readOnlyPort": 0,
        "healthzPort": 0,
        "tlsCertFile": pki["cert"],
        "tlsPrivateKeyFile": pki["key"],
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": False},
            "x509": {"clientCAFile": pki["ca"]},
        },
        "authorization": {"mode": "AlwaysAllow"},  # only the API server has a client cert
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": f"/{res.cgroup_name}",
        "failSwapOn": False,
        "resolvConf": str(node_dir / "resolv.conf"),
        "evictionHard": {
            "memory.available": "1Mi",
            "nodefs.available": "1%",
            "nodefs.inodesFree": "1%",
            "imagefs.available": "1%",
        },
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "featureGates": {"EphemeralContainers": True},
        "serializeImagePulls": False,
        "nodeStatusUpdateFrequency": "4s",
        "syncFrequency": "10s",
    }


def write_node_files(res: NodeResources, node_dir: Path, pause_image: str) -> None:
    node_dir.mkdir(parents=True, exist_ok=True)
    (node_dir / "cni").mkdir(exist_ok=True)
    (node_dir / "containerd.toml").write_text(containerd_config(res, node_dir, pause_image))
    (node_dir / "cni" / "10-meshguard.conflist").write_text(
        json.dumps(cni_config(res, node_dir), indent=2) + "\n"
    )
    # pods resolve nothing outside: no name server but loopback, test hosts via hostAliases
    (node_dir / "resolv.conf").write_text("nameserver 127.0.0.1\n")
    Path(res.run_dir).mkdir(parents=True, exist_ok=True)
    (Path(res.run_dir) / "kubelet-root").write_text(str(node_dir / "kubelet") + "\n")
