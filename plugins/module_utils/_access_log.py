# Copyright: meshguard.egress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Parse Envoy/Istio access logs (Istio JSON, Istio text, Envoy default text)."""

from __future__ import annotations

import datetime
import fnmatch
import json
import re
from typing import Any, Iterable

TEXT_HEAD = re.compile(
    r'^\[(?P<start_time>[^\]]+)\] "(?P<method>\S+) (?P<path>\S+) (?P<protocol>[^"]*)" '
    r"(?P<response_code>\d+) (?P<response_flags>\S+) (?P<rest>.*)$"
)
TOKEN = re.compile(r'"((?:[^"\\]|\\.)*)"|(\S+)')

# Fields after RESPONSE_FLAGS, in order.
ENVOY_DEFAULT_TAIL = (
    "bytes_received",
    "bytes_sent",
    "duration",
    "upstream_service_time",
    "x_forwarded_for",
    "user_agent",
    "request_id",
    "authority",
    "upstream_host",
)
ISTIO_TEXT_TAIL = (
    (
        "response_code_details",
        "connection_termination_details",
        "upstream_transport_failure_reason",
    )
    + ENVOY_DEFAULT_TAIL
    + (
        "upstream_cluster",
        "upstream_local_address",
        "downstream_local_address",
        "downstream_remote_address",
        "requested_server_name",
        "route_name",
    )
)
INT_FIELDS = ("response_code", "duration", "bytes_received", "bytes_sent")
RECORD_FIELDS = (
    "start_time",
    "authority",
    "method",
    "path",
    "protocol",
    "response_code",
    "response_flags",
    "response_code_details",
    "upstream_cluster",
    "upstream_host",
    "duration",
    "user_agent",
    "request_id",
)


def _none_if_dash(value: Any) -> Any:
    return None if value in ("-", "", None) else value


def _to_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _normalise(raw: dict[str, Any], fmt: str) -> dict[str, Any]:
    record = {key: _none_if_dash(raw.get(key)) for key in RECORD_FIELDS}
    record["response_flags"] = raw.get("response_flags") or "-"
    for key in INT_FIELDS:
        if key in record:
            record[key] = _to_int(record[key])
    record["format"] = fmt
    return record


def _parse_json_line(line: str) -> dict[str, Any] | None:
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if not isinstance(data, dict) or "response_code" not in data:
        return None
    return _normalise(data, "json")


def _parse_text_line(line: str) -> dict[str, Any] | None:
    head = TEXT_HEAD.match(line)
    if not head:
        return None
    tokens = [q if q is not None and b == "" else b for q, b in TOKEN.findall(head["rest"])]
    tail = ENVOY_DEFAULT_TAIL if tokens and tokens[0].isdigit() else ISTIO_TEXT_TAIL
    raw: dict[str, Any] = dict(zip(tail, tokens))
    raw.update({k: v for k, v in head.groupdict().items() if k != "rest"})
    return _normalise(raw, "envoy_text" if tail is ENVOY_DEFAULT_TAIL else "istio_text")


def parse_line(line: str) -> dict[str, Any] | None:
    """One access-log record, or None for lines that are not access-log entries."""
    line = line.strip()
    if line.startswith("{"):
        return _parse_json_line(line)
    if line.startswith("["):
        return _parse_text_line(line)
    return None


def parse_log(text: str) -> tuple[list[dict[str, Any]], int]:
    """Records of every access-log line, and how many other lines were skipped."""
    records, skipped = [], 0
    for line in text.splitlines():
        if not line.strip():
            continue
        record = parse_line(line)
        if record is None:
            skipped += 1
        else:
            records.append(record)
    return records, skipped


def parse_time(value: str) -> datetime.datetime | None:
    try:
        parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.timezone.utc)


def _glob(value: str | None, pattern: str | None, fold: bool = False) -> bool:
    if pattern is None:
        return True
    if value is None:
        return False
    if fold:
        value, pattern = value.lower(), pattern.lower()
    return fnmatch.fnmatchcase(value, pattern) or fnmatch.fnmatchcase(value.split("?")[0], pattern)


def matches(record: dict[str, Any], flt: dict[str, Any]) -> bool:
    """Whether a record passes a filter (authority/path globs, method, codes, since)."""
    codes = flt.get("response_code") or []
    since = flt.get("since")
    if since is not None:
        started = parse_time(record.get("start_time") or "")
        if started is None or started < since:
            return False
    return (
        _glob(record.get("authority"), flt.get("authority"), fold=True)
        and _glob(record.get("path"), flt.get("path"))
        and (not flt.get("method") or (record.get("method") or "").upper() == flt["method"].upper())
        and (not codes or record.get("response_code") in codes)
    )


def select(records: Iterable[dict[str, Any]], flt: dict[str, Any]) -> list[dict[str, Any]]:
    return [record for record in records if matches(record, flt)]
