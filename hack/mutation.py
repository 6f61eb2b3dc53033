"""Mutation testing of the collection's Python core with mutmut (make mutation).

mutmut copies the code it mutates into ``mutants/`` and imports it from there, so it
needs an ordinary package layout. This script stages one in a work directory:

    WORK/src/ansible_collections/meshguard/egress/plugins/module_utils/<MUTATE files>
    WORK/tests/unit/<TESTS files>
    WORK/setup.cfg                       # [mutmut] source_paths, test selection

runs ``mutmut run`` there on 2 workers, and prints the survivors, then one last line:

    mutation score: K/N killed (P%)

where N counts every mutant mutmut made (a mutant no test reaches, or that timed out,
counts as not killed). Extend the scope by adding files to MUTATE (and their unit tests
to TESTS). Options: ``--work DIR`` keeps the work directory (default: a temporary one),
``--max-children N`` (default 2), ``--show`` prints the diff of each survivor,
``--files F [F ...]`` mutates only those files of MUTATE (the others are copied unchanged and
every test of TESTS still runs), e.g.
``--files plugins/plugin_utils/{schema,description,render,plan}.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path("ansible_collections/meshguard/egress")

# the code under mutation, relative to the repository (one easy-to-extend list)
MUTATE = [
    "plugins/module_utils/_probe.py",
    "plugins/module_utils/_access_log.py",
    "plugins/module_utils/_pod_exec.py",
    "plugins/module_utils/_junit.py",
    "plugins/plugin_utils/schema.py",
    "plugins/plugin_utils/description.py",
    "plugins/plugin_utils/render.py",
    "plugins/plugin_utils/plan.py",
]
# code the mutated files or the tests import, copied as it is (egress_probe: the bypass-pod
# and service-account tests drive _pod_exec through the module)
SUPPORT = [
    "plugins/module_utils/_requirements.py",
    "plugins/module_utils/_k8s_auth.py",
    "plugins/modules/egress_probe.py",
]
# data the tests read, copied to the same place relative to the work directory
DATA = ["playbooks/inventory/example/group_vars/all/egress.yml"]
# the unit tests that run against each mutant (they import the code as
# ansible_collections.meshguard.egress.plugins.module_utils.*)
TESTS = [
    "tests/unit/test_probe.py",
    "tests/unit/test_access_log.py",
    "tests/unit/test_pod_exec.py",
    "tests/unit/test_junit.py",
    "tests/unit/test_probe_exact.py",
    "tests/unit/test_access_log_exact.py",
    "tests/unit/test_pod_exec_exact.py",
    "tests/unit/test_egress_probe_module.py",
    "tests/unit/test_junit_exact.py",
    "tests/unit/plugins/plugin_utils/test_description.py",
    "tests/unit/plugins/plugin_utils/test_render.py",
    "tests/unit/plugins/plugin_utils/test_plan.py",
    "tests/unit/plugins/plugin_utils/test_plan_exact.py",
    "tests/unit/plugins/plugin_utils/test_plan_verify_exact.py",
    "tests/unit/plugins/plugin_utils/test_description_verify_exact.py",
    "tests/unit/plugins/plugin_utils/test_render_exact.py",
    "tests/unit/plugins/plugin_utils/test_schema.py",
]
KILLED = ("killed",)


def stage(work: Path, mutate: list[str] | None = None) -> None:
    """Lay out the package and tests mutmut expects, and its setup.cfg (``mutate``: the files
    of MUTATE to mutate, default all; the rest of MUTATE is copied unchanged)."""
    mutate = MUTATE if mutate is None else mutate
    frozen_files = SUPPORT + [rel for rel in MUTATE if rel not in mutate]
    for rel in MUTATE + SUPPORT:
        target = work / "src" / PACKAGE / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, target)
    for rel in TESTS + DATA:
        target = work / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, target)
    sources = "\n".join(f"    src/{PACKAGE / rel}" for rel in MUTATE + SUPPORT)
    frozen = "\n".join(f"    src/{PACKAGE / rel}" for rel in frozen_files)
    (work / "setup.cfg").write_text(
        "[mutmut]\n"
        f"source_paths =\n{sources}\n"
        f"do_not_mutate =\n{frozen}\n"
        "also_copy =\n    playbooks\n"
        "pytest_add_cli_args_test_selection =\n    tests/unit\n"
        "pytest_add_cli_args =\n    -p\n    no:cacheprovider\n    -q\n"
        "use_git_change_detection = false\n"
    )
    (work / "pytest.ini").write_text("[pytest]\ntestpaths = tests\n")


def mutmut(work: Path, *args: str, capture: bool = False) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    # the render tests read Istio's schemas from ../shared (or MESHGUARD_ISTIO_FIXTURES)
    env.setdefault("MESHGUARD_ISTIO_FIXTURES", str(ROOT.parent / "shared" / "fixtures" / "istio"))
    return subprocess.run(
        [sys.executable, "-m", "mutmut", *args],
        cwd=work,
        env=env,
        check=False,
        text=True,
        capture_output=capture,
    )


def results(work: Path) -> dict[str, str]:
    """mutant name -> status, for every mutant."""
    done = mutmut(work, "results", "--all", "true", capture=True)
    if done.returncode != 0:
        raise SystemExit(f"mutmut results failed:\n{done.stdout}\n{done.stderr}")
    statuses = {}
    for line in done.stdout.splitlines():
        name, sep, status = line.strip().rpartition(": ")
        if sep and "__mutmut_" in name:
            statuses[name] = status
    return statuses


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, help="work directory to use and keep")
    parser.add_argument("--max-children", type=int, default=2)
    parser.add_argument("--show", action="store_true", help="print each survivor's diff")
    parser.add_argument("--files", nargs="+", choices=MUTATE, help="mutate only these files")
    opts = parser.parse_args()
    work = opts.work or Path(tempfile.mkdtemp(prefix="meshguard-mutation."))
    try:
        if opts.work and (work / "mutants").exists():
            shutil.rmtree(work / "mutants")  # a fresh run: code or tests may have changed
        work.mkdir(parents=True, exist_ok=True)
        stage(work, opts.files)
        run = mutmut(work, "run", "--max-children", str(opts.max_children))
        if run.returncode != 0:
            print(f"mutation: mutmut run exited {run.returncode}", file=sys.stderr)
            return run.returncode
        statuses = results(work)
        if not statuses:
            print("mutation: mutmut reported no mutants", file=sys.stderr)
            return 1
        survivors = sorted(name for name, status in statuses.items() if status not in KILLED)
        print(f"\n== {len(survivors)} mutants not killed")
        for name in survivors:
            print(f"  {name}: {statuses[name]}")
            if opts.show:
                print(mutmut(work, "show", name, capture=True).stdout)
        by_status: dict[str, int] = {}
        for status in statuses.values():
            by_status[status] = by_status.get(status, 0) + 1
        print("statuses: " + json.dumps(dict(sorted(by_status.items()))))
        killed, total = len(statuses) - len(survivors), len(statuses)
        print(f"mutation score: {killed}/{total} killed ({100 * killed / total:.1f}%)")
        return 0
    finally:
        if not opts.work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
