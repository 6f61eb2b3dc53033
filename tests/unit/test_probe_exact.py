"""Exact results of the probe engine, one factor at a time (what mutation testing asks for).

The probe script runs for real under /bin/sh with a stand-in ``curl`` (a small Python
program that behaves like curl for the options the script passes: it writes the headers
file, the body file, the ``-w`` line, a curl-style stderr line, and exits with the code it
is told), so the shell plumbing -- quoting, temporary files, the record format -- is checked
end to end without a network.
"""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / ".venv" / "collections"))
from ansible_collections.meshguard.egress.plugins.module_utils import _probe as p

M = "@@MG-test@@"

FAKE_CURL = r'''#!{python}
"""Stand-in curl: the URL's path says what to answer: /<status>/<exit code>[/<stderr>]."""
import json, os, sys
argv = sys.argv[1:]
if "--version" in argv:
    sys.exit(0)
with open(os.environ["FAKE_CURL_LOG"], "a") as log:
    log.write(json.dumps(argv) + "\n")
def opt(flag):
    return argv[argv.index(flag) + 1] if flag in argv else None
url = next(a for a in argv if a.startswith("http"))
parts = url.split("/", 3)[3].split("/")
status, code = int(parts[0]), int(parts[1])
message = parts[2] if len(parts) > 2 else ""
if status:
    with open(opt("-D"), "w") as h:
        h.write("HTTP/1.1 %d X\r\nserver: envoy\r\n" % status)
        h.write("x-envoy-upstream-service-time: 4\r\n\r\n")
    with open(opt("-o"), "w") as b:
        b.write("body of %s\nsecond line" % url)
sys.stdout.write("%03d 0.125 0.0625" % status)
if message:
    sys.stderr.write("curl: (%d) %s\n" % (code, message.replace("_", " ")))
sys.exit(code)
'''


@pytest.fixture
def fake_curl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    curl = tmp_path / "bin" / "curl"
    curl.parent.mkdir()
    curl.write_text(FAKE_CURL.replace("{python}", sys.executable))
    curl.chmod(curl.stat().st_mode | stat.S_IXUSR)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    log = tmp_path / "curl.log"
    monkeypatch.setenv("FAKE_CURL_LOG", str(log))
    monkeypatch.setenv("TMPDIR", str(tmp))
    return {"curl": curl, "log": log, "tmp": tmp}


def calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def probe(name: str = "t", url: str = "http://h/", expect: str = "allowed", **kw: Any) -> p.Probe:
    return p.Probe(name=name, url=url, expect=expect, **kw)


# --------------------------------------------------------------------------- curl argv


def test_curl_command_for_a_plain_get() -> None:
    assert p.curl_command(probe()) == [
        "curl",
        "-sS",
        "--connect-timeout",
        "3",
        "-m",
        "5",
        "http://h/",
    ]


def test_curl_command_with_every_option() -> None:
    argv = p.curl_command(
        probe(
            method="post",
            headers={"b": "2", "a": "1"},
            body="x",
            insecure=True,
            connect_to=("h:80:127.0.0.1:8080", "h:443:127.0.0.1:8443"),
            timeout=2.5,
            connect_timeout=0.5,
        ),
        curl="/opt/curl",
    )
    assert argv == [
        "/opt/curl",
        "-sS",
        "--connect-timeout",
        "0.5",
        "-m",
        "2.5",
        "-X",
        "POST",
        "-H",
        "a: 1",
        "-H",
        "b: 2",
        "--data-binary",
        "x",
        "-k",
        "--connect-to",
        "h:80:127.0.0.1:8080",
        "--connect-to",
        "h:443:127.0.0.1:8443",
        "http://h/",
    ]


@pytest.mark.parametrize(
    ("method", "body", "extra"),
    [
        ("GET", None, []),
        ("get", None, []),
        ("GET", "", ["-X", "GET", "--data-binary", ""]),
        ("HEAD", None, ["-I"]),
        ("DELETE", None, ["-X", "DELETE"]),
    ],
)
def test_curl_method_options(method: str, body: str | None, extra: list[str]) -> None:
    argv = p.curl_command(probe(method=method, body=body))
    assert argv[6:-1] == extra


# --------------------------------------------------------------------------- the script, run


def test_script_runs_under_sh_and_every_record_is_read(fake_curl: dict[str, Path]) -> None:
    probes = [
        probe("a", "http://h/200/0", headers={"x-q": 'it\'s "quoted" $HOME'}),
        probe("b", "http://h/0/7/Failed_to_connect"),
        probe("c", "http://h/403/0", expect="denied", method="POST", body="a b"),
    ]
    marker = p.new_marker()
    script = p.build_script(probes, marker, str(fake_curl["curl"]))
    result = p.run_script_locally(script, 30)
    assert result.rc == 0 and result.error is None, result
    records = p.parse_records(result.stdout, marker, 3)
    assert sorted(records) == [0, 1, 2]
    assert (records[0].exit_code, records[0].status) == (0, 200)
    assert (records[0].time_total, records[0].time_connect) == (0.125, 0.0625)
    assert records[0].headers == {"server": "envoy", "x-envoy-upstream-service-time": "4"}
    assert records[0].body == "body of http://h/200/0\nsecond line"
    assert (records[1].exit_code, records[1].status, records[1].headers) == (7, None, {})
    assert p.stderr_excerpt(result.stdout, marker, 1) == "curl: (7) Failed to connect"
    assert p.stderr_excerpt(result.stdout, marker, 0) == ""
    assert records[2].status == 403
    argvs = {argv[-7]: argv for argv in calls(fake_curl["log"])}
    assert argvs["http://h/200/0"][argvs["http://h/200/0"].index("-H") + 1] == (
        'x-q: it\'s "quoted" $HOME'
    )
    assert argvs["http://h/403/0"][5:7] == ["-X", "POST"]
    assert argvs["http://h/403/0"][argvs["http://h/403/0"].index("--data-binary") + 1] == "a b"
    for index, argv in enumerate(
        argvs[u] for u in ("http://h/200/0", "http://h/0/7/Failed_to_connect")
    ):
        assert argv[argv.index("-w") + 1] == "%{http_code} %{time_total} %{time_connect}"
        assert argv[argv.index("-o") + 1].startswith(str(fake_curl["tmp"]) + "/")
        assert argv[argv.index("-o") + 1].endswith(f"/b{index}")
        assert argv[argv.index("-D") + 1].endswith(f"/h{index}")
    assert list(fake_curl["tmp"].iterdir()) == [], "the script removes its temporary directory"


def test_script_reports_a_missing_curl(fake_curl: dict[str, Path]) -> None:
    marker = p.new_marker()
    missing = str(fake_curl["curl"].parent / "no-such-curl")
    result = p.run_script_locally(p.build_script([probe()], marker, missing), 30)
    assert result.rc == 127 and result.stdout == f"{marker} NOCURL\n"


def test_curl_is_the_default_command() -> None:
    assert "command -v curl >/dev/null" in p.build_script([probe()], "@@M@@")
    assert p.curl_command(probe())[0] == "curl"
    seen: list = []
    p.run_batch([probe()], runner_giving(p.ScriptResult(stdout=""), seen))
    assert "command -v curl >/dev/null" in seen[0][0]


def test_script_text_ends_with_a_newline_and_starts_with_the_marker() -> None:
    script = p.build_script([probe()], "@@M@@", "/c url")
    lines = script.split("\n")
    assert lines[0] == "M=@@M@@" and script.endswith("\nwait\n" + lines[-2] + "\n")
    assert "command -v '/c url' >/dev/null 2>&1" in lines[1]


def test_run_batch_uses_the_curl_it_is_given(fake_curl: dict[str, Path]) -> None:
    verdicts = p.run_batch(
        [probe("a", "http://h/200/0"), probe("b", "http://h/0/6/Could_not_resolve_host")],
        p.run_script_locally,
        curl=str(fake_curl["curl"]),
    )
    assert [(v.outcome, v.detail) for v in verdicts] == [
        ("allowed", "200 via Envoy"),
        ("error", "curl exit 6: curl: (6) Could not resolve host"),
    ]


def test_new_marker_is_random_and_shaped() -> None:
    first, second = p.new_marker(), p.new_marker()
    assert first != second
    assert first.startswith("@@MG-") and first.endswith("@@") and len(first) == 19
    int(first[5:17], 16)


# --------------------------------------------------------------------------- parsing


def chunk(index: int, sections: dict[str, str]) -> str:
    body = "".join(
        f"{M} {name} {text}" if name in ("EXIT", "WRITE") else f"{M} {name}\n{text}\n"
        for name, text in sections.items()
    )
    return f"{M} BEGIN {index}\n{body}{M} END {index}\n"


@pytest.mark.parametrize(
    ("write", "expected"),
    [
        ("200 0.5 0.25", (200, 0.5, 0.25)),
        ("000 1.5 0", (None, 1.5, 0.0)),
        ("001 1 2", (1, 1.0, 2.0)),
        ("200 0.5", (None, 0.0, 0.0)),
        ("", (None, 0.0, 0.0)),
    ],
)
def test_write_out_line(write: str, expected: tuple) -> None:
    records = p.parse_records(chunk(0, {"EXIT": "0\n", "WRITE": write + "\n"}), M, 1)
    record = records[0]
    assert (record.status, record.time_total, record.time_connect) == expected


@pytest.mark.parametrize(
    ("text", "code"), [("7\n", 7), (" 28 \n", 28), ("-3\n", -3), ("x\n", -1), ("X7\n", -1)]
)
def test_exit_code(text: str, code: int) -> None:
    assert p.parse_records(chunk(0, {"EXIT": text, "WRITE": "0 0 0\n"}), M, 1)[0].exit_code == code


def test_record_without_headers_or_body_sections() -> None:
    record = p.parse_records(chunk(0, {"EXIT": "0\n", "WRITE": "200 0 0\n"}), M, 1)[0]
    assert record.headers == {} and record.body == ""


def test_record_without_a_write_section_is_dropped_and_later_ones_kept() -> None:
    out = chunk(0, {"EXIT": "0\n"}) + chunk(1, {"EXIT": "0\n", "WRITE": "204 0 0\n"})
    records = p.parse_records(out, M, 2)
    assert list(records) == [1] and records[1].status == 204


def test_missing_records_do_not_hide_later_ones() -> None:
    out = chunk(1, {"EXIT": "0\n", "WRITE": "200 0 0\n"}) + f"{M} BEGIN 2\n"
    out += chunk(3, {"EXIT": "0\n", "WRITE": "201 0 0\n"})
    assert {i: r.status for i, r in p.parse_records(out, M, 4).items()} == {1: 200, 3: 201}


def test_records_are_cut_at_their_own_end_marker() -> None:
    out = chunk(0, {"EXIT": "0\n", "WRITE": "200 0 0\n", "BODY": "zero"})
    out += chunk(1, {"EXIT": "0\n", "WRITE": "201 0 0\n", "BODY": "one"})
    out += chunk(0, {"EXIT": "0\n", "WRITE": "500 0 0\n", "BODY": "again"})
    records = p.parse_records(out, M, 2)
    assert (records[0].status, records[0].body) == (200, "zero")
    assert (records[1].status, records[1].body) == (201, "one")


def test_header_values_keep_colons_and_only_the_last_block_counts() -> None:
    headers = (
        "HTTP/1.1 301 Moved\r\nlocation: http://a:1/\r\nx-first: 1\r\n\r\n"
        "HTTP/1.1 200 OK\r\nServer: Envoy\r\nlocation: http://b:2/x\r\nbad line\r\n\r\n"
    )
    out = chunk(0, {"EXIT": "0\n", "WRITE": "200 0 0\n", "HEADERS": headers})
    assert p.parse_records(out, M, 1)[0].headers == {"server": "Envoy", "location": "http://b:2/x"}
    unix = headers.replace("\r\n", "\n")
    out = chunk(0, {"EXIT": "0\n", "WRITE": "200 0 0\n", "HEADERS": unix})
    assert p.parse_records(out, M, 1)[0].headers == {"server": "Envoy", "location": "http://b:2/x"}


def test_stderr_excerpt_of_a_missing_record_is_empty() -> None:
    out = chunk(0, {"EXIT": "6\n", "WRITE": "0 0 0\n", "STDERR": "  curl: (6) x  "})
    assert p.stderr_excerpt(out, M, 0) == "curl: (6) x"
    assert p.stderr_excerpt(out, M, 1) == ""
    assert p.stderr_excerpt(out.replace(f"{M} END 0\n", ""), M, 0) == ""
    assert p.stderr_excerpt(out.replace(f"{M} BEGIN 0\n", ""), M, 0) == ""
    no_stderr = chunk(0, {"EXIT": "6\n", "WRITE": "0 0 0\n"})
    assert p.stderr_excerpt(no_stderr, M, 0) == ""
    again = out + chunk(0, {"EXIT": "7\n", "WRITE": "0 0 0\n", "STDERR": "second"})
    assert p.stderr_excerpt(again, M, 0) == "curl: (6) x"  # the first record 0 counts
    between = chunk(1, {"EXIT": "0\n", "WRITE": "0 0 0\n", "STDERR": "one"})
    assert p.stderr_excerpt(out + between + out, M, 0) == "curl: (6) x"


# --------------------------------------------------------------------------- classification

ENVOY_BOTH = {"server": "envoy", "x-envoy-upstream-service-time": "3"}


@pytest.mark.parametrize(
    ("headers", "evidence"),
    [
        ({"server": "envoy"}, True),
        ({"server": "Envoy"}, True),
        ({"x-envoy-upstream-service-time": "0"}, True),
        ({"server": "nginx", "x-envoy-upstream-service-time": "1"}, True),
        ({"server": "envoy-like"}, False),
        ({"server": "nginx"}, False),
        ({"x-envoy-decorator-operation": "x"}, False),
        ({}, False),
    ],
)
def test_each_evidence_header_alone(headers: dict[str, str], evidence: bool) -> None:
    assert p.has_envoy_evidence(headers) is evidence
    record = p.Record(exit_code=0, status=200, headers=headers)
    assert p.classify(probe(), record).outcome == ("allowed" if evidence else "error")


def record(
    status: int | None,
    exit_code: int = 0,
    headers: dict | None = None,
    body: str = "",
    connect: float = 0.0,
) -> p.Record:
    return p.Record(
        exit_code=exit_code,
        status=status,
        headers=ENVOY_BOTH if headers is None else headers,
        body=body,
        time_connect=connect,
    )


@pytest.mark.parametrize(
    ("kw", "rec", "outcome", "detail"),
    [
        ({}, record(200), "allowed", "200 via Envoy"),
        ({}, record(204), "allowed", "204 via Envoy"),
        ({}, record(299), "allowed", "299 via Envoy"),
        ({}, record(199), "error", "unexpected status 199: ''"),
        ({}, record(300, body="x\n  y"), "error", "unexpected status 300: 'x y'"),
        ({"require_envoy": False}, record(200, headers={}), "allowed", "200"),
        ({}, record(200, headers={}), "error", "200 without Envoy evidence (server/x-envoy-*)"),
        ({"expected_status": (418,)}, record(418), "allowed", "418 via Envoy"),
        ({"expected_status": (418,)}, record(200), "error", "unexpected status 200: ''"),
        ({}, record(403, body="RBAC: access denied"), "denied", "403 RBAC: access denied"),
        (
            {},
            record(403, headers={}, body="  RBAC: access denied\n"),
            "denied",
            "403 RBAC: access denied",
        ),
        (
            {},
            record(403, body="rbac: access denied"),
            "error",
            "403 from the upstream, not Envoy RBAC: 'rbac: access denied'",
        ),
        ({}, record(404), "error", "unexpected status 404: ''"),
        (
            {},
            record(502),
            "blocked",
            "502 from Envoy (no route to an unregistered host)",
        ),
        ({}, record(502, headers={}), "error", "unexpected status 502: ''"),
        (
            {"require_envoy": False},
            record(502, headers={}),
            "blocked",
            "502 from Envoy (no route to an unregistered host)",
        ),
        (
            {"expected_status": (502,)},
            record(502),
            "blocked",
            "502 from Envoy (no route to an unregistered host)",
        ),
        ({}, record(None, 7), "unreachable", "connection refused (curl exit 7)"),
        ({}, record(None, 28), "unreachable", "connect timeout (curl exit 28)"),
        ({}, record(None, 28, connect=0.01), "error", "timed out after connecting (curl exit 28)"),
        ({"url": "https://h/"}, record(None, 35), "blocked", "TLS connection reset (curl exit 35)"),
        ({"url": "HTTPS://h/"}, record(None, 56), "blocked", "TLS connection reset (curl exit 56)"),
        ({"url": "http://h/"}, record(None, 35), "error", "curl exit 35"),
        ({}, record(None, 6), "error", "curl exit 6"),
        ({}, record(200, 52), "error", "curl exit 52"),
        ({}, record(None, 0), "error", "curl exit 0"),
    ],
)
def test_classify_exactly(kw: dict, rec: p.Record, outcome: str, detail: str) -> None:
    verdict = p.classify(probe(**kw), rec)
    assert (verdict.outcome, verdict.detail) == (outcome, detail)
    assert verdict.record is rec


def test_long_bodies_are_cut_to_the_excerpt_limit() -> None:
    exactly = "a" * 120
    verdict = p.classify(probe(), record(500, body=exactly))
    assert verdict.detail == f"unexpected status 500: {exactly!r}"
    longer = "b" * 121
    verdict = p.classify(probe(), record(500, body=longer))
    assert verdict.detail == f"unexpected status 500: {'b' * 117 + '...'!r}"


@pytest.mark.parametrize(
    ("expected_status", "status", "held"),
    [((), 199, False), ((), 200, True), ((), 299, True), ((), 300, False), ((201, 202), 202, True)],
)
def test_status_expected_boundaries(expected_status: tuple, status: int, held: bool) -> None:
    assert probe(expected_status=expected_status).status_expected(status) is held


# --------------------------------------------------------------------------- run_batch


def runner_giving(result: p.ScriptResult, seen: list | None = None):
    def run(script: str, timeout: float) -> p.ScriptResult:
        marker = script.split("\n", 1)[0].split("=", 1)[1].strip("'")
        if seen is not None:
            seen.append((script, timeout))
        return p.ScriptResult(
            stdout=result.stdout.replace(M, marker),
            stderr=result.stderr,
            rc=result.rc,
            error=result.error,
        )

    return run


def test_run_batch_timeout_is_the_slowest_probe_plus_margin() -> None:
    seen: list = []
    p.run_batch(
        [probe(timeout=2, connect_timeout=1), probe(timeout=4, connect_timeout=0.5)],
        runner_giving(p.ScriptResult(stdout=""), seen),
    )
    assert seen[0][1] == 19.5
    assert p.script_timeout([]) == 16.0


def test_run_batch_script_error_gives_every_probe_that_error() -> None:
    verdicts = p.run_batch(
        [probe("a"), probe("b")], runner_giving(p.ScriptResult(rc=None, error="boom"))
    )
    assert [(v.outcome, v.detail, v.record) for v in verdicts] == [("error", "boom", None)] * 2


@pytest.mark.parametrize(
    ("stdout", "rc", "missing"),
    [(f"{M} NOCURL\n", 127, True), ("", 127, True), ("garbage", 127, False), ("", 1, False)],
)
def test_run_batch_missing_curl(stdout: str, rc: int, missing: bool) -> None:
    verdicts = p.run_batch([probe()], runner_giving(p.ScriptResult(stdout=stdout, rc=rc)), "kurl")
    if missing:
        assert (verdicts[0].outcome, verdicts[0].detail) == (
            "error",
            "kurl not found in the probe source",
        )
    else:
        assert verdicts[0].detail.startswith("no result from the probe script: ")


def test_run_batch_without_a_record_names_stderr_or_the_exit_code() -> None:
    out = chunk(
        1,
        {
            "EXIT": "0\n",
            "WRITE": "200 0 0\n",
            "HEADERS": "HTTP/1.1 200 OK\r\nserver: envoy\r\n\r\n",
        },
    )
    result = p.ScriptResult(stdout=out, stderr="sh: 1:   oops\n", rc=2)
    verdicts = p.run_batch([probe("a"), probe("b")], runner_giving(result))
    assert (verdicts[0].outcome, verdicts[0].detail) == (
        "error",
        "no result from the probe script: sh: 1: oops",
    )
    assert verdicts[0].record is None
    assert (verdicts[1].outcome, verdicts[1].detail) == ("allowed", "200 via Envoy")
    verdicts = p.run_batch([probe("a")], runner_giving(p.ScriptResult(stdout="", rc=2)))
    assert verdicts[0].detail == "no result from the probe script: script exit 2"


@pytest.mark.parametrize(
    ("exit_code", "write", "detail"),
    [
        (6, "000 0 0", "curl exit 6: curl: (6) Could not resolve host: h"),
        (28, "000 3 0.1", "timed out after connecting (curl exit 28)"),
        (7, "000 0 0", "connection refused (curl exit 7)"),
        (0, "500 0 0", "unexpected status 500: ''"),
    ],
)
def test_curl_stderr_is_kept_in_error_details(exit_code: int, write: str, detail: str) -> None:
    out = chunk(
        0,
        {
            "EXIT": f"{exit_code}\n",
            "WRITE": write + "\n",
            "STDERR": "curl: (6)   Could not resolve host: h\n",
            "HEADERS": "HTTP/1.1 500 X\r\nserver: envoy\r\n\r\n" if exit_code == 0 else "",
        },
    )
    verdicts = p.run_batch([probe()], runner_giving(p.ScriptResult(stdout=out, rc=0)))
    assert verdicts[0].detail == detail


def test_error_without_stderr_keeps_its_detail() -> None:
    out = chunk(0, {"EXIT": "6\n", "WRITE": "000 0 0\n", "STDERR": ""})
    verdicts = p.run_batch([probe()], runner_giving(p.ScriptResult(stdout=out, rc=0)))
    assert verdicts[0].detail == "curl exit 6"


# --------------------------------------------------------------------------- run locally


def test_run_script_locally_returns_output_and_exit_code() -> None:
    result = p.run_script_locally("echo out; echo err >&2; exit 3", 30)
    assert (result.stdout, result.stderr, result.rc, result.error) == ("out\n", "err\n", 3, None)


def test_run_script_locally_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    def expire(*args: Any, **kwargs: Any) -> None:
        assert args[0] == ["/bin/sh", "-c", "s"] and kwargs["timeout"] == 2.5
        raise subprocess.TimeoutExpired(args[0], kwargs["timeout"])

    monkeypatch.setattr(p.subprocess, "run", expire)
    result = p.run_script_locally("s", 2.5)
    assert (result.rc, result.error, result.stdout) == (
        None,
        "probe script timed out after 2.5s",
        "",
    )


def test_run_script_locally_without_a_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(*args: Any, **kwargs: Any) -> None:
        raise FileNotFoundError(2, "No such file or directory")

    monkeypatch.setattr(p.subprocess, "run", missing)
    result = p.run_script_locally("s", 1)
    assert (result.rc, result.error) == (
        None,
        "cannot run /bin/sh: [Errno 2] No such file or directory",
    )


def test_a_script_that_outlives_its_timeout_is_stopped() -> None:
    result = p.run_script_locally("exec sleep 30", 0.2)
    assert (result.rc, result.error) == (None, "probe script timed out after 0.2s")


# --------------------------------------------------------------------------- retries


class Clock:
    """A monotonic clock that only moves when the code under test sleeps (or runs)."""

    def __init__(self, round_cost: float = 0.0) -> None:
        self.now, self.round_cost, self.sleeps = 100.0, round_cost, []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def never_holds(limit: int = 50):
    """A source whose probes never hold; a loop that does not stop fails, not hangs."""
    rounds: list[int] = []

    def run_source(key: str, batch: list[p.Probe]) -> list[p.Verdict]:
        rounds.append(len(batch))
        assert len(rounds) <= limit, "run_until_held did not stop at its deadline"
        return [p.Verdict("denied", "d") for _probe in batch]

    return run_source


def test_backoff_doubles_up_to_the_cap_and_stops_at_the_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock()
    monkeypatch.setattr(p.time, "monotonic", clock.monotonic)
    states = p.run_until_held(
        [probe("a")],
        never_holds(),
        deadline=30,
        delay=1,
        max_delay=8,
        sleep=clock.sleep,
    )
    # 1+2+4+8+8 = 23 s, then only the 7 s left before the deadline
    assert clock.sleeps == [1, 2, 4, 8, 8, 7]
    assert states[0].attempts == 7 and not states[0].held and states[0].seconds_to_hold is None
    assert states[0].verdict == p.Verdict("denied", "d")


def test_default_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    monkeypatch.setattr(p.time, "monotonic", clock.monotonic)
    p.run_until_held([probe("a")], never_holds(), deadline=40, sleep=clock.sleep)
    assert clock.sleeps == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0, 1.0]


@pytest.mark.parametrize("deadline", [0, -1])
def test_a_spent_deadline_means_one_round(monkeypatch: pytest.MonkeyPatch, deadline: float) -> None:
    clock = Clock()
    monkeypatch.setattr(p.time, "monotonic", clock.monotonic)
    [state] = p.run_until_held([probe("a")], never_holds(), deadline=deadline, sleep=clock.sleep)
    assert state.attempts == 1 and clock.sleeps == []


def test_seconds_to_hold_is_measured_from_the_start(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    monkeypatch.setattr(p.time, "monotonic", clock.monotonic)
    answers = iter(["denied", "denied", "allowed"])

    def run_source(key: str, batch: list[p.Probe]) -> list[p.Verdict]:
        clock.now += 0.1234  # the round itself takes time
        return [p.Verdict(next(answers), "") for _probe in batch]

    [state] = p.run_until_held([probe("a")], run_source, deadline=60, delay=0.5, sleep=clock.sleep)
    assert state.held and state.attempts == 3 and clock.sleeps == [0.5, 1.0]
    assert state.seconds_to_hold == 1.870  # 3 rounds of 0.1234 s + 1.5 s of sleep, rounded


def test_each_source_gets_one_batch_per_round() -> None:
    seen: list[tuple[str, list[str]]] = []

    def run_source(key: str, batch: list[p.Probe]) -> list[p.Verdict]:
        seen.append((key, [x.name for x in batch]))
        return [p.Verdict("allowed", key) for _probe in batch]

    probes = [probe("a", source_key="s1"), probe("b", source_key="s2"), probe("c", source_key="s1")]
    states = p.run_until_held(probes, run_source, deadline=0, sleep=lambda s: None)
    assert seen == [("s1", ["a", "c"]), ("s2", ["b"])]
    assert [s.verdict.detail for s in states] == ["s1", "s2", "s1"]


# --------------------------------------------------------------------------- reporting


def test_as_result_of_a_probe_with_a_record() -> None:
    rec = p.Record(
        exit_code=0,
        status=403,
        time_total=0.123456,
        headers={"server": "envoy", "date": "x", "content-type": "text/plain"},
        body="RBAC:  access\ndenied " + "z" * 300,
    )
    state = p.ProbeState(
        probe("n", "http://u/", "denied", method="post", source_key="ns/pod"),
        attempts=2,
        held=True,
        seconds_to_hold=1.5,
        verdict=p.Verdict("denied", "403 RBAC: access denied", rec),
    )
    assert state.as_result() == {
        "name": "n",
        "source": "ns/pod",
        "url": "http://u/",
        "method": "POST",
        "expect": "denied",
        "outcome": "denied",
        "held": True,
        "detail": "403 RBAC: access denied",
        "status": 403,
        "curl_exit": 0,
        "headers": {"server": "envoy", "content-type": "text/plain"},
        "body_excerpt": "RBAC: access denied " + "z" * 177 + "...",
        "time": 0.1235,
        "attempts": 2,
        "seconds_to_hold": 1.5,
        "not_proven": None,
    }


def test_as_result_of_a_probe_that_never_ran() -> None:
    result = p.ProbeState(probe("n")).as_result()
    assert (result["outcome"], result["detail"], result["held"]) == ("error", "not run", False)
    assert (result["status"], result["curl_exit"], result["time"]) == (None, None, None)
    assert (result["headers"], result["body_excerpt"], result["attempts"]) == ({}, "", 0)
    assert result["seconds_to_hold"] is None and result["method"] == "GET"


def test_as_result_of_an_error_without_record() -> None:
    state = p.ProbeState(probe("n"), attempts=1, verdict=p.Verdict("error", "boom"))
    result = state.as_result()
    assert (result["outcome"], result["detail"], result["status"], result["headers"]) == (
        "error",
        "boom",
        None,
        {},
    )


def _result(name: str, held: bool, outcome: str, status: int | None, attempts: int) -> dict:
    return {
        "name": name,
        "source": "controller",
        "expect": "allowed",
        "outcome": outcome,
        "held": held,
        "status": status,
        "attempts": attempts,
        "detail": f"detail of {name}",
    }


def test_mismatch_table_exactly() -> None:
    table = p.mismatch_table(
        [
            _result("ok", True, "allowed", 200, 1),
            _result("long-probe-name", False, "denied", 403, 12),
            _result("x", False, "unreachable", None, 3),
        ]
    )
    assert table.split("\n") == [
        "probe           | source     | expected | got         | status | attempts | detail",
        "----------------+------------+----------+-------------+--------+----------+-------",
        "long-probe-name | controller | allowed  | denied      | 403    | 12       | "
        "detail of long-probe-name",
        "x               | controller | allowed  | unreachable | -      | 3        | detail of x",
    ]


def test_summary_counts_each_outcome_exactly() -> None:
    outcomes = [
        ("allowed", True),
        ("allowed", True),
        ("allowed", False),
        ("denied", True),
        ("denied", True),
        ("denied", True),
        ("denied", False),
        ("blocked", True),
        ("unreachable", False),
        ("unreachable", False),
        ("error", False),
    ]
    results = [_result(str(i), held, o, None, 1) for i, (o, held) in enumerate(outcomes)]
    assert p.summarize(results) == {
        "total": 11,
        "held": 6,
        "not_proven": 0,
        "failed": 5,
        "allowed": 3,
        "denied": 4,
        "blocked": 1,
        "unreachable": 2,
        "error": 1,
    }
    assert list(p.summarize([])) == [
        "total",
        "held",
        "not_proven",
        "failed",
        "allowed",
        "denied",
        "blocked",
        "unreachable",
        "error",
    ]


def test_error_verdicts() -> None:
    assert p.error_verdicts([probe(), probe()], "why") == [p.Verdict("error", "why")] * 2
