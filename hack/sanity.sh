#!/usr/bin/env bash
# Run `ansible-test sanity` on meshguard.egress without Docker.
#
# ansible-test wants the collection at .../ansible_collections/<namespace>/<name>, so the
# files git knows about (tracked, plus untracked ones that are not ignored) are copied into
# a temporary tree, with kubernetes.core (the collection's dependency, from
# .venv/collections) beside it. `--venv` makes ansible-test build one virtualenv per test
# from PyPI (cached under ~/.ansible/test/venv, so only the first run downloads).
# The ignore file tests/sanity/ignore-<version>.txt must stay empty: fix findings instead.
#
# Usage: bash hack/sanity.sh [extra ansible-test sanity arguments, e.g. --test pep8]
# Environment: SANITY_PYTHON (default 3.11), MESHGUARD_SANITY_KEEP=1 keeps the temp tree.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV="$ROOT/.venv"
PYVER="${SANITY_PYTHON:-3.11}"
DEPS="$VENV/collections/ansible_collections"

if [[ ! -x "$VENV/bin/ansible-test" ]]; then
  echo "sanity: $VENV/bin/ansible-test missing; run 'make setup' first" >&2
  exit 2
fi
if [[ ! -f "$DEPS/kubernetes/core/MANIFEST.json" ]]; then
  echo "sanity: kubernetes.core missing from $DEPS; run 'make setup' first" >&2
  exit 2
fi

# ansible-test --venv bootstraps pip into each empty test venv with a get-pip.py script that
# it downloads from ci-files.testing.ansible.com, a host that is not reachable from every
# machine (PyPI is). When that script is not cached yet, cache a stand-in that does the same
# job: run pip from the wheel the interpreter's own `ensurepip` bundles, and let it install
# the pinned pip that ansible-test asked for from PyPI.
PIP_VERSION=$("$VENV/bin/python" - "$PYVER" <<'PYEOF'
import sys, types
from ansible_test._internal.python_requirements import get_venv_packages
print(get_venv_packages(types.SimpleNamespace(version=sys.argv[1]))["pip"])
PYEOF
) || PIP_VERSION=""
GET_PIP="$HOME/.ansible/test/cache/get_pip_${PIP_VERSION//./_}.py"
if [[ -n "$PIP_VERSION" && ! -f "$GET_PIP" ]]; then
  echo "sanity: caching a get-pip stand-in for pip $PIP_VERSION at $GET_PIP" >&2
  mkdir -p "$(dirname "$GET_PIP")"
  cat > "$GET_PIP" <<'PYEOF'
"""meshguard.egress hack/sanity.sh: stand-in for get-pip.py using ensurepip's bundled pip."""
import ensurepip
import glob
import os
import sys

_WHEEL_DIRS = (os.path.join(os.path.dirname(ensurepip.__file__), "_bundled"), "/usr/share/python-wheels")
_wheels = sorted(w for d in _WHEEL_DIRS for w in glob.glob(os.path.join(d, "pip-*.whl")))
if not _wheels:
    sys.exit("get-pip stand-in: no bundled pip wheel found in %s" % (_WHEEL_DIRS,))
sys.path.insert(0, _wheels[-1])
from pip._internal.cli.main import main  # noqa: E402

_args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.exit(main(["install", "--upgrade", "--force-reinstall", *_args]))
PYEOF
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/meshguard-sanity.XXXXXX")
cleanup() { if [[ "${MESHGUARD_SANITY_KEEP:-0}" != 1 ]]; then rm -rf "$WORK"; fi; }
trap cleanup EXIT

DEST="$WORK/ansible_collections/meshguard/egress"
mkdir -p "$DEST" "$WORK/ansible_collections/kubernetes"
# --ignore-failed-read: a file deleted but still tracked must not abort the copy.
(cd "$ROOT" && git ls-files -co --exclude-standard -z \
  | tar --null --ignore-failed-read -T - -cf - 2>/dev/null) | tar -xf - -C "$DEST"
cp -a "$DEPS/kubernetes/core" "$WORK/ansible_collections/kubernetes/core"

# Tests that cannot run on this kind of machine are skipped explicitly, each with a reason:
skips=()
# The shellcheck test needs the `shellcheck` binary (Debian package `shellcheck`), not a PyPI one.
if ! command -v shellcheck >/dev/null 2>&1; then
  echo "sanity: shellcheck not installed (apt-get install shellcheck); skipping that test" >&2
  skips+=(--skip-test shellcheck)
fi
# pslint: needs PowerShell, which no registry reachable here ships; the collection has no
# PowerShell files, so the test would have nothing to check anyway.
skips+=(--skip-test pslint)

cd "$DEST"
PATH="$VENV/bin:$PATH" "$VENV/bin/ansible-test" sanity --venv --python "$PYVER" \
  --color no "${skips[@]}" "$@"
