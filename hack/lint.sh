#!/usr/bin/env bash
# Static checks for meshguard.egress: ruff (lint + format) on the Python code and
# ansible-lint with the production profile (.ansible-lint) on the Ansible content.
# Every check runs even when an earlier one fails; the exit code is non-zero if any failed.
# `ansible-test sanity` is separate (hack/sanity.sh) because it builds its own venvs.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV="$ROOT/.venv"
cd "$ROOT" || exit 2
export PATH="$VENV/bin:$PATH"

failed=()
run() {
  local name=$1
  shift
  echo "lint: $name"
  if ! "$@"; then failed+=("$name"); fi
}

run "ruff check" ruff check --output-format concise .
run "ruff format --check" ruff format --check --output-format concise .
# ANSIBLE_COLLECTIONS_PATH: ansible.cfg's relative collections_path resolves against the
# current directory; make it absolute so ansible-lint's own subprocesses see kubernetes.core.
run "ansible-lint (production)" env ANSIBLE_COLLECTIONS_PATH="$VENV/collections" \
  ansible-lint --nocolor -c .ansible-lint

if ((${#failed[@]})); then
  echo "lint: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "lint: all checks passed"
