"""The filter plugin: same results as module_utils, DescriptionError -> AnsibleFilterError."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.meshguard.egress.plugins.filter.egress import FilterModule
from ansible_collections.meshguard.egress.plugins.module_utils._manifests import (
    gateway_values,
    render,
)

ROOT = Path(__file__).resolve().parents[2]
FILTERS = FilterModule().filters()
SPEC: dict[str, Any] = {
    "cluster": "cluster-1",
    "services": [
        {
            "host": "httpbin.org",
            "ports": [{"number": 443, "protocol": "HTTPS", "name": "https"}],
            "clients": [{"namespace": "bookinfo", "service_account": "bookinfo-productpage"}],
        }
    ],
}


def test_filter_names() -> None:
    assert sorted(FILTERS) == [
        "egress_check_values",
        "egress_gateway_values",
        "egress_resources",
    ]


@pytest.mark.parametrize("concern", ["outbound_policy", "routes", "access", "lockdown", "gateway"])
def test_egress_resources_matches_render(concern: str) -> None:
    assert FILTERS["egress_resources"](SPEC, concern) == render(SPEC, concern)


def test_egress_gateway_values_matches_module_utils() -> None:
    gateway = {"replicas": 2, "revision": "main"}
    assert FILTERS["egress_gateway_values"](gateway) == gateway_values(gateway)


def test_invalid_description_becomes_filter_error_with_same_message() -> None:
    spec = {"services": [{"host": "httpbin.org", "ports": [{"number": 99999, "protocol": "HTTP"}]}]}
    with pytest.raises(AnsibleFilterError) as caught:
        FILTERS["egress_resources"](spec, "routes")
    assert "services[0].ports[0].number: must be an integer from 1 to 65535 (got 99999)" in str(
        caught.value
    )


def test_invalid_gateway_becomes_filter_error() -> None:
    with pytest.raises(AnsibleFilterError, match=r"gateway\.service_type: .*\(got 'Public'\)"):
        FILTERS["egress_gateway_values"]({"service_type": "Public"})


def test_check_values_returns_values_or_raises(tmp_path: Path) -> None:
    schema = tmp_path / "values.schema.json"
    schema.write_text(
        json.dumps({"type": "object", "properties": {"replicaCount": {"type": "integer"}}})
    )
    values = {"replicaCount": 1}
    assert FILTERS["egress_check_values"](values, str(schema)) is values
    with pytest.raises(AnsibleFilterError, match=r"values\.replicaCount: .*\(got 'x'\)"):
        FILTERS["egress_check_values"]({"replicaCount": "x"}, str(schema))


def _ansible(expression: str) -> subprocess.CompletedProcess[str]:
    bindir = Path(sys.executable).parent
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".venv" / "collections"),
        ANSIBLE_STDOUT_CALLBACK="ansible.builtin.minimal",
    )
    return subprocess.run(
        [
            str(bindir / "ansible"),
            "localhost",
            "-i",
            "localhost,",
            "-c",
            "local",
            "-m",
            "ansible.builtin.debug",
            "-a",
            f"msg={expression}",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_filters_work_in_a_real_ansible_run() -> None:
    spec = json.dumps(SPEC)
    ok = _ansible(f"{{{{ ({spec} | meshguard.egress.egress_resources('access'))[0].kind }}}}")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert '"msg": "AccessPolicy"' in ok.stdout
    bad = _ansible("{{ {'flavor': 'consul'} | meshguard.egress.egress_resources('routes') }}")
    assert bad.returncode != 0
    assert "flavor: must be one of gloo, istio (got 'consul')" in bad.stdout + bad.stderr
