"""meshguard.egress against the manual procedure, side by side, on the local control plane.

    .venv/bin/python benchmarks/run.py [--sizes 1,10,50] [--flavors gloo,istio]
                                       [--upstream-delay-ms 200] [--probe-repeat 3]

1. ``playbooks/site.yml`` (example inventory + molecule/shared/gateway-vars.yml: the stand-in
   gateway chart with Istio's values schema) for N external services, cold (fresh control
   plane, prepared like molecule's prepare.yml) and re-run;
2. the manual way of the procedure on another fresh control plane: ``kubectl apply`` of the
   same rendered manifests (the collection's own renderer) and ``helm upgrade --install
   --atomic --wait`` with the same values, cold and re-run;
3. benchmarks/probe_matrix.py: 50 probes against the real Envoy fixture, parallel batch vs
   one after another, with upstreams answering at once and after --upstream-delay-ms.

Per run: wall seconds, peak RSS of the process tree (sum over the process and its
descendants, sampled every 20 ms) and the API requests it made (``ResponseComplete`` events
of user ``admin`` in the API server's audit log). Prints figures and ratios; asserts nothing.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = ROOT / ".venv" / "bin"
sys.path.insert(0, str(ROOT / "hack"))
sys.path.insert(0, str(ROOT / ".venv" / "collections"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from probe_matrix import MatrixFigures, measure  # noqa: E402
from testbed import LocalControlPlane  # noqa: E402

from ansible_collections.meshguard.egress.plugins.plugin_utils.description import (  # noqa: E402
    description_from_variables,
)
from ansible_collections.meshguard.egress.plugins.plugin_utils.plan import build_plan  # noqa: E402

GATEWAY_VARS = ROOT / "molecule" / "shared" / "gateway-vars.yml"
EXAMPLE_VARS = ROOT / "playbooks" / "inventory" / "example" / "group_vars" / "all" / "egress.yml"
CONCERNS = ("outbound_policy", "routes", "access", "lockdown")
SAMPLE_SECONDS = 0.02


@dataclass
class Figures:
    seconds: float
    peak_mib: float
    api_requests: int


# -- measuring one command ---------------------------------------------------------------
def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        tree.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    return tree


def _tree_rss_kib(root: int) -> int:
    tree, total, pending = _children(), 0, [root]
    while pending:
        pid = pending.pop()
        pending.extend(tree.get(pid, []))
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def _audit_requests(log: Path) -> int:
    if not log.exists():
        return 0
    count = 0
    for line in log.read_text().splitlines():
        event = json.loads(line)
        if event.get("stage") == "ResponseComplete" and event["user"]["username"] == "admin":
            count += 1
    return count


def measured(argv: list[str], env: dict[str, str], audit_log: Path) -> Figures:
    """Run ``argv``; wall time, peak RSS of its process tree, API requests it made."""
    before = _audit_requests(audit_log)
    peak = 0
    started = time.perf_counter()
    proc = subprocess.Popen(
        argv, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.append(proc.stdout.read()), daemon=True)
    reader.start()
    while proc.poll() is None:
        peak = max(peak, _tree_rss_kib(proc.pid))
        time.sleep(SAMPLE_SECONDS)
    seconds = time.perf_counter() - started
    reader.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])} failed:\n{''.join(output)[-3000:]}")
    time.sleep(1.5)  # the audit backend writes in batches
    return Figures(seconds, peak / 1024, _audit_requests(audit_log) - before)


# -- the description ---------------------------------------------------------------------
def services(count: int) -> list[dict[str, Any]]:
    """``count`` external services like the example's httpbin.org, each with one client."""
    return [
        {
            "host": f"svc-{i}.example.com",
            "ports": [{"number": 443, "protocol": "HTTPS", "client_port": 80}],
            "clients": [{"namespace": "bookinfo", "service_account": "bookinfo-productpage"}],
        }
        for i in range(count)
    ]


def description(flavor: str, count: int, chart: Path) -> dict[str, Any]:
    """The inventory variables site.yml reads (the example's, the tests' gateway override with
    the stand-in chart), and the same description for the manual way."""
    example = yaml.safe_load(EXAMPLE_VARS.read_text())
    override = yaml.safe_load(GATEWAY_VARS.read_text())["egress_override_tests"]
    override["gateway"].update(
        chart_ref=str(chart), values_schema=str(chart / "values.schema.json")
    )
    return {
        **{k: v for k, v in example.items() if k.startswith("egress_") and k != "egress_verify"},
        "egress_flavor": flavor,
        "egress_services": services(count),
        "egress_override_tests": override,
    }


def manual_manifests(inventory: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """What the procedure's kubectl apply and helm -f get: objects (namespaces first), values."""
    variables = {
        k: v for k, v in inventory.items() if k not in ("egress_kubeconfig", "egress_context")
    }
    plan = build_plan(description_from_variables(copy.deepcopy(variables)))
    namespaces = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns["name"]}}
        for ns in plan["namespaces"]
    ]
    return namespaces + plan["objects"], plan["release"]["values"]


# -- the runs ----------------------------------------------------------------------------
def _prepare(kubeconfig: str) -> None:
    """What molecule/shared/prepare.yml creates: bookinfo, istio-system, a gateway node."""
    kubectl = [str(VENV_BIN / "kubectl"), "--kubeconfig", kubeconfig]
    for namespace in ("bookinfo", "istio-system"):
        subprocess.run(
            [*kubectl, "create", "namespace", namespace], check=True, capture_output=True
        )
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "meshguard-egress-node-1"}}
    subprocess.run(
        [*kubectl, "create", "-f", "-"], input=json.dumps(node), text=True, check=True,
        capture_output=True,
    )  # fmt: skip


@contextmanager
def control_plane(workdir: Path) -> Iterator[tuple[LocalControlPlane, Path]]:
    """A fresh local control plane with the audit log on, prepared like prepare.yml."""
    audit = workdir / "audit.log"
    os.environ["MESHGUARD_AUDIT_LOG"] = str(audit)
    try:
        with LocalControlPlane(workdir / "testbed") as cp:
            _prepare(cp.kubeconfig)
            yield cp, audit
    finally:
        os.environ.pop("MESHGUARD_AUDIT_LOG", None)


def ansible_env(kubeconfig: str, chart: Path) -> dict[str, str]:
    return dict(
        os.environ,
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".venv" / "collections"),
        K8S_AUTH_KUBECONFIG=kubeconfig,
        KUBECONFIG=kubeconfig,
        MESHGUARD_GATEWAY_CHART=str(chart),
        PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    )


def converge(inventory: dict[str, Any], chart: Path, workdir: Path) -> tuple[Figures, Figures]:
    vars_file = workdir / "vars.json"
    vars_file.write_text(json.dumps(inventory))
    with control_plane(workdir) as (cp, audit):
        argv = [str(VENV_BIN / "ansible-playbook"), "playbooks/site.yml", "-e", f"@{vars_file}"]
        env = ansible_env(cp.kubeconfig, chart)
        return measured(argv, env, audit), measured(argv, env, audit)


def manual(inventory: dict[str, Any], chart: Path, workdir: Path) -> tuple[Figures, Figures]:
    objects, values = manual_manifests(inventory)
    manifests, values_file = workdir / "manifests.yaml", workdir / "values.yaml"
    manifests.write_text(yaml.safe_dump_all(objects))
    values_file.write_text(yaml.safe_dump(values))
    gateway = inventory["egress_gateway"]
    script = (
        f"set -e; kubectl apply -f {manifests}; "
        f"helm upgrade --install {gateway['name']} {chart} -n {gateway['namespace']} "
        f"-f {values_file} --atomic --wait --timeout 5m"
    )
    with control_plane(workdir) as (cp, audit):
        env = ansible_env(cp.kubeconfig, chart)
        argv = ["/bin/sh", "-c", script]
        return measured(argv, env, audit), measured(argv, env, audit)


# -- report ------------------------------------------------------------------------------
def row(label: str, figures: Figures) -> str:
    return f"{label:<28} {figures.seconds:>8.1f} {figures.peak_mib:>9.0f} {figures.api_requests:>8}"


def report(results: dict[tuple[str, int, str], tuple[Figures, Figures]], sizes: list[int]) -> None:
    print(f"\n{'run':<28} {'wall s':>8} {'peak MiB':>9} {'API req':>8}")
    for (flavor, count, method), (cold, rerun) in results.items():
        print(row(f"{flavor} N={count} {method} cold", cold))
        print(row(f"{flavor} N={count} {method} re-run", rerun))
    print("\nratios (target)")
    for flavor in sorted({key[0] for key in results}):
        small, large = min(sizes), max(sizes)
        cold_small = results[(flavor, small, "site.yml")][0].seconds
        cold_large = results[(flavor, large, "site.yml")][0].seconds
        print(
            f"{flavor}: site.yml cold N={large} / N={small}: {cold_large / cold_small:.2f}x (<= 2x)"
        )
        for count in sizes:
            ours = results[(flavor, count, "site.yml")][0].seconds
            theirs = results[(flavor, count, "manual")][0].seconds
            print(f"{flavor}: cold site.yml / manual, N={count}: {ours / theirs:.2f}x (<= 1.5x)")
        for count in sizes:
            ours = results[(flavor, count, "site.yml")][1].seconds
            theirs = results[(flavor, count, "manual")][1].seconds
            print(f"{flavor}: re-run site.yml / manual, N={count}: {ours / theirs:.2f}x (<= 1.5x)")


def fleet(clusters: int, chart: Path, workdir: Path) -> float:
    """Wall seconds of one site.yml run converging ``clusters`` fresh control planes, one
    inventory host each (forks = clusters)."""
    inventory = description("gloo", 1, chart)
    for connection in ("egress_kubeconfig", "egress_context"):  # per host, in the inventory
        inventory.pop(connection, None)
    vars_file = workdir / "vars.json"
    vars_file.write_text(json.dumps(inventory))
    planes = []
    try:
        hosts = {}
        for i in range(clusters):
            cp = LocalControlPlane(workdir / f"cluster-{i}")
            cp.start()
            planes.append(cp)
            _prepare(cp.kubeconfig)
            hosts[f"cluster-{i}"] = {
                "ansible_connection": "local",
                "ansible_python_interpreter": str(VENV_BIN / "python"),
                "egress_kubeconfig": cp.kubeconfig,
            }
        hosts_file = workdir / "fleet.yml"
        hosts_file.write_text(yaml.safe_dump({"fleet": {"hosts": hosts}}))
        argv = [
            str(VENV_BIN / "ansible-playbook"), "-i", str(hosts_file), "playbooks/site.yml",
            "-e", f"@{vars_file}", "--forks", str(clusters),
        ]  # fmt: skip
        env = ansible_env(planes[0].kubeconfig, chart)
        env.pop("K8S_AUTH_KUBECONFIG")
        start = time.monotonic()
        done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        seconds = time.monotonic() - start
        if done.returncode != 0:
            raise SystemExit(f"fleet run failed:\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}")
        return seconds
    finally:
        for cp in planes:
            cp.stop()


def report_matrix(matrices: list[MatrixFigures]) -> None:
    print(f"\n{'probe matrix':<28} {'parallel s':>10} {'serial s':>9} {'ratio':>7} (target 10x)")
    for m in matrices:
        label = f"{m.probes} probes, upstream +{m.upstream_delay_ms} ms"
        print(f"{label:<28} {m.parallel_s:>10.3f} {m.serial_s:>9.3f} {m.ratio:>6.1f}x")
        if m.misclassified:
            print(f"  misclassified: {m.misclassified[:5]}")


def machine() -> str:
    mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    return f"{os.cpu_count()} cores, {mem_kib / 1024 / 1024:.0f} GiB, {platform.platform()}"


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", maxsplit=1)[0])
    parser.add_argument("--sizes", default="1,10,50")
    parser.add_argument("--flavors", default="gloo,istio")
    parser.add_argument("--upstream-delay-ms", type=int, default=200)
    parser.add_argument("--probe-repeat", type=int, default=3)
    parser.add_argument("--fleet", type=int, default=4, help="clusters for the fleet run (0: skip)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"{datetime.datetime.now().isoformat(timespec='minutes')} on {machine()}")
    results: dict[tuple[str, int, str], tuple[Figures, Figures]] = {}
    with tempfile.TemporaryDirectory(prefix="mg-bench-") as tmp:
        chart = Path(
            subprocess.run(
                ["bash", str(ROOT / "hack" / "chart.sh"), f"{tmp}/charts"],
                check=True, capture_output=True, text=True,
            ).stdout.strip()
        )  # fmt: skip
        for flavor in args.flavors.split(","):
            for count in sizes:
                inventory = description(flavor, count, chart)
                for method, run in (("site.yml", converge), ("manual", manual)):
                    workdir = Path(tmp) / f"{flavor}-{count}-{method.replace('.', '-')}"
                    workdir.mkdir()
                    results[(flavor, count, method)] = run(inventory, chart, workdir)
                    cold, rerun = results[(flavor, count, method)]
                    print(row(f"{flavor} N={count} {method} cold", cold), flush=True)
                    print(row(f"{flavor} N={count} {method} re-run", rerun), flush=True)
        if args.fleet:
            one = fleet(1, chart, Path(tempfile.mkdtemp(dir=tmp)))
            many = fleet(args.fleet, chart, Path(tempfile.mkdtemp(dir=tmp)))
    report(results, sizes)
    if args.fleet:
        print(f"\nfleet: site.yml on 1 cluster {one:.1f} s, on {args.fleet} clusters {many:.1f} s: "
              f"{many / one:.2f}x (<= 2x)")  # fmt: skip
    matrices = [measure(50, args.probe_repeat, 0)]
    if args.upstream_delay_ms:
        matrices.append(measure(50, args.probe_repeat, args.upstream_delay_ms))
    report_matrix(matrices)
    return 0


if __name__ == "__main__":
    sys.exit(main())
