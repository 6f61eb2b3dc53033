#!/usr/bin/env bash
# The tested ansible-core support matrix: one virtualenv per version, from PyPI, cached
# under .venv-matrix/<version>/ (tests/integration/test_ansible_matrix.py runs the shipped
# playbooks with each). kubernetes.core comes from .venv/collections (make setup), helm
# from .venv/bin; each venv gets the runtime requirements at the versions the tests pin.
#
#   bash hack/ansible-matrix.sh          # create what is missing; print "<version> <venv>"
#   bash hack/ansible-matrix.sh --list   # only print the versions
#
# Keep meta/runtime.yml requires_ansible and the README's "Tested with" in step with this
# list. 2.18 is the oldest ansible-core still maintained that runs on Python 3.11 (2.16
# and 2.17 are end of life); 2.19 is the newest that does (2.20 needs Python 3.12).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MATRIX=(2.18.19 2.19.14)
PY="${PYTHON:-python3}"

if [[ "${1:-}" == "--list" ]]; then
  printf '%s\n' "${MATRIX[@]}"
  exit 0
fi

# runtime requirements pinned as requirements-dev.txt pins them
mapfile -t pins < <(grep -E '^(kubernetes|jsonschema)==' "$ROOT/requirements-dev.txt")
want_extra=$(printf '%s\n' "${pins[@]}" | cat - "$ROOT/requirements.txt" | sha256sum | cut -d' ' -f1)
for version in "${MATRIX[@]}"; do
  venv="$ROOT/.venv-matrix/$version"
  stamp="$venv/.meshguard-matrix"
  want="ansible-core==$version $want_extra"
  if [[ ! -x "$venv/bin/ansible-playbook" || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
    echo "ansible-matrix: creating $venv (ansible-core $version)" >&2
    rm -rf "$venv"
    "$PY" -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check \
      "ansible-core==$version" -r "$ROOT/requirements.txt" "${pins[@]}" >&2
    got=$("$venv/bin/python" -c 'import ansible.release as r; print(r.__version__)')
    [[ "$got" == "$version" ]] || { echo "ansible-matrix: $venv has ansible-core $got" >&2; exit 1; }
    echo "$want" > "$stamp"
  fi
  echo "$version $venv"
done
