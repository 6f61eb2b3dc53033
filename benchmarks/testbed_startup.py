"""Start and stop the local control plane N times; print how long each phase took and the
peak memory of each process.

    .venv/bin/python benchmarks/testbed_startup.py [-n 3] [--node]

Columns: seconds from start() to etcd healthy, to the API server's /readyz, and to every
CRD (Istio's and the project's Gloo Mesh ones) Established; seconds stop() took; peak RSS
(VmHWM from /proc, read just before stopping) of etcd, kube-apiserver and
kube-controller-manager in MiB. With ``--node`` (needs root and make setup) also the node:
seconds until containerd had imported the images and until the node was Ready (both from
start()), and the peak RSS of containerd, kubelet, kube-proxy and kube-scheduler; stop()
then includes the node's cleanup. Prints figures only; asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "hack"))

from testbed import NODE_PROCESSES, PROCESSES, LocalControlPlane


def columns(node: bool) -> tuple[str, ...]:
    phases = ("etcd", "apiserver") + (("images", "node") if node else ()) + ("crds",)
    processes = PROCESSES + (NODE_PROCESSES if node else ())
    return (
        ("run",)
        + tuple(f"{p} s" for p in phases)
        + ("stop s",)
        + tuple(f"{name} MiB" for name in processes)
    )


def peak_rss_mib(pid: int) -> float:
    """VmHWM (peak resident set size) of ``pid`` in MiB; NaN when unreadable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def measure_once(run: int, node: bool) -> tuple[str, ...]:
    with tempfile.TemporaryDirectory(prefix="meshguard-bench-") as tmp:
        control_plane = LocalControlPlane(Path(tmp) / "testbed", node=node).start()
        peaks = {name: peak_rss_mib(pid) for name, pid in control_plane.pids().items()}
        stopping = time.monotonic()
        control_plane.stop()
        stop_seconds = time.monotonic() - stopping
    timings = control_plane.timings
    phases = ("etcd", "apiserver") + (("images", "node") if node else ()) + ("crds",)
    return (
        str(run),
        *(f"{timings[phase]:.2f}" for phase in phases),
        f"{stop_seconds:.2f}",
        *(
            f"{peaks.get(name, float('nan')):.0f}"
            for name in PROCESSES + (NODE_PROCESSES if node else ())
        ),
    )


def print_table(rows: list[tuple[str, ...]], node: bool) -> None:
    cols = columns(node)
    widths = [max(len(col), *(len(row[i]) for row in rows)) for i, col in enumerate(cols)]
    for row in [cols, *rows]:
        print("  ".join(cell.rjust(width) for cell, width in zip(row, widths)))


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", maxsplit=1)[0])
    parser.add_argument("-n", "--runs", type=int, default=3, help="start/stop cycles (3)")
    parser.add_argument("--node", action="store_true", help="with the node (needs root)")
    args = parser.parse_args()
    rows = [measure_once(run, args.node) for run in range(1, args.runs + 1)]
    print_table(rows, args.node)
    return 0


if __name__ == "__main__":
    sys.exit(main())
