"""Unit tests of the probe engine: script, parsing, classification, retries, table."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / ".venv" / "collections"))
from ansible_collections.meshguard.egress.plugins.module_utils import _probe as p

M = "@@MG-test@@"


def record_text(
    index: int, exit_code: int, write: str, headers: str = "", body: str = "", stderr: str = ""
) -> str:
    return (
        f"{M} BEGIN {index}\n{M} EXIT {exit_code}\n{M} WRITE {write}\n{M} STDERR\n{stderr}\n"
        f"{M} HEADERS\n{headers}\n{M} BODY\n{body}\n{M} END {index}\n"
    )


ENVOY = "HTTP/1.1 200 OK\r\nserver: envoy\r\nx-envoy-upstream-service-time: 3\r\n\r\n"


def probe(expect: str = "allowed", **kw: object) -> p.Probe:
    return p.Probe(name="t", url=str(kw.pop("url", "http://h/")), expect=expect, **kw)  # type: ignore[arg-type]


class BoundedSleep(list):
    """A sleep that records its delays and fails once the retry loop runs away (a mutant
    that never ends the loop fails the test instead of hanging it)."""

    def __init__(self, limit: int = 50) -> None:
        super().__init__()
        self.limit = limit

    def __call__(self, seconds: float) -> None:
        self.append(seconds)
        assert len(self) <= self.limit, "the retry loop did not end"


def test_script_runs_every_probe_in_background_and_waits() -> None:
    script = p.build_script([probe(), probe(method="POST", body="x y", headers={"a": "b c"})], M)
    assert script.count(") &") == 2 and "\nwait\n" in script
    assert "-X POST" in script and "--data-binary 'x y'" in script and "-H 'a: b c'" in script


def test_curl_command_for_head_and_insecure() -> None:
    argv = p.curl_command(probe(method="head", insecure=True, timeout=2.5))
    assert "-I" in argv and "-k" in argv and argv[argv.index("-m") + 1] == "2.5"


def test_parse_keeps_body_with_newlines_and_last_header_block() -> None:
    headers = "HTTP/1.1 100 Continue\r\n\r\n" + ENVOY
    out = record_text(0, 0, "200 0.01 0.001", headers, body="a\nb\n")
    rec = p.parse_records(out, M, 1)[0]
    assert rec.status == 200 and rec.body == "a\nb\n" and rec.headers["server"] == "envoy"


@pytest.mark.parametrize(
    ("kw", "exit_code", "write", "headers", "body", "outcome"),
    [
        ({}, 0, "200 0.1 0.01", ENVOY, "{}", "allowed"),
        ({}, 0, "200 0.1 0.01", "HTTP/1.1 200 OK\r\nserver: nginx\r\n\r\n", "", "error"),
        ({"require_envoy": False}, 0, "200 0.1 0.01", "HTTP/1.1 200 OK\r\n\r\n", "", "allowed"),
        ({"expected_status": (204,)}, 0, "200 0.1 0.01", ENVOY, "", "error"),
        ({}, 0, "403 0.1 0.01", ENVOY, "RBAC: access denied", "denied"),
        ({}, 0, "403 0.1 0.01", ENVOY, "nope", "error"),
        ({}, 0, "502 0.1 0.01", "HTTP/1.1 502 Bad\r\nserver: envoy\r\n\r\n", "", "blocked"),
        ({}, 0, "503 0.1 0.01", ENVOY, "no healthy upstream", "error"),
        ({}, 7, "000 0.0 0.0", "", "", "unreachable"),
        ({}, 28, "000 3.0 0.0", "", "", "unreachable"),
        ({}, 28, "000 3.0 0.2", "", "", "error"),
        ({"url": "https://h/"}, 35, "000 0.1 0.01", "", "", "blocked"),
        ({"url": "http://h/"}, 56, "000 0.1 0.01", "", "", "error"),
        ({}, 6, "000 0.0 0.0", "", "", "error"),
    ],
)
def test_classify(
    kw: dict, exit_code: int, write: str, headers: str, body: str, outcome: str
) -> None:
    rec = p.parse_records(record_text(0, exit_code, write, headers, body), M, 1)[0]
    assert p.classify(probe(**kw), rec).outcome == outcome


def fake_runner(outputs: list[str]):
    calls: list[str] = []

    def run(script: str, timeout: float) -> p.ScriptResult:
        marker = script.split("\n", 1)[0].split("=", 1)[1].strip("'")
        calls.append(script)
        return p.ScriptResult(stdout=outputs[len(calls) - 1].replace(M, marker), rc=0)

    return run, calls


def test_run_batch_reports_missing_curl_and_missing_records() -> None:
    run, _calls = fake_runner([f"{M} NOCURL\n"])
    assert p.run_batch([probe()], run)[0].detail == "curl not found in the probe source"
    run, _calls = fake_runner([""])
    assert "no result from the probe script" in p.run_batch([probe()], run)[0].detail


def test_run_until_held_reruns_only_pending_probes_with_backoff() -> None:
    answers = {"a": ["denied", "allowed"], "b": ["allowed"]}
    seen: list[list[str]] = []

    def run_source(key: str, batch: list[p.Probe]) -> list[p.Verdict]:
        seen.append([x.name for x in batch])
        return [p.Verdict(answers[x.name].pop(0), "") for x in batch]

    sleeps = BoundedSleep()
    probes = [p.Probe("a", "u", "allowed"), p.Probe("b", "u", "allowed")]
    states = p.run_until_held(probes, run_source, deadline=60, delay=1, sleep=sleeps)
    assert seen == [["a", "b"], ["a"]] and sleeps == [1]
    assert [s.attempts for s in states] == [2, 1] and all(s.held for s in states)


def test_run_until_held_stops_at_deadline() -> None:
    rounds: list[int] = []

    def run_source(key: str, batch: list[p.Probe]) -> list[p.Verdict]:
        rounds.append(1)
        assert len(rounds) < 10, "did not stop at the deadline"
        return [p.Verdict("denied", "x")]

    states = p.run_until_held(
        [p.Probe("a", "u", "allowed")], run_source, deadline=0, sleep=BoundedSleep()
    )
    assert states[0].attempts == 1 and not states[0].held


def test_mismatch_table_lists_only_failures() -> None:
    ok = p.ProbeState(p.Probe("ok", "u", "allowed"), 1, True, 0.1, p.Verdict("allowed", ""))
    bad = p.ProbeState(p.Probe("bad", "u", "denied"), 3, False, None, p.Verdict("allowed", "200"))
    table = p.mismatch_table([ok.as_result(), bad.as_result()])
    assert "bad" in table and "ok " not in table and "| denied   | allowed" in table
    assert p.summarize([ok.as_result(), bad.as_result()])["failed"] == 1


def test_a_not_proven_probe_is_run_once_while_the_others_are_retried() -> None:
    answers = {"a": ["denied", "allowed"], "np": ["allowed", "unreachable"]}
    seen: list[list[str]] = []

    def run_source(key: str, batch: list[p.Probe]) -> list[p.Verdict]:
        seen.append([x.name for x in batch])
        return [p.Verdict(answers[x.name].pop(0), "") for x in batch]

    probes = [p.Probe("a", "u", "allowed"), p.Probe("np", "u", "unreachable", not_proven="why")]
    states = p.run_until_held(probes, run_source, deadline=60, delay=0, sleep=BoundedSleep())
    assert seen == [["a", "np"], ["a"]]
    assert [(s.held, s.attempts, s.verdict.outcome) for s in states] == [  # type: ignore[union-attr]
        (True, 2, "allowed"),
        (False, 1, "allowed"),
    ]
    assert states[1].as_result()["not_proven"] == "why"


def test_a_not_proven_probe_whose_outcome_matches_still_does_not_hold() -> None:
    probes = [p.Probe("np", "u", "unreachable", not_proven="why")]
    [state] = p.run_until_held(
        probes, lambda key, batch: [p.Verdict("unreachable", "")], deadline=0, sleep=BoundedSleep()
    )
    assert (state.held, state.seconds_to_hold, state.attempts) == (False, None, 1)


def test_a_not_run_verdict_is_no_attempt_and_ends_a_not_proven_probe() -> None:
    probes = [p.Probe("np", "u", "unreachable", not_proven="check mode")]
    calls: list[int] = []

    def run_source(key: str, batch: list[p.Probe]) -> list[p.Verdict]:
        calls.append(1)
        return [p.Verdict(p.NOT_RUN, "check mode")]

    [state] = p.run_until_held(probes, run_source, deadline=60, sleep=BoundedSleep())
    assert calls == [1] and state.attempts == 0 and state.verdict.outcome == "not_run"  # type: ignore[union-attr]


def test_summary_and_table_leave_not_proven_probes_out_of_the_failures() -> None:
    ok = p.ProbeState(p.Probe("ok", "u", "allowed"), 1, True, 0.1, p.Verdict("allowed", ""))
    bad = p.ProbeState(p.Probe("bad", "u", "denied"), 3, False, None, p.Verdict("allowed", "200"))
    np_match = p.ProbeState(
        p.Probe("np-match", "u", "unreachable", not_proven="r"),
        1,
        False,
        None,
        p.Verdict("unreachable", "connection refused (curl exit 7)"),
    )
    np_other = p.ProbeState(
        p.Probe("np-other", "u", "unreachable", not_proven="r"),
        1,
        False,
        None,
        p.Verdict("error", "200 without Envoy evidence"),
    )
    results = [s.as_result() for s in (ok, bad, np_match, np_other)]
    summary = p.summarize(results)
    assert {k: summary[k] for k in ("total", "held", "not_proven", "failed")} == {
        "total": 4,
        "held": 1,
        "not_proven": 2,
        "failed": 1,
    }
    assert (summary["unreachable"], summary["error"]) == (1, 1)  # outcomes still counted
    table = p.mismatch_table(results)
    assert "bad" in table and "np-" not in table and table.count("\n") == 2


def test_a_not_run_verdict_does_not_stop_the_others_of_its_batch() -> None:
    """One probe of a source not sent: the later probes of that batch still count."""
    probes = [
        p.Probe("np", "u", "unreachable", not_proven="check mode"),
        p.Probe("a", "u", "allowed"),
    ]
    states = p.run_until_held(
        probes,
        lambda key, batch: [p.Verdict(p.NOT_RUN, "not sent"), p.Verdict("allowed", "")],
        deadline=0,
        sleep=BoundedSleep(),
    )
    assert [(s.attempts, s.held) for s in states] == [(0, False), (1, True)]
