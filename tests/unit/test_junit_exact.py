"""The JUnit report, byte for byte, and its atomic write."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / ".venv" / "collections"))
from ansible_collections.meshguard.egress.plugins.module_utils import _junit as j


def result(name: str, held: bool, **changes: Any) -> dict[str, Any]:
    base = {
        "name": name,
        "source": "bookinfo/[app=x]",
        "expect": "denied",
        "outcome": "denied" if held else "allowed",
        "detail": "403 RBAC: access denied" if held else "200 via Envoy",
        "status": 403 if held else 200,
        "curl_exit": 0,
        "attempts": 3,
        "time": 0.1256,
        "held": held,
        "method": "GET",
        "url": "http://h/",
        "body_excerpt": "" if held else "{}",
        "seconds_to_hold": 1.5 if held else None,
    }
    return {**base, **changes}


# ruff: noqa: E501 (the expected document has long lines)
EXPECTED = """<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="s" tests="3" failures="2" errors="0" time="2.251">
  <testsuite name="s" tests="3" failures="2" errors="0" skipped="0" time="2.251">
    <testcase name="ok" classname="s.bookinfo/[app=x]" time="0.126">
      <system-out>GET http://h/ -&gt; denied: 403 RBAC: access denied (attempts 3, held after 1.5s)</system-out>
    </testcase>
    <testcase name="bad" classname="s.bookinfo/[app=x]" time="2.125">
      <failure message="expected denied, got allowed" type="allowed">expected: denied
got: allowed (200 via Envoy)
status: 200
curl exit: 0
attempts: 3
body: {}</failure>
      <system-out>GET http://h/ -&gt; allowed: 200 via Envoy (attempts 3, held after Nones)</system-out>
    </testcase>
    <testcase name="never" classname="s.controller" time="0.000">
      <failure message="expected allowed, got error" type="error">expected: allowed
got: error (not run)
status: None
curl exit: None
attempts: 0</failure>
      <system-out>POST http://x/ -&gt; error: not run (attempts 0, held after Nones)</system-out>
    </testcase>
  </testsuite>
</testsuites>
"""


def three_results() -> list[dict[str, Any]]:
    return [
        result("ok", True),
        result("bad", False, time=2.125),
        {
            "name": "never",
            "source": "controller",
            "expect": "allowed",
            "outcome": "error",
            "detail": "not run",
            "status": None,
            "curl_exit": None,
            "attempts": 0,
            "time": None,
            "held": False,
            "method": "POST",
            "url": "http://x/",
            "body_excerpt": "",
            "seconds_to_hold": None,
        },
    ]


def test_report_exactly() -> None:
    assert j.junit_xml(three_results(), "s") == EXPECTED


def test_default_suite_name_and_empty_report() -> None:
    assert j.junit_xml([]).split("\n")[1] == (
        '<testsuites name="meshguard.egress.verify" tests="0" failures="0" errors="0" time="0.000">'
    )


def test_write_is_atomic_and_readable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "a" / "b" / "report.xml"
    replaced: list[tuple[str, str]] = []
    real_replace = os.replace

    def spy(src: str, dst: str) -> None:
        replaced.append((src, dst))
        real_replace(src, dst)

    monkeypatch.setattr(j.os, "replace", spy)
    old = os.umask(0o077)
    try:
        j.write_junit(str(target), three_results(), "s")
    finally:
        os.umask(old)
    assert target.read_text(encoding="utf-8") == EXPECTED
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    ((src, dst),) = replaced
    assert dst == str(target)
    assert Path(src).parent == target.parent and Path(src).name.startswith(".junit-")
    assert sorted(p.name for p in target.parent.iterdir()) == ["report.xml"]
    j.write_junit(str(target), three_results()[:1], "s")  # the directory exists already
    assert 'tests="1"' in target.read_text()


def test_failed_write_leaves_no_file(tmp_path: Path) -> None:
    bad = [result("x", True, time="not a number")]
    with pytest.raises(ValueError):
        j.write_junit(str(tmp_path / "r.xml"), bad, "s")
    assert list(tmp_path.iterdir()) == []


def test_non_ascii_text_is_written_as_utf8(tmp_path: Path) -> None:
    target = tmp_path / "r.xml"
    j.write_junit(str(target), [result("prüfung→ok", True)], "s")
    assert 'name="prüfung→ok"' in target.read_bytes().decode("utf-8")


CASES_EXPECTED = """<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="audit" tests="4" failures="2" errors="0" time="1.750">
  <testsuite name="audit" tests="4" failures="2" errors="0" skipped="1" time="1.750">
    <testcase name="a.ok" classname="audit.a" time="1.250">
      <system-out>no findings</system-out>
    </testcase>
    <testcase name="a.bad" classname="audit.a" time="0.500">
      <failure message="m &lt;&amp;&gt;" type="error">t</failure>
      <system-out>error: m</system-out>
    </testcase>
    <testcase name="a.plain" classname="audit.b" time="0.000">
      <failure message="bare" type="failure" />
    </testcase>
    <testcase name="d.skip" classname="audit.d" time="0.000">
      <skipped message="no plan" />
    </testcase>
  </testsuite>
</testsuites>
"""


def generic_cases() -> list[dict[str, Any]]:
    return [
        {"name": "a.ok", "classname": "audit.a", "time": 1.25, "system_out": "no findings"},
        {
            "name": "a.bad",
            "classname": "audit.a",
            "time": "0.5",
            "failure": {"message": "m <&>", "type": "error", "text": "t"},
            "system_out": "error: m",
        },
        {"name": "a.plain", "classname": "audit.b", "failure": {"message": "bare"}},
        {"name": "d.skip", "classname": "audit.d", "time": None, "skipped": "no plan"},
    ]


def test_generic_cases_exactly() -> None:
    """Time given as a number, as text, absent and None; a failure with and without its
    type and text; a skip; system-out only when given."""
    assert j.junit_cases_xml(generic_cases(), "audit") == CASES_EXPECTED


def test_generic_cases_written_atomically(tmp_path: Path) -> None:
    target = tmp_path / "out" / "audit.xml"
    j.write_junit_cases(str(target), generic_cases(), "audit")
    assert target.read_text(encoding="utf-8") == CASES_EXPECTED
    assert sorted(p.name for p in target.parent.iterdir()) == ["audit.xml"]


def test_a_write_that_fails_midway_removes_its_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(j.os, "replace", refuse)
    with pytest.raises(OSError, match="No space left on device"):
        j.write_junit(str(tmp_path / "r.xml"), three_results(), "s")
    assert list(tmp_path.iterdir()) == []
