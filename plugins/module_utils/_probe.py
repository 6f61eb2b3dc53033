# Copyright: meshguard.egress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Probe engine: one POSIX sh script per source runs a batch of curl probes in parallel.

The same script runs on the controller (``subprocess``) or inside a pod (Kubernetes exec),
prints one delimited record per probe, and :func:`parse_records` reads them back.
:func:`classify` turns a record into an outcome (``allowed``, ``denied``, ``blocked``,
``unreachable`` or ``error``) and :func:`run_until_held` retries, with backoff, only the
probes whose expectation does not hold yet, until all hold or the deadline passes.

A probe with ``not_proven`` (a reason) runs once and is never retried: its outcome is
reported, but it neither holds nor fails (for example a bypass probe on a cluster that does
not enforce NetworkPolicies).
"""

from __future__ import annotations

import re
import secrets
import shlex
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

OUTCOMES = ("allowed", "denied", "blocked", "unreachable")
ERROR = "error"
NOT_RUN = "not_run"  # the outcome of a not-proven probe that could not be sent at all
RBAC_DENIED_BODY = "RBAC: access denied"
ENVOY_HEADERS = ("server", "x-envoy-upstream-service-time")
REPORTED_HEADERS = ENVOY_HEADERS + ("content-type", "x-envoy-decorator-operation")
BODY_EXCERPT_BYTES = 512

CURL_COULD_NOT_CONNECT = 7
CURL_TIMEOUT = 28
CURL_TLS_FAILURES = (35, 56)
CURL_MISSING_RC = 127

CONTROLLER = "controller"


class ProbeError(Exception):
    """A probe specification is invalid."""


@dataclass(frozen=True)
class Probe:
    """One request from one source, and what it is expected to give."""

    name: str
    url: str
    expect: str
    source_key: str = CONTROLLER
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    expected_status: tuple[int, ...] = ()
    require_envoy: bool = True
    timeout: float = 5.0
    connect_timeout: float = 3.0
    insecure: bool = False
    connect_to: tuple[str, ...] = ()
    not_proven: str | None = None  # why its outcome proves nothing: run once, never held

    def status_expected(self, status: int) -> bool:
        if self.expected_status:
            return status in self.expected_status
        return 200 <= status < 300


@dataclass
class Record:
    """What one curl run printed, parsed."""

    exit_code: int
    status: int | None = None
    time_total: float = 0.0
    time_connect: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""


@dataclass
class Verdict:
    outcome: str
    detail: str
    record: Record | None = None


@dataclass
class ScriptResult:
    """What running a probe script gave: its output, or why it could not run."""

    stdout: str = ""
    stderr: str = ""
    rc: int | None = 0
    error: str | None = None


Runner = Callable[[str, float], ScriptResult]


# --------------------------------------------------------------------------- script


def _format_seconds(value: float) -> str:
    return f"{value:g}"


def curl_command(probe: Probe, curl: str = "curl") -> list[str]:
    """The curl argv for one probe (output files are appended by the script)."""
    argv = [curl, "-sS", "--connect-timeout", _format_seconds(probe.connect_timeout)]
    argv += ["-m", _format_seconds(probe.timeout)]
    method = probe.method.upper()
    if method == "HEAD":
        argv.append("-I")
    elif method != "GET" or probe.body is not None:
        argv += ["-X", method]
    for name, value in sorted(probe.headers.items()):
        argv += ["-H", f"{name}: {value}"]
    if probe.body is not None:
        argv += ["--data-binary", probe.body]
    if probe.insecure:
        argv.append("-k")
    for target in probe.connect_to:
        argv += ["--connect-to", target]
    argv.append(probe.url)
    return argv


def _probe_lines(index: int, probe: Probe, curl: str) -> str:
    argv = " ".join(shlex.quote(arg) for arg in curl_command(probe, curl))
    files = f'-o "$d/b{index}" -D "$d/h{index}"'
    write_out = "'%{http_code} %{time_total} %{time_connect}'"
    return (
        f'( {argv} {files} -w {write_out} >"$d/w{index}" 2>"$d/e{index}"; '
        f'echo $? >"$d/x{index}" ) &'
    )


def _report_lines(index: int) -> str:
    return (
        f'printf \'%s BEGIN {index}\\n%s EXIT \' "$M" "$M"; cat "$d/x{index}"; '
        f'printf \'%s WRITE \' "$M"; cat "$d/w{index}" 2>/dev/null; echo; '
        f'printf \'%s STDERR\\n\' "$M"; dd if="$d/e{index}" bs=256 count=1 2>/dev/null; '
        f'printf \'\\n%s HEADERS\\n\' "$M"; cat "$d/h{index}" 2>/dev/null; '
        f"printf '\\n%s BODY\\n' \"$M\"; "
        f'dd if="$d/b{index}" bs={BODY_EXCERPT_BYTES} count=1 2>/dev/null; '
        f"printf '\\n%s END {index}\\n' \"$M\""
    )


def build_script(probes: list[Probe], marker: str, curl: str = "curl") -> str:
    """One POSIX sh script that runs every probe in parallel and prints one record each."""
    lines = [
        f"M={shlex.quote(marker)}",
        f'command -v {shlex.quote(curl)} >/dev/null 2>&1 || {{ echo "$M NOCURL"; exit 127; }}',
        'd=$(mktemp -d 2>/dev/null || { mkdir -p "/tmp/mgprobe.$$" && echo "/tmp/mgprobe.$$"; })',
        "trap 'rm -rf \"$d\"' EXIT",
    ]
    lines += [_probe_lines(index, probe, curl) for index, probe in enumerate(probes)]
    lines.append("wait")
    lines += [_report_lines(index) for index in range(len(probes))]
    return "\n".join(lines) + "\n"


def new_marker() -> str:
    return "@@MG-" + secrets.token_hex(6) + "@@"


# --------------------------------------------------------------------------- parsing


def _last_header_block(raw: str) -> dict[str, str]:
    blocks = [block for block in raw.replace("\r\n", "\n").split("\n\n") if block.strip()]
    headers: dict[str, str] = {}
    if not blocks:
        return headers
    for line in blocks[-1].split("\n")[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return headers


def _parse_write_out(text: str) -> tuple[int | None, float, float]:
    parts = text.split()
    if len(parts) < 3:
        return None, 0.0, 0.0
    status = int(parts[0]) if parts[0].isdigit() and int(parts[0]) > 0 else None
    return status, float(parts[1]), float(parts[2])


def _sections(chunk: str, marker: str) -> dict[str, str]:
    """Split one record into its sections: ``{"EXIT": "0", "BODY": "...", ...}``."""
    sections: dict[str, str] = {}
    for piece in re.split(rf"(?:^|\n){re.escape(marker)} ", chunk):
        name, _sep, rest = piece.partition(" " if piece[:4] in ("BEGI", "EXIT", "WRIT") else "\n")
        if name:
            sections[name.strip()] = rest
    return sections


def _parse_one(chunk: str, marker: str) -> Record:
    sections = _sections(chunk, marker)
    exit_text = sections["EXIT"].strip()
    status, total, connect = _parse_write_out(sections["WRITE"])
    return Record(
        exit_code=int(exit_text) if exit_text.lstrip("-").isdigit() else -1,
        status=status,
        time_total=total,
        time_connect=connect,
        headers=_last_header_block(sections.get("HEADERS", "")),
        body=sections.get("BODY", ""),
    )


def parse_records(stdout: str, marker: str, count: int) -> dict[int, Record]:
    """Records by probe index; probes missing from the output are absent."""
    records: dict[int, Record] = {}
    for index in range(count):
        begin = f"{marker} BEGIN {index}\n"
        end = f"\n{marker} END {index}\n"
        if begin not in stdout or end not in stdout:
            continue
        chunk = stdout[stdout.index(begin) : stdout.index(end) + len(end)]
        try:
            records[index] = _parse_one(chunk, marker)
        except (ValueError, IndexError, KeyError):  # a malformed record: as if missing
            continue
    return records


def stderr_excerpt(stdout: str, marker: str, index: int) -> str:
    begin = f"{marker} BEGIN {index}\n"
    end = f"\n{marker} END {index}\n"
    if begin not in stdout or end not in stdout:
        return ""
    chunk = stdout[stdout.index(begin) : stdout.index(end)]
    return _sections(chunk, marker).get("STDERR", "").strip()


# --------------------------------------------------------------------------- classification


def has_envoy_evidence(headers: dict[str, str]) -> bool:
    return headers.get("server", "").lower() == "envoy" or (
        "x-envoy-upstream-service-time" in headers
    )


def _excerpt(text: str, limit: int = 120) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _classify_transport_failure(probe: Probe, record: Record) -> Verdict:
    code = record.exit_code
    if code == CURL_COULD_NOT_CONNECT:
        return Verdict("unreachable", "connection refused (curl exit 7)", record)
    if code == CURL_TIMEOUT and record.time_connect == 0:
        return Verdict("unreachable", "connect timeout (curl exit 28)", record)
    if code == CURL_TIMEOUT:
        return Verdict(ERROR, "timed out after connecting (curl exit 28)", record)
    if code in CURL_TLS_FAILURES and probe.url.lower().startswith("https://"):
        return Verdict("blocked", f"TLS connection reset (curl exit {code})", record)
    return Verdict(ERROR, f"curl exit {code}", record)


def _classify_response(probe: Probe, record: Record) -> Verdict:
    status = record.status or 0
    envoy = has_envoy_evidence(record.headers)
    body = _excerpt(record.body)
    if status == 403 and record.body.strip().startswith(RBAC_DENIED_BODY):
        return Verdict("denied", "403 RBAC: access denied", record)
    if status == 502 and (envoy or not probe.require_envoy):
        return Verdict("blocked", "502 from Envoy (no route to an unregistered host)", record)
    if probe.status_expected(status):
        if envoy or not probe.require_envoy:
            return Verdict("allowed", f"{status} via Envoy" if envoy else str(status), record)
        return Verdict(ERROR, f"{status} without Envoy evidence (server/x-envoy-*)", record)
    if status == 403:
        return Verdict(ERROR, f"403 from the upstream, not Envoy RBAC: {body!r}", record)
    return Verdict(ERROR, f"unexpected status {status}: {body!r}", record)


def classify(probe: Probe, record: Record) -> Verdict:
    """The outcome a curl record shows for a probe."""
    if record.exit_code != 0 or record.status is None:
        return _classify_transport_failure(probe, record)
    return _classify_response(probe, record)


# --------------------------------------------------------------------------- running


def run_script_locally(script: str, timeout: float) -> ScriptResult:
    """Run a probe script with the controller's /bin/sh."""
    try:
        done = subprocess.run(
            ["/bin/sh", "-c", script], capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return ScriptResult(rc=None, error=f"probe script timed out after {timeout:g}s")
    except OSError as exc:
        return ScriptResult(rc=None, error=f"cannot run /bin/sh: {exc}")
    return ScriptResult(stdout=done.stdout, stderr=done.stderr, rc=done.returncode)


def error_verdicts(probes: Iterable[Probe], detail: str) -> list[Verdict]:
    """The same error verdict for every probe (when their script could not run)."""
    return [Verdict(ERROR, detail) for _probe in probes]


def script_timeout(probes: Iterable[Probe]) -> float:
    return max((p.timeout + p.connect_timeout for p in probes), default=1.0) + 15.0


def run_batch(probes: list[Probe], runner: Runner, curl: str = "curl") -> list[Verdict]:
    """Run probes (of one source) in one script; one verdict per probe, in order."""
    marker = new_marker()
    result = runner(build_script(probes, marker, curl), script_timeout(probes))
    if result.error:
        return error_verdicts(probes, result.error)
    if f"{marker} NOCURL" in result.stdout or (result.rc == CURL_MISSING_RC and not result.stdout):
        return error_verdicts(probes, f"{curl} not found in the probe source")
    records = parse_records(result.stdout, marker, len(probes))
    verdicts = []
    for index, probe in enumerate(probes):
        record = records.get(index)
        if record is None:
            cause = _excerpt(result.stderr) or f"script exit {result.rc}"
            verdicts.append(Verdict(ERROR, f"no result from the probe script: {cause}"))
            continue
        verdict = classify(probe, record)
        if verdict.outcome == ERROR and record.exit_code not in (0, CURL_TIMEOUT):
            err = stderr_excerpt(result.stdout, marker, index)
            verdict.detail += f": {_excerpt(err)}" if err else ""
        verdicts.append(verdict)
    return verdicts


@dataclass
class ProbeState:
    probe: Probe
    attempts: int = 0
    held: bool = False
    seconds_to_hold: float | None = None
    verdict: Verdict | None = None

    @property
    def done(self) -> bool:
        """Nothing more to run: it held, or it is not proven and ran (or could not run)."""
        return self.held or (self.probe.not_proven is not None and self.verdict is not None)

    def as_result(self) -> dict[str, Any]:
        verdict = self.verdict or Verdict(ERROR, "not run")
        record = verdict.record
        headers = record.headers if record else {}
        return {
            "name": self.probe.name,
            "source": self.probe.source_key,
            "url": self.probe.url,
            "method": self.probe.method.upper(),
            "expect": self.probe.expect,
            "outcome": verdict.outcome,
            "held": self.held,
            "detail": verdict.detail,
            "status": record.status if record else None,
            "curl_exit": record.exit_code if record else None,
            "headers": {k: headers[k] for k in REPORTED_HEADERS if k in headers},
            "body_excerpt": _excerpt(record.body, 200) if record else "",
            "time": round(record.time_total, 4) if record else None,
            "attempts": self.attempts,
            "seconds_to_hold": self.seconds_to_hold,
            "not_proven": self.probe.not_proven,
        }


BatchRunner = Callable[[str, list[Probe]], list[Verdict]]


def _group_by_source(states: list[ProbeState]) -> dict[str, list[ProbeState]]:
    groups: dict[str, list[ProbeState]] = {}
    for state in states:
        groups.setdefault(state.probe.source_key, []).append(state)
    return groups


def _run_round(pending: list[ProbeState], run_source: BatchRunner, started: float) -> None:
    for source_key, states in _group_by_source(pending).items():
        verdicts = run_source(source_key, [s.probe for s in states])
        now = time.monotonic()
        for state, verdict in zip(states, verdicts):
            state.verdict = verdict
            if verdict.outcome == NOT_RUN:
                continue  # never sent
            state.attempts += 1
            if verdict.outcome == state.probe.expect and state.probe.not_proven is None:
                state.held = True
                state.seconds_to_hold = round(now - started, 3)


def run_until_held(
    probes: list[Probe],
    run_source: BatchRunner,
    deadline: float,
    delay: float = 1.0,
    max_delay: float = 8.0,
    sleep: Callable[[float], None] = time.sleep,
) -> list[ProbeState]:
    """Re-run only the probes that do not hold yet, with exponential backoff (a not-proven
    probe runs once)."""
    states = [ProbeState(probe) for probe in probes]
    started = time.monotonic()
    while True:
        pending = [s for s in states if not s.done]
        _run_round(pending, run_source, started)
        remaining = deadline - (time.monotonic() - started)
        if all(s.done for s in states) or remaining <= 0:
            return states
        sleep(min(delay, remaining))
        delay = min(delay * 2, max_delay)


# --------------------------------------------------------------------------- reporting


def mismatch_table(results: list[dict[str, Any]]) -> str:
    """A fixed-width table of the probes whose expectation did not hold (not-proven probes
    are no mismatch)."""
    rows = [("probe", "source", "expected", "got", "status", "attempts", "detail")]
    for r in results:
        if not r["held"] and not r.get("not_proven"):
            status = "-" if r["status"] is None else str(r["status"])
            rows.append(
                (
                    r["name"],
                    r["source"],
                    r["expect"],
                    r["outcome"],
                    status,
                    str(r["attempts"]),
                    r["detail"],
                )
            )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = []
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths)]
        lines.append(" | ".join(cells + [row[-1]]))
    lines.insert(1, "-+-".join("-" * w for w in widths) + "-+-" + "-" * 6)
    return "\n".join(lines)


def summarize(results: list[dict[str, Any]]) -> dict[str, int]:
    """Counts by result: ``failed`` is neither held nor not proven."""
    summary = {"total": len(results), "held": sum(1 for r in results if r["held"])}
    summary["not_proven"] = sum(1 for r in results if r.get("not_proven"))
    summary["failed"] = summary["total"] - summary["held"] - summary["not_proven"]
    for outcome in OUTCOMES + (ERROR,):
        summary[outcome] = sum(1 for r in results if r["outcome"] == outcome)
    return summary
