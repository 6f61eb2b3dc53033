"""``make run`` and ``make teardown`` (hack/run.sh) as a user on a fresh machine runs them:
no cluster configured, so hack/run.sh starts its own embedded test bed (control plane, a
node, the stand-in data plane), runs the procedure (``make run``: converge, client pods,
verify from real pods, teardown) or the playbook (``make teardown``) with the example
inventory there and stops it again. Both start a node of their own (marker ``own_node``).

Nothing may point at a cluster: ``KUBECONFIG``, every ``K8S_AUTH_*`` and the test harness's
own ``MESHGUARD_*`` cluster variables are removed, and ``HOME`` is an empty directory (no
``~/.kube/config``). ``MESHGUARD_CACHE`` names the kube binaries ``make setup`` built (they
live under the real ``HOME``); ``TMPDIR`` (a short directory of the test's own) holds the
embedded test bed's directory, ``MESHGUARD_REPORT_DIR`` any report out of the checkout.

What is asserted (hack/run.sh may change what it runs, not these): exit code 0; the line
saying no cluster is configured; every PLAY RECAP line without failed or unreachable hosts
(at least one); the playbook's one task
reported changed (make run) or ran (make teardown); the embedded control plane's directory
is removed afterwards and no process still names it; no ``~/.kube/config`` was written.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "hack"))

CLUSTER_VARIABLES = (
    "KUBECONFIG",
    "MESHGUARD_KUBECONFIG",
    "MESHGUARD_TESTBED_DIR",
    "MESHGUARD_NODE_TESTBED_DIR",
    "MESHGUARD_GATEWAY_CHART",
    "MESHGUARD_GATEWAY_SCHEMA",
    "MESHGUARD_AUDIT_LOG",
)
RECAP = re.compile(
    r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.MULTILINE
)
EMBEDDED_DIR = re.compile(r"kubeconfig (\S*meshguard-run\.\w+)/testbed/kubeconfig")


def make(target: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    import testbed

    home = tmp_path / "home"
    home.mkdir()
    # short: the node's unix sockets live under it (at most 107 bytes a path)
    tmp = Path(tempfile.mkdtemp(prefix="mgrun."))
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("K8S_AUTH_", "ANSIBLE_")) and k not in CLUSTER_VARIABLES
    }
    env.update(
        HOME=str(home),
        TMPDIR=str(tmp),
        MESHGUARD_CACHE=str(testbed.kube_bin_dir().parents[1]),
        MESHGUARD_REPORT_DIR=str(tmp_path / "reports"),
    )
    (tmp_path / "reports").mkdir()
    try:
        proc = subprocess.run(
            ["make", target],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=1200,
            check=False,
        )
    finally:
        with contextlib.suppress(OSError):
            tmp.rmdir()  # empty when hack/run.sh cleaned up (checked below)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"make {target} exited {proc.returncode}:\n{output[-6000:]}"
    assert "run: no cluster configured" in proc.stdout, proc.stdout[-3000:]
    recaps = RECAP.findall(proc.stdout)
    assert len(recaps) >= 1, proc.stdout[-3000:]
    for host, _ok, _changed, unreachable, failed in recaps:
        assert (host, unreachable, failed) == ("localhost", "0", "0"), recaps
    # the embedded control plane is stopped and its directory removed
    match = EMBEDDED_DIR.search(output)
    assert match, output[-3000:]
    embedded = Path(match.group(1))
    assert embedded.parent == tmp, embedded
    assert not embedded.exists(), f"{embedded} left behind"
    assert processes_naming(str(embedded)) == []
    assert not (home / ".kube" / "config").exists()  # (helm keeps a discovery cache there)
    return proc


def processes_naming(text: str) -> list[str]:
    """Command lines of running processes that contain ``text``."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # the process ended meanwhile
            continue
        if text in argv:
            found.append(argv)
    return found


def task_result(output: str, task: str) -> str:
    """``ok`` / ``changed`` / ... of the task named ``task`` on localhost."""
    match = re.search(rf"^TASK \[{re.escape(task)}\] \*+\n(\w+): \[localhost\]", output, re.M)
    assert match, f"task {task!r} did not run:\n{output[-3000:]}"
    return match.group(1)


@pytest.mark.own_node
def test_make_run_does_the_whole_procedure_on_the_embedded_node(tmp_path: Path) -> None:
    from test_procedure_node import HELD, summary_rows

    proc = make("run", tmp_path)
    out = proc.stdout
    assert task_result(out, "Apply the plan of the egress description") == "changed"
    assert re.findall(r"^run: (\d)/4 ", out, re.MULTILINE) == ["1", "2", "3", "4"], out
    # verify from real pods: 200 / 403 / blocked held, the bypass row not proven (no enforcer)
    assert summary_rows(out) == HELD, out
    assert "egress verification: 3/3 expectations hold, 1 not proven" in out
    assert "the procedure's outcomes held" in out
    report = ET.parse(tmp_path / "reports" / "egress-verify.xml").getroot()
    names = {case.get("name") for case in report.iter("testcase")}
    assert set(HELD) <= names, names
    # teardown ran last and removed what converge wrote
    assert task_result(out.split("run: 4/4", 1)[1], "Remove what the egress description owns") == (
        "changed"
    )


@pytest.mark.own_node
def test_make_teardown_on_the_embedded_control_plane(tmp_path: Path) -> None:
    proc = make("teardown", tmp_path)
    assert task_result(proc.stdout, "Remove what the egress description owns") in ("ok", "changed")
