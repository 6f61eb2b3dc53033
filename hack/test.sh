#!/usr/bin/env bash
# The project's test command (make test): lint and sanity gates, then pytest (unit tests,
# integration tests against the real local control plane and a real Envoy, and the
# molecule scenarios). With MESHGUARD_KUBECONFIG set, integration tests and molecule run
# against that cluster instead of the local control plane.
# Without it, a second control plane with a node that runs real pods (hack/testbed.py
# start --node) starts in the background while lint and sanity run; the node tests
# (tests/integration/test_node.py, test_verify_node.py) use it via MESHGUARD_NODE_TESTBED_DIR.
# MESHGUARD_NO_NODE=1 skips starting it (the node tests then start their own).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export PATH="$ROOT/.venv/bin:$PATH" ANSIBLE_CONFIG="$ROOT/ansible.cfg"
export ANSIBLE_COLLECTIONS_PATH="$ROOT/.venv/collections"
[[ -x .venv/bin/python ]] || { echo "test: run 'make setup' first" >&2; exit 2; }

WORK=$(mktemp -d -t meshguard-test.XXXXXX)
NODE_PID=""
cleanup() {
  if [[ -n "$NODE_PID" ]]; then wait "$NODE_PID" 2>/dev/null || true; fi
  if [[ -d "$WORK/node-testbed" ]]; then
    python hack/testbed.py stop --dir "$WORK/node-testbed" >/dev/null 2>&1 || true
  fi
  if [[ -n "${MESHGUARD_TESTBED_DIR:-}" && "${MESHGUARD_TESTBED_DIR}" == "$WORK"/* ]]; then
    python hack/testbed.py stop --dir "$MESHGUARD_TESTBED_DIR" >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

if [[ -z "${MESHGUARD_KUBECONFIG:-}" && -z "${MESHGUARD_NODE_TESTBED_DIR:-}" && -z "${MESHGUARD_NO_NODE:-}" ]]; then
  echo "== starting the local node in the background (log: $WORK/node-testbed.log)"
  python hack/testbed.py start --node --dir "$WORK/node-testbed" >"$WORK/node-testbed.log" 2>&1 &
  NODE_PID=$!
fi

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

if [[ -n "$NODE_PID" ]]; then
  if wait "$NODE_PID"; then
    cat "$WORK/node-testbed.log"
    export MESHGUARD_NODE_TESTBED_DIR="$WORK/node-testbed"
  else
    cat "$WORK/node-testbed.log" >&2
    echo "test: the local node did not start" >&2
    exit 1
  fi
  NODE_PID=""
fi

echo "== pytest (unit, integration, molecule)"
# Tests that start a node of their own (marker own_node) run afterwards, once the shared node
# is stopped: two kubelets on one machine garbage-collect each other's /var/log/pods entries.
rc=0
python -m pytest tests -p no:cacheprovider -rs -m "not own_node" "$@" || rc=$?
if [[ -d "$WORK/node-testbed" ]]; then
  python hack/testbed.py stop --dir "$WORK/node-testbed" >/dev/null 2>&1 || true
fi
echo "== pytest (tests that start their own node)"
own=0
env -u MESHGUARD_NODE_TESTBED_DIR python -m pytest tests -p no:cacheprovider -rs -m own_node "$@" || own=$?
if [[ $own -eq 5 ]]; then own=0; fi  # none selected (e.g. a -k that matches none of them)
if [[ $rc -eq 5 ]]; then rc=0; fi
[[ $rc -eq 0 && $own -eq 0 ]]
