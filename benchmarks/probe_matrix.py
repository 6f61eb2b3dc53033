"""50 probes against the real Envoy gateway fixture: one parallel batch vs one at a time.

Run: .venv/bin/python benchmarks/probe_matrix.py [--probes 50] [--repeat 3] [--upstream-delay-ms 0]
Prints wall times (best of --repeat) and the ratio; asserts nothing about speed.

On loopback an answer takes well under a millisecond, so process start-up dominates both
figures. ``--upstream-delay-ms N`` makes the fixture's upstreams (httpbin.org and the TLS
origination target) wait N ms before each answer, as a real external host far away would.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / ".venv" / "collections"))

from envoy_gateway import EnvoyGateway, Upstream  # noqa: E402

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


@dataclass
class MatrixFigures:
    probes: int
    upstream_delay_ms: int
    parallel_s: float
    serial_s: float
    misclassified: list[tuple[str, str]]

    @property
    def ratio(self) -> float:
        return self.serial_s / self.parallel_s


def probes(gw: EnvoyGateway, count: int) -> list[Probe]:
    urls = gw.urls()
    out = []
    for i in range(count):
        name, expect = MIX[i % len(MIX)]
        out.append(Probe(f"{name}-{i}", urls[name]["url"], expect, headers=urls[name]["headers"]))
    return out


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def delay_answers(upstream: Upstream, delay_ms: int) -> None:
    """Make ``upstream`` wait ``delay_ms`` before each answer (per request, in its thread)."""
    if delay_ms <= 0:
        return
    base = upstream.server.RequestHandlerClass

    class Delayed(base):  # type: ignore[misc, valid-type]
        def handle_one_request(self) -> None:
            time.sleep(delay_ms / 1000)
            super().handle_one_request()

    upstream.server.RequestHandlerClass = Delayed


def measure(count: int = 50, repeat: int = 3, upstream_delay_ms: int = 0) -> MatrixFigures:
    """Best-of-``repeat`` wall times of the parallel batch and of the probes one by one."""
    workdir = Path(tempfile.mkdtemp(prefix="mg-bench-"))
    gw = EnvoyGateway(workdir)
    try:
        delay_answers(gw.upstream, upstream_delay_ms)
        delay_answers(gw.tls_upstream, upstream_delay_ms)
        gw.start()
        batch = probes(gw, count)
        parallel, serial, wrong = [], [], []
        for _round in range(repeat):
            seconds, verdicts = timed(lambda: run_batch(batch, run_script_locally))
            wrong += [(p.name, v.detail) for v, p in zip(verdicts, batch) if v.outcome != p.expect]
            parallel.append(seconds)
            seconds, _verdicts = timed(lambda: [run_batch([p], run_script_locally) for p in batch])
            serial.append(seconds)
        return MatrixFigures(count, upstream_delay_ms, min(parallel), min(serial), wrong)
    finally:
        gw.close()
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--probes", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--upstream-delay-ms", type=int, default=0)
    args = parser.parse_args()
    figures = measure(args.probes, args.repeat, args.upstream_delay_ms)
    if figures.misclassified:
        print(f"misclassified in the parallel batch: {figures.misclassified}")
    mix = ", ".join(name for name, _expect in MIX)
    print(f"probes: {figures.probes} (mix: {mix}), best of {args.repeat}")
    print(f"upstream delay per answer:   {figures.upstream_delay_ms} ms")
    print(f"parallel batch (one script): {figures.parallel_s:.3f} s")
    print(f"one after another:           {figures.serial_s:.3f} s")
    print(f"ratio serial/parallel:       {figures.ratio:.1f}x")


if __name__ == "__main__":
    main()
