"""Exact results of access-log parsing and filtering, one factor at a time."""

from __future__ import annotations

import datetime
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / ".venv" / "collections"))
from ansible_collections.meshguard.egress.plugins.module_utils import (
    _access_log as al,
)

UTC = datetime.timezone.utc
ISTIO_TEXT = (
    '[2025-06-05T21:02:22.000Z] "POST /post HTTP/2" 200 - via_upstream - "-" 12 345 6 5 '
    '"10.0.0.1" "curl/8" "id-2" "httpbin.org" "52.1.2.3:443" outbound|443||httpbin.org '
    "10.0.0.9:4000 10.0.0.9:8443 10.0.0.1:5000 httpbin.org -"
)


def test_istio_text_line_exactly() -> None:
    assert al.parse_line(ISTIO_TEXT) == {
        "start_time": "2025-06-05T21:02:22.000Z",
        "authority": "httpbin.org",
        "method": "POST",
        "path": "/post",
        "protocol": "HTTP/2",
        "response_code": 200,
        "response_flags": "-",
        "response_code_details": "via_upstream",
        "upstream_cluster": "outbound|443||httpbin.org",
        "upstream_host": "52.1.2.3:443",
        "duration": 6,
        "user_agent": "curl/8",
        "request_id": "id-2",
        "format": "istio_text",
    }


def test_envoy_default_text_line_exactly() -> None:
    line = (
        '[2025-06-05T21:02:21.000Z] "GET /x HTTP/1.1" 503 UH 0 19 2 - "-" "curl/8" "id-1" '
        '"example.com" "-"'
    )
    assert al.parse_line("  " + line + "\n") == {
        "start_time": "2025-06-05T21:02:21.000Z",
        "authority": "example.com",
        "method": "GET",
        "path": "/x",
        "protocol": "HTTP/1.1",
        "response_code": 503,
        "response_flags": "UH",
        "response_code_details": None,
        "upstream_cluster": None,
        "upstream_host": None,
        "duration": 2,
        "user_agent": "curl/8",
        "request_id": "id-1",
        "format": "envoy_text",
    }


def test_text_line_with_one_field_after_the_flags_is_istio_shaped() -> None:
    record = al.parse_line('[t] "GET / HTTP/1.1" 200 - via_upstream')
    assert record is not None and record["format"] == "istio_text"
    assert record["response_code_details"] == "via_upstream" and record["duration"] is None
    record = al.parse_line('[t] "GET / HTTP/1.1" 200 - 7')
    assert record is not None and record["format"] == "envoy_text"


def test_quoted_values_keep_spaces_and_escapes() -> None:
    line = (
        '[t] "GET / HTTP/1.1" 200 - 1 2 3 4 "-" "Mozilla/5.0 (X11; \\"Linux\\")" "id" '
        '"h.example" "-"'
    )
    record = al.parse_line(line)
    assert record is not None and record["user_agent"] == 'Mozilla/5.0 (X11; \\"Linux\\")'
    assert record["authority"] == "h.example"


def test_json_line_fields() -> None:
    line = json.dumps(
        {
            "response_code": "404",
            "duration": "x",
            "authority": "",
            "upstream_host": "-",
            "response_flags": "",
            "method": "GET",
            "extra": 1,
        }
    )
    record = al.parse_line(line)
    assert record is not None
    assert (record["response_code"], record["duration"]) == (404, None)
    assert (record["authority"], record["upstream_host"], record["method"]) == (None, None, "GET")
    assert record["response_flags"] == "-" and "extra" not in record and record["format"] == "json"
    assert al.parse_line(json.dumps({"response_flags": "UH"})) is None  # no response_code
    assert al.parse_line("[1, 2]") is None
    assert al.parse_line('{"response_code": 200') is None


def test_dash_and_empty_values_are_none_but_zero_is_kept() -> None:
    record = al.parse_line(json.dumps({"response_code": 0, "bytes_sent": 0, "duration": 0}))
    assert record is not None and record["response_code"] == 0 and record["duration"] == 0
    assert al._none_if_dash("") is None and al._none_if_dash("-") is None
    assert al._none_if_dash("XXXX") == "XXXX" and al._none_if_dash(0) == 0


def test_parse_log_counts_skipped_lines_and_ignores_blank_ones() -> None:
    text = "\n  \nstarting envoy\n" + ISTIO_TEXT + "\n[not a record\n" + ISTIO_TEXT + "\n"
    records, skipped = al.parse_log(text)
    assert len(records) == 2 and skipped == 2


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-06-05T21:02:20.806Z", datetime.datetime(2025, 6, 5, 21, 2, 20, 806000, tzinfo=UTC)),
        ("2025-06-05T21:02:20", datetime.datetime(2025, 6, 5, 21, 2, 20, tzinfo=UTC)),
        (
            "2025-06-05T23:02:20+02:00",
            datetime.datetime(2025, 6, 5, 21, 2, 20, tzinfo=UTC),
        ),
        ("yesterday", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_time(value: str, expected: datetime.datetime | None) -> None:
    parsed = al.parse_time(value)
    assert parsed == expected
    if parsed is not None:
        assert parsed.utcoffset() is not None
        if value.endswith("+02:00"):
            assert parsed.utcoffset() == datetime.timedelta(hours=2)


REC = {
    "authority": "API.Example.org",
    "path": "/v1/items?page=2",
    "method": "post",
    "response_code": 201,
    "start_time": "2025-06-05T21:02:20.000Z",
}


@pytest.mark.parametrize(
    ("flt", "matched"),
    [
        ({}, True),
        ({"authority": "api.example.org"}, True),
        ({"authority": "*.EXAMPLE.org"}, True),
        ({"authority": "example.org"}, False),
        ({"path": "/v1/items"}, True),
        ({"path": "/v1/*"}, True),
        ({"path": "/V1/*"}, False),
        ({"path": "/v1/items?page=2"}, True),
        ({"path": "/v2/*"}, False),
        ({"method": "POST"}, True),
        ({"method": "post"}, True),
        ({"method": "GET"}, False),
        ({"method": None}, True),
        ({"response_code": [200, 201]}, True),
        ({"response_code": [200]}, False),
        ({"response_code": []}, True),
        ({"since": datetime.datetime(2025, 6, 5, 21, 2, 20, tzinfo=UTC)}, True),
        ({"since": datetime.datetime(2025, 6, 5, 21, 2, 20, 1, tzinfo=UTC)}, False),
        ({"since": None}, True),
        ({"authority": "api.example.org", "method": "GET"}, False),
        ({"authority": "other", "method": "POST"}, False),
        ({"path": "/v1/*", "response_code": [500]}, False),
    ],
)
def test_filter_one_factor_at_a_time(flt: dict, matched: bool) -> None:
    assert al.matches(REC, flt) is matched


def test_filter_on_records_missing_fields() -> None:
    bare: dict = {"response_code": 200}
    assert al.matches(bare, {}) is True
    assert al.matches(bare, {"authority": "*"}) is False
    assert al.matches(bare, {"path": "*"}) is False
    assert al.matches(bare, {"method": "GET"}) is False
    assert al.matches(bare, {"method": "XXXX"}) is False  # no method matches no method filter
    since = datetime.datetime(2000, 1, 1, tzinfo=UTC)
    assert al.matches(bare, {"since": since}) is False
    assert al.matches({**bare, "start_time": "garbage"}, {"since": since}) is False


def test_select_keeps_order() -> None:
    records = [{**REC, "response_code": c} for c in (500, 201, 404, 201)]
    assert al.select(records, {"response_code": [201, 404]}) == records[1:]
