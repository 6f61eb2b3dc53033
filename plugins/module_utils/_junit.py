# Copyright: meshguard.egress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""JUnit XML for probe results (read by AWX, Jenkins, GitLab CI)."""

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


def _testcase(result: dict[str, Any], suite: str) -> ET.Element:
    case = ET.Element(
        "testcase",
        name=result["name"],
        classname=f"{suite}.{result['source']}",
        time=f"{float(result.get('time') or 0):.3f}",
    )
    if not result["held"]:
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


def junit_xml(results: list[dict[str, Any]], suite: str = "meshguard.egress.verify") -> str:
    """A JUnit ``<testsuites>`` document with one testcase per probe result."""
    failures = sum(1 for r in results if not r["held"])
    total_time = sum(float(r.get("time") or 0) for r in results)
    root = ET.Element(
        "testsuites",
        name=suite,
        tests=str(len(results)),
        failures=str(failures),
        errors="0",
        time=f"{total_time:.3f}",
    )
    suite_el = ET.SubElement(
        root,
        "testsuite",
        name=suite,
        tests=str(len(results)),
        failures=str(failures),
        errors="0",
        skipped="0",
        time=f"{total_time:.3f}",
    )
    for result in results:
        suite_el.append(_testcase(result, suite))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_junit(path: str, results: list[dict[str, Any]], suite: str) -> None:
    """Write the report atomically (a reader never sees half a file)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".junit-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(junit_xml(results, suite))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
