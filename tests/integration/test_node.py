"""The test bed's node (hack/testbed.py --node): real pods, and nothing that can leave this
machine.

* The node's network namespace has no default route; its only routes are the /30 of its
  veth pair to the host and the pods' bridge; ``ip route get`` to addresses off the machine
  fails inside it (that command sends nothing). Every node process runs in it, with
  ``AWS_EC2_METADATA_DISABLED=true``; the kubelet links no cloud credential provider, no
  cAdvisor cloud-info provider, and has no cloud metadata address in it.
* A pod runs from a local image; exec and logs work through the API server; pods resolve
  nothing but loopback.
* ``stop`` leaves no process, mount, cgroup, network namespace, veth, host iptables rule,
  /var/log/pods entry or changed kernel setting behind.
"""

from __future__ import annotations

import ipaddress
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import node_pods
from node_pods import IMAGES, container, pod_body

pytestmark = pytest.mark.integration

# addresses off this machine (never contacted: `ip route get` only asks the routing table)
OFF_MACHINE = ("1.1.1.1", "8.8.8.8", "169.254.169.254", "192.168.1.1", "172.16.0.1", "10.0.0.1")


def _routes(netns: str, family: str = "-4") -> list[str]:
    out = subprocess.run(
        ["ip", family, "-n", netns, "route", "show", "table", "all"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line for line in out.splitlines() if line.strip()]


def test_node_namespace_has_no_route_off_the_machine(node_testbed: Any) -> None:
    node = node_testbed.node_resources
    routes = _routes(node.netns)
    main = [r for r in routes if " table " not in r]  # the main table (no "table local")
    assert not [r for r in routes if r.startswith("default")], routes
    destinations = {ipaddress.ip_network(r.split()[0]) for r in main}
    veth = ipaddress.ip_network(f"{node.host_ip}/{node.prefix}", strict=False)
    assert destinations <= {veth, ipaddress.ip_network("10.244.0.0/24")}, main
    assert veth in destinations
    assert _routes(node.netns, "-6") == []  # no IPv6 at all, not even link-local
    for address in OFF_MACHINE:
        probe = subprocess.run(
            ["ip", "-n", node.netns, "route", "get", address],
            capture_output=True,
            text=True,
            check=False,
        )
        assert probe.returncode != 0, (address, probe.stdout)
        assert "unreachable" in probe.stderr.lower(), probe.stderr
    # the only neighbour is the host end of the veth pair, which is a local address here
    host = subprocess.run(
        ["ip", "-o", "addr", "show", "dev", node.veth_host],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"inet {node.host_ip}/{node.prefix}" in host


def test_node_processes_run_inside_the_namespace(node_testbed: Any) -> None:
    node = node_testbed.node_resources
    netns_inode = os.stat(node.netns_path).st_ino
    host_inode = os.stat("/proc/self/ns/net").st_ino
    assert netns_inode != host_inode
    for name in ("containerd", "kubelet", "kube-proxy", "kube-scheduler"):
        pid = node_testbed.pids()[name]
        assert os.stat(f"/proc/{pid}/ns/net").st_ino == netns_inode, name
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        assert b"AWS_EC2_METADATA_DISABLED=true" in environ, name
    # the API server listens on the host end of the veth pair (reachable from the node)
    assert node_testbed.server.startswith(f"https://{node.host_ip}:")


def test_kubelet_has_no_cloud_providers() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "hack"))
    from testbed import kube_bin_dir

    kubelet = (kube_bin_dir() / "kubelet").read_bytes()
    assert b"k8s.io/kubernetes/pkg/credentialprovider" in kubelet  # package paths are there
    for provider in (b"aws", b"azure", b"gcp"):
        assert b"pkg/credentialprovider/" + provider not in kubelet, provider
    for provider in (b"aws", b"azure", b"gce"):  # cAdvisor's cloud-info providers
        assert b"cadvisor/utils/cloudinfo/" + provider not in kubelet, provider
    assert b"169.254.169.254" not in kubelet  # the cloud metadata address


def test_pod_runs_with_exec_and_logs(node_testbed: Any, node_namespace: str) -> None:
    core = node_pods.core_api(node_testbed.kubeconfig)
    body = pod_body(
        "hello",
        [
            container(
                "main",
                IMAGES["curl"],
                ["/bin/sh", "-c", "echo hello-from-a-real-pod; exec sleep 3600"],
            )
        ],
        host_aliases={"10.96.0.1": ["api.example"]},
    )
    pod = node_pods.run_pod(core, node_namespace, body)
    assert pod["spec"]["node_name"] == "meshguard-node"
    assert ipaddress.ip_address(pod["status"]["pod_ip"]) in ipaddress.ip_network("10.244.0.0/24")

    logs = node_pods.wait_for(
        lambda: core.read_namespaced_pod_log("hello", node_namespace, container="main"),
        30,
        "the pod's log",
    )
    assert "hello-from-a-real-pod" in logs

    code, out, _err = node_pods.exec_in(core, node_namespace, "hello", ["cat", "/etc/resolv.conf"])
    assert code == 0
    assert re.findall(r"^nameserver\s+(\S+)", out, re.MULTILINE) == ["127.0.0.1"], out
    code, out, _err = node_pods.exec_in(core, node_namespace, "hello", ["cat", "/etc/hosts"])
    assert "api.example" in out
    code, out, err = node_pods.exec_in(core, node_namespace, "hello", ["sh", "-c", "exit 3"])
    assert code == 3, (out, err)
    code, out, _err = node_pods.exec_in(core, node_namespace, "hello", ["curl", "--version"])
    assert code == 0 and out.startswith("curl 7.88.1")


def _host_iptables() -> str:
    rules = []
    for tool in ("iptables-save", "ip6tables-save"):
        proc = subprocess.run([tool], capture_output=True, text=True, check=False)
        for line in proc.stdout.splitlines():
            if line.startswith("#"):
                continue
            rules.append(re.sub(r"\[\d+:\d+\]", "", line))  # counters
    return "\n".join(rules)


def _pod_logs() -> set[str]:
    return set(os.listdir("/var/log/pods")) if os.path.isdir("/var/log/pods") else set()


@pytest.mark.own_node
def test_stop_leaves_nothing_behind(tmp_path: Path) -> None:
    """A node of its own: run a pod, stop, and look for every kind of leftover."""
    from testbed import LocalControlPlane

    iptables_before = _host_iptables()
    netns_before = sorted(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else []
    pod_logs_before = _pod_logs()
    control_plane = LocalControlPlane(tmp_path / "tb", node=True)
    try:
        control_plane.start()
        node = control_plane.node_resources
        core = node_pods.core_api(control_plane.kubeconfig)
        node_pods.create_namespace(core, "leftovers")
        pod = node_pods.run_pod(
            core,
            "leftovers",
            pod_body("sleeper", [container("main", IMAGES["curl"], ["sleep", "3600"])]),
        )
        uid = pod["metadata"]["uid"]
        # things there are to clean up while it runs
        assert node.container_pids()
        assert node.mounts_under([str(control_plane.dir), node.run_dir])
        assert node.cgroup_dirs()
        assert any(p.endswith("_" + uid) for p in _pod_logs())
        rules = subprocess.run(
            ["nsenter", f"--net={node.netns_path}", "iptables-save"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "KUBE-SERVICES" in rules  # kube-proxy's rules, inside the namespace only
        # a deleted pod's log directory outlives it (the kubelet removes it a while later)
        core.delete_namespaced_pod("sleeper", "leftovers", grace_period_seconds=0)
        node_pods.wait_for(
            lambda: not core.list_namespaced_pod("leftovers").items, 60, "the pod deleted"
        )
        assert any(p.endswith("_" + uid) for p in _pod_logs())
        node_pods.run_pod(
            core,
            "leftovers",
            pod_body("sleeper2", [container("main", IMAGES["curl"], ["sleep", "3600"])]),
        )
    finally:
        control_plane.stop()

    left = control_plane.leftovers()
    assert left == {
        "host_dirs": [],
        "processes": [],
        "mounts": [],
        "cgroups": [],
        "netns": False,
        "veth": False,
        "sysctls": {},
        "our_processes": [],
    }
    assert not control_plane.dir.exists()
    assert _host_iptables() == iptables_before
    netns_after = sorted(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else []
    assert netns_after == netns_before
    assert _pod_logs() <= pod_logs_before
    mountinfo = Path("/proc/self/mountinfo").read_text()
    assert str(tmp_path) not in mountinfo and node.run_dir not in mountinfo
    assert not Path(node.run_dir).exists()
