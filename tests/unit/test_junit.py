"""Unit tests of the JUnit report."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / ".venv" / "collections"))
from ansible_collections.meshguard.egress.plugins.module_utils._junit import (
    junit_xml,
    write_junit,
)


def result(name: str, held: bool) -> dict:
    return {
        "name": name,
        "source": "controller",
        "expect": "denied",
        "outcome": "denied" if held else "allowed",
        "detail": "d",
        "status": 403,
        "curl_exit": 0,
        "attempts": 2,
        "time": 0.25,
        "held": held,
        "method": "GET",
        "url": "http://x/<&>",
        "body_excerpt": "RBAC",
        "seconds_to_hold": 1.0,
    }


def test_one_testcase_per_probe_with_failures(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "r.xml"
    write_junit(str(path), [result("a", True), result("b", False)], "suite")
    suite = ET.parse(path).getroot().find("testsuite")
    assert suite is not None and suite.get("tests") == "2" and suite.get("failures") == "1"
    failure = suite.findall("testcase")[1].find("failure")
    assert failure is not None and failure.get("message") == "expected denied, got allowed"


def test_escapes_markup() -> None:
    assert "&lt;&amp;&gt;" in junit_xml([result("a", True)])


def test_generic_cases_pass_fail_and_skip(tmp_path: Path) -> None:
    from ansible_collections.meshguard.egress.plugins.module_utils._junit import (
        write_junit_cases,
    )

    cases = [
        {"name": "a.ok", "classname": "s.a", "system_out": "no findings"},
        {
            "name": "a.bad",
            "classname": "s.a",
            "failure": {"message": "m <&>", "type": "error", "text": "t"},
            "system_out": "error: m",
        },
        {"name": "d.skip", "classname": "s.d", "skipped": "no plan"},
    ]
    path = tmp_path / "out" / "audit.xml"
    write_junit_cases(str(path), cases, "s")
    root = ET.parse(path).getroot()
    suite = root.find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("3", "1", "1")
    by_name = {c.get("name"): c for c in suite.iter("testcase")}
    assert by_name["a.bad"].find("failure").get("message") == "m <&>"
    assert by_name["a.bad"].find("failure").get("type") == "error"
    assert by_name["d.skip"].find("skipped").get("message") == "no plan"
    assert by_name["a.ok"].find("failure") is None
    assert by_name["a.ok"].find("system-out").text == "no findings"


def test_a_not_proven_probe_is_skipped_with_its_reason_and_observed_outcome() -> None:
    not_proven = {
        **result("bypass", False),
        "expect": "unreachable",
        "outcome": "error",
        "detail": "200 without Envoy evidence",
        "status": 200,
        "not_proven": "NetworkPolicies are not enforced",
    }
    root = ET.fromstring(junit_xml([result("a", True), result("b", False), not_proven]))
    suite = root.find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("3", "1", "1")
    assert root.get("failures") == "1"
    case = suite.findall("testcase")[2]
    assert case.find("failure") is None
    skipped = case.find("skipped")
    assert skipped is not None
    assert skipped.get("message") == "not proven: NetworkPolicies are not enforced"
    assert skipped.text == (
        "not proven: NetworkPolicies are not enforced\n"
        "expected: unreachable\n"
        "observed: error (200 without Envoy evidence)\n"
        "status: 200\n"
        "curl exit: 0"
    )
    # a held or failed probe with not_proven null is reported as before
    assert suite.findall("testcase")[0].find("skipped") is None
    assert (
        ET.fromstring(junit_xml([{**result("a", True), "not_proven": None}])).find(
            "testsuite/testcase/skipped"
        )
        is None
    )
