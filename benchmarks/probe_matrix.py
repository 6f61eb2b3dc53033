"""50 probes against the real Envoy gateway fixture: one parallel batch vs one at a time.

Run: .venv/bin/python benchmarks/probe_matrix.py [--probes 50] [--repeat 3]
Prints wall times (best of --repeat) and the ratio; asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / ".venv" / "collections"))

from envoy_gateway import EnvoyGateway  # noqa: E402

from ansible_collections.meshguard.egress.plugins.module_utils._probe import (  # noqa: E402
    Probe,
    run_batch,
    run_script_locally,
)

MIX = (
    ("allowed", "allowed"),
    ("denied", "denied"),
    ("blocked_http", "blocked"),
    ("allowed_tls", "allowed"),
    ("blocked_https", "blocked"),
)


def probes(gw: EnvoyGateway, count: int) -> list[Probe]:
    urls = gw.urls()
    out = []
    for i in range(count):
        name, expect = MIX[i % len(MIX)]
        out.append(Probe(f"{name}-{i}", urls[name]["url"], expect, headers=urls[name]["headers"]))
    return out


def timed(fn) -> tuple[float, list]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--probes", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="mg-bench-"))
    gw = EnvoyGateway(workdir)
    try:
        gw.start()
        batch = probes(gw, args.probes)
        parallel, serial = [], []
        for _round in range(args.repeat):
            seconds, verdicts = timed(lambda: run_batch(batch, run_script_locally))
            wrong = [(p.name, v.detail) for v, p in zip(verdicts, batch) if v.outcome != p.expect]
            if wrong:
                print(f"misclassified in the parallel batch: {wrong}")
            parallel.append(seconds)
            seconds, _verdicts = timed(lambda: [run_batch([p], run_script_locally) for p in batch])
            serial.append(seconds)
        best_parallel, best_serial = min(parallel), min(serial)
        mix = ", ".join(name for name, _expect in MIX)
        print(f"probes: {len(batch)} (mix: {mix}), best of {args.repeat}")
        print(f"parallel batch (one script): {best_parallel:.3f} s")
        print(f"one after another:           {best_serial:.3f} s")
        print(f"ratio serial/parallel:       {best_serial / best_parallel:.1f}x")
    finally:
        gw.close()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
