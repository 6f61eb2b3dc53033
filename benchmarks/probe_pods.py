"""A probe matrix on real pods: ``egress_probe`` (one exec per source pod) against the
procedure's way (``kubectl exec ... -- curl``, one per probe, one after another).

Run: .venv/bin/python benchmarks/probe_pods.py [--probes 50] [--repeat 3]
(needs root and ``make setup``; with MESHGUARD_NODE_TESTBED_DIR it uses that running test
bed with a node, otherwise it starts one and stops it afterwards).

Both ways use the same pods in the same run: the example description is converged on the
node with the stand-in data plane (hack/standin_mesh.py), then the same probes are sent
from bookinfo's productpage pod (``curl`` container, through its sidecar and the egress
gateway): alternately ``httpbin.org/get`` (200 through the gateway) and an unregistered host
(502, REGISTRY_ONLY). ``egress_probe`` runs as users run it (``ansible localhost -m
meshguard.egress.egress_probe``, so Ansible's own start-up is counted). Prints wall times
(best of --repeat), the ratio and whether every outcome was right; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "hack"))
sys.path.insert(0, str(ROOT / "tests"))

import images  # noqa: E402
from envoy_gateway import run_module  # noqa: E402
from run import ansible_env  # noqa: E402
from standin_mesh import Standin  # noqa: E402
from testbed import LocalControlPlane  # noqa: E402

VARS = ("-e", "@hack/embedded-vars.yml", "-e", "@hack/embedded-node-vars.yml")
SOURCE = {"namespace": "bookinfo", "label_selector": "app=productpage", "container": "curl"}
TARGETS = (
    ("http://httpbin.org/get", "allowed", "200"),
    ("http://unregistered.meshguard.invalid/get", "blocked", "502"),
)


def env(kubeconfig: str, work: Path) -> dict[str, str]:
    """benchmarks/run.py's environment for the playbooks, plus the node's local curl image."""
    chart = subprocess.run(
        ["bash", "hack/chart.sh", str(work / "charts")],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    schema = Path(chart) / "values.schema.json"
    return dict(
        ansible_env(kubeconfig, Path(chart)),
        MESHGUARD_GATEWAY_SCHEMA=str(schema) if schema.is_file() else "",
        MESHGUARD_CURL_IMAGE=images.image_names()["curl"],
    )


def playbook(environ: dict[str, str], *args: str) -> None:
    subprocess.run(
        ["ansible-playbook", *args, *VARS], cwd=ROOT, env=environ, check=True, capture_output=True
    )


def with_module(count: int, kubeconfig: str, work: Path) -> tuple[float, list[str]]:
    probes = [
        {
            "name": f"p{i}",
            "url": TARGETS[i % 2][0],
            "expect": TARGETS[i % 2][1],
            "source": SOURCE,
            "timeout": 5,
            "connect_timeout": 3,
        }
        for i in range(count)
    ]
    os.environ["K8S_AUTH_KUBECONFIG"] = kubeconfig
    started = time.perf_counter()
    result = run_module("egress_probe", {"probes": probes, "deadline": 0}, work)
    elapsed = time.perf_counter() - started
    wrong = [p["name"] for p in result.get("probes", []) if not p["held"]]
    return elapsed, wrong if result.get("probes") else [f"module failed: {result.get('msg')}"]


def with_kubectl(count: int, environ: dict[str, str], pod: str) -> tuple[float, list[str]]:
    wrong = []
    started = time.perf_counter()
    for i in range(count):
        url, _expect, status = TARGETS[i % 2]
        out = subprocess.run(
            ["kubectl", "exec", "-n", "bookinfo", pod, "-c", "curl", "--"]
            + ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-m", "5", url],
            env=environ,
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        if out.strip() != status:
            wrong.append(f"p{i}: {out!r}")
    return time.perf_counter() - started, wrong


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--probes", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        running = os.environ.get("MESHGUARD_NODE_TESTBED_DIR")
        node = LocalControlPlane(running) if running else None
        if node is None:
            node = LocalControlPlane(work / "testbed", node=True).start()
        try:
            environ = env(node.kubeconfig, work)
            playbook(environ, "hack/standin-plan.yml", "-e", f"standin_plan_path={work}/plan.json")
            standin = Standin(work / "standin", node.kubeconfig)
            standin.start(str(work / "plan.json"))
            try:
                playbook(environ, "playbooks/site.yml")
                pod = standin.clients()[0].split("/", 1)[1]
                module_s, kubectl_s = [], []
                module_wrong: list[str] = []
                kubectl_wrong: list[str] = []
                for _round in range(args.repeat):
                    seconds, module_wrong = with_module(args.probes, node.kubeconfig, work)
                    module_s.append(seconds)
                    seconds, kubectl_wrong = with_kubectl(args.probes, environ, pod)
                    kubectl_s.append(seconds)
                playbook(environ, "playbooks/teardown.yml")
            finally:
                standin.stop()
        finally:
            if not running:
                node.stop()
    best_module, best_kubectl = min(module_s), min(kubectl_s)
    print(f"{'probes on real pods':<34} {'seconds':>8}  outcomes")
    print(
        f"{'egress_probe (one exec per pod)':<34} {best_module:>8.2f}  "
        f"{module_wrong or 'all right'}"
    )
    print(
        f"{'kubectl exec curl, one by one':<34} {best_kubectl:>8.2f}  "
        f"{kubectl_wrong or 'all right'}"
    )
    print(
        f"ratio (kubectl / egress_probe): {best_kubectl / best_module:.1f}x "
        f"(target 10x; {args.probes} probes, best of {args.repeat})"
    )
    print(json.dumps({"probes": args.probes, "module_s": module_s, "kubectl_s": kubectl_s}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
