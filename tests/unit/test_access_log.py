"""Unit tests of access-log parsing (the procedure's example line and text formats)."""

from __future__ import annotations

import datetime
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / ".venv" / "collections"))
from ansible_collections.meshguard.egress.plugins.module_utils import (
    _access_log as al,
)

SEED_JSON = (
    '{"authority":"httpbin.org","bytes_received":0,"bytes_sent":1045,'
    '"connection_termination_details":null,"duration":3226,"method":"GET","path":"/get",'
    '"protocol":"HTTP/2","response_code":200,"response_code_details":"via_upstream",'
    '"response_flags":"-","route_name":null,"start_time":"2025-06-05T21:02:20.806Z",'
    '"upstream_cluster":"outbound|80||httpbin.org","upstream_host":"52.202.28.30:80",'
    '"upstream_service_time":"3226","user_agent":"curl/7.83.1-DEV"}'
)
ENVOY_TEXT = (
    '[2025-06-05T21:02:21.000Z] "GET /status/418?x=1 HTTP/1.1" 503 UH 0 19 2 - "-" '
    '"curl/8" "id-1" "example.com" "-"'
)


def test_parses_the_procedure_example() -> None:
    rec = al.parse_line(SEED_JSON)
    assert rec is not None and rec["format"] == "json" and rec["duration"] == 3226
    assert (
        rec["upstream_cluster"] == "outbound|80||httpbin.org"
        and rec["response_code_details"] == "via_upstream"
    )


def test_parses_envoy_default_text() -> None:
    rec = al.parse_line(ENVOY_TEXT)
    assert rec is not None and rec["format"] == "envoy_text"
    assert (rec["authority"], rec["response_code"], rec["response_flags"]) == (
        "example.com",
        503,
        "UH",
    )
    assert rec["upstream_host"] is None and rec["user_agent"] == "curl/8"


def test_skips_other_lines_and_filters() -> None:
    records, skipped = al.parse_log(f"2025 info starting\n{SEED_JSON}\n{ENVOY_TEXT}\n{{bad\n")
    assert len(records) == 2 and skipped == 2
    assert al.select(records, {"authority": "*.org"}) == records[:1]
    assert al.select(records, {"path": "/status/*", "response_code": [503]}) == records[1:]
    since = datetime.datetime(2025, 6, 5, 21, 2, 20, 900000, tzinfo=datetime.timezone.utc)
    assert al.select(records, {"since": since}) == records[1:]
