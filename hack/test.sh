#!/usr/bin/env bash
# The project's test command (make test): lint and sanity gates, then pytest (unit tests,
# integration tests against the real local control plane and a real Envoy, and the
# molecule scenarios). With MESHGUARD_KUBECONFIG set, integration tests and molecule run
# against that cluster instead of the local control plane.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export PATH="$ROOT/.venv/bin:$PATH" ANSIBLE_CONFIG="$ROOT/ansible.cfg"
export ANSIBLE_COLLECTIONS_PATH="$ROOT/.venv/collections"
[[ -x .venv/bin/python ]] || { echo "test: run 'make setup' first" >&2; exit 2; }

WORK=$(mktemp -d -t meshguard-test.XXXXXX)
cleanup() {
  if [[ -n "${MESHGUARD_TESTBED_DIR:-}" && "${MESHGUARD_TESTBED_DIR}" == "$WORK"/* ]]; then
    python hack/testbed.py stop --dir "$MESHGUARD_TESTBED_DIR" >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "== lint (ruff, ansible-lint production profile)"
bash hack/lint.sh
echo "== ansible-test sanity"
bash hack/sanity.sh

if [[ -z "${MESHGUARD_KUBECONFIG:-}" ]]; then
  echo "== starting the local control plane"
  export MESHGUARD_TESTBED_DIR="$WORK/testbed"
  python hack/testbed.py start --dir "$MESHGUARD_TESTBED_DIR"
fi
MESHGUARD_GATEWAY_CHART=$(bash hack/chart.sh "$WORK/charts")
export MESHGUARD_GATEWAY_CHART
export MESHGUARD_GATEWAY_SCHEMA="$MESHGUARD_GATEWAY_CHART/values.schema.json"
[[ -f "$MESHGUARD_GATEWAY_SCHEMA" ]] || MESHGUARD_GATEWAY_SCHEMA=""

echo "== pytest (unit, integration, molecule)"
python -m pytest tests -p no:cacheprovider -rs "$@"
