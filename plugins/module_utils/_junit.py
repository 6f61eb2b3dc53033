# Copyright: meshguard.egress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""JUnit XML reports (read by AWX, Jenkins, GitLab CI): probe results and generic cases."""

from __future__ import annotations

import os
import tempfile
import xml.etree.ElementTree as ET
from typing import Any


def _failure_text(result: dict[str, Any]) -> str:
    lines = [
        f"expected: {result['expect']}",
        f"got: {result['outcome']} ({result['detail']})",
        f"status: {result.get('status')}",
        f"curl exit: {result.get('curl_exit')}",
        f"attempts: {result.get('attempts')}",
    ]
    if result.get("body_excerpt"):
        lines.append(f"body: {result['body_excerpt']}")
    return "\n".join(lines)


def _not_proven_text(result: dict[str, Any]) -> str:
    return "\n".join(
        [
            f"not proven: {result['not_proven']}",
            f"expected: {result['expect']}",
            f"observed: {result['outcome']} ({result['detail']})",
            f"status: {result.get('status')}",
            f"curl exit: {result.get('curl_exit')}",
        ]
    )


def _testcase(result: dict[str, Any], suite: str) -> ET.Element:
    case = ET.Element(
        "testcase",
        name=result["name"],
        classname=f"{suite}.{result['source']}",
        time=f"{float(result.get('time') or 0):.3f}",
    )
    if result.get("not_proven"):
        skipped = ET.SubElement(case, "skipped", message=f"not proven: {result['not_proven']}")
        skipped.text = _not_proven_text(result)
    elif not result["held"]:
        failure = ET.SubElement(
            case,
            "failure",
            message=f"expected {result['expect']}, got {result['outcome']}",
            type=result["outcome"],
        )
        failure.text = _failure_text(result)
    out = ET.SubElement(case, "system-out")
    out.text = (
        f"{result['method']} {result['url']} -> {result['outcome']}: {result['detail']} "
        f"(attempts {result['attempts']}, held after {result.get('seconds_to_hold')}s)"
    )
    return case


def _document(cases: list[ET.Element], suite: str) -> str:
    failures = sum(1 for c in cases if c.find("failure") is not None)
    skipped = sum(1 for c in cases if c.find("skipped") is not None)
    total_time = sum(float(c.attrib["time"]) for c in cases)  # every testcase has a time
    root = ET.Element(
        "testsuites",
        name=suite,
        tests=str(len(cases)),
        failures=str(failures),
        errors="0",
        time=f"{total_time:.3f}",
    )
    suite_el = ET.SubElement(
        root,
        "testsuite",
        name=suite,
        tests=str(len(cases)),
        failures=str(failures),
        errors="0",
        skipped=str(skipped),
        time=f"{total_time:.3f}",
    )
    suite_el.extend(cases)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def junit_xml(results: list[dict[str, Any]], suite: str = "meshguard.egress.verify") -> str:
    """A JUnit ``<testsuites>`` document with one testcase per probe result."""
    return _document([_testcase(result, suite) for result in results], suite)


def _generic_testcase(case: dict[str, Any]) -> ET.Element:
    element = ET.Element(
        "testcase",
        name=case["name"],
        classname=case["classname"],
        time=f"{float(case.get('time') or 0):.3f}",
    )
    failure = case.get("failure")
    if failure:
        failed = ET.SubElement(
            element, "failure", message=failure["message"], type=failure.get("type", "failure")
        )
        failed.text = failure.get("text")
    elif case.get("skipped"):
        ET.SubElement(element, "skipped", message=case["skipped"])
    if case.get("system_out"):
        out = ET.SubElement(element, "system-out")
        out.text = case["system_out"]
    return element


def junit_cases_xml(cases: list[dict[str, Any]], suite: str) -> str:
    """A JUnit document from generic cases: ``name``, ``classname``, optional ``time``,
    ``failure`` (``message``, ``type``, ``text``), ``skipped`` (reason) and ``system_out``."""
    return _document([_generic_testcase(case) for case in cases], suite)


def _write_atomically(path: str, text: str) -> None:
    """Write the report atomically (a reader never sees half a file)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".junit-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_junit_cases(path: str, cases: list[dict[str, Any]], suite: str) -> None:
    """Write a report of generic cases (see :func:`junit_cases_xml`) atomically."""
    _write_atomically(path, junit_cases_xml(cases, suite))


def write_junit(path: str, results: list[dict[str, Any]], suite: str) -> None:
    """Write the probe report atomically (a reader never sees half a file)."""
    _write_atomically(path, junit_xml(results, suite))
