#!/usr/bin/env bash
# make run / make teardown: the procedure with the example inventory.
#   * With a cluster configured (K8S_AUTH_KUBECONFIG, KUBECONFIG or ~/.kube/config), it runs
#     the playbook given (default playbooks/site.yml) there, exactly as the README says.
#   * Without one, it starts the embedded test bed: a local control plane and a node that
#     runs real pods, in a private network namespace (hack/testbed.py start --node), plus the
#     stand-in data plane (hack/standin_mesh.py: real Envoys as gateway and sidecars, playing
#     istiod for the description). With no playbook given it does the whole procedure:
#     site.yml (converge), the client pods, verify.yml (200 / 403 / blocked from real pods,
#     the gateway's access log, a JUnit report in $MESHGUARD_REPORT_DIR or the current
#     directory), teardown.yml; then it stops the test bed. With a playbook given, it runs
#     only that one there.
# Extra arguments go to every ansible-playbook (e.g. -e egress_flavor=istio, --diff).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export PATH="$ROOT/.venv/bin:$PATH" ANSIBLE_CONFIG="$ROOT/ansible.cfg"
PLAYBOOK=""
if [[ $# -gt 0 && "$1" != -* ]]; then PLAYBOOK=$1; shift; fi

if [[ -n "${K8S_AUTH_KUBECONFIG:-}" || -n "${KUBECONFIG:-}" || -f "$HOME/.kube/config" ]]; then
  exec ansible-playbook "${PLAYBOOK:-playbooks/site.yml}" "$@"
fi

echo "run: no cluster configured; starting the embedded test bed (control plane and a node)"
TB=$(mktemp -d -t meshguard-run.XXXXXX)
cleanup() {
  python hack/standin_mesh.py stop --dir "$TB/standin" >/dev/null 2>&1 || true
  python hack/testbed.py stop --dir "$TB/testbed" >/dev/null 2>&1 || true
  rm -rf "$TB"
}
trap cleanup EXIT
python hack/testbed.py start --node --dir "$TB/testbed"
export K8S_AUTH_KUBECONFIG="$TB/testbed/kubeconfig"
MESHGUARD_GATEWAY_CHART=$(bash hack/chart.sh "$TB/charts")
export MESHGUARD_GATEWAY_CHART
export MESHGUARD_GATEWAY_SCHEMA="$MESHGUARD_GATEWAY_CHART/values.schema.json"
[[ -f "$MESHGUARD_GATEWAY_SCHEMA" ]] || MESHGUARD_GATEWAY_SCHEMA=""
MESHGUARD_CURL_IMAGE=$(python -c 'import sys; sys.path.insert(0, "hack"); import images; print(images.image_names()["curl"])')
export MESHGUARD_CURL_IMAGE
export MESHGUARD_REPORT_DIR="${MESHGUARD_REPORT_DIR:-$PWD}"
VARS=(-e @hack/embedded-vars.yml -e @hack/embedded-node-vars.yml)

echo "run: starting the stand-in data plane for the description's plan"
ansible-playbook hack/standin-plan.yml "${VARS[@]}" -e standin_plan_path="$TB/plan.json" "$@" >/dev/null
python hack/standin_mesh.py start --dir "$TB/standin" --kubeconfig "$K8S_AUTH_KUBECONFIG" --plan "$TB/plan.json"

if [[ -n "$PLAYBOOK" ]]; then
  ansible-playbook "$PLAYBOOK" "${VARS[@]}" "$@"
  exit
fi
echo "run: 1/4 converge (playbooks/site.yml)"
ansible-playbook playbooks/site.yml "${VARS[@]}" "$@"
echo "run: 2/4 client pods (bookinfo productpage and reviews, with sidecars)"
python hack/standin_mesh.py clients --dir "$TB/standin"
echo "run: 3/4 verify from the pods (playbooks/verify.yml)"
verified=0
ansible-playbook playbooks/verify.yml "${VARS[@]}" "$@" || verified=$?
echo "run: 4/4 clean up (playbooks/teardown.yml)"
ansible-playbook playbooks/teardown.yml "${VARS[@]}" "$@"
if [[ $verified -ne 0 ]]; then
  echo "run: verification FAILED (report: $MESHGUARD_REPORT_DIR/egress-verify.xml)" >&2
  exit "$verified"
fi
echo "run: done; the procedure's outcomes held (report: $MESHGUARD_REPORT_DIR/egress-verify.xml)"
