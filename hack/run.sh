#!/usr/bin/env bash
# Run a playbook (default playbooks/site.yml) with the example inventory.
#   * With a cluster configured (K8S_AUTH_KUBECONFIG, KUBECONFIG or ~/.kube/config), it runs there.
#   * Without one, it starts the embedded local control plane (hack/testbed.py), runs the
#     playbook there (configuration only: no kubelet, so no pods and no traffic checks),
#     and stops it afterwards.
# Extra arguments go to ansible-playbook (e.g. -e egress_flavor=istio, --check --diff).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export PATH="$ROOT/.venv/bin:$PATH" ANSIBLE_CONFIG="$ROOT/ansible.cfg"
PLAYBOOK="${1:-playbooks/site.yml}"; shift || true

if [[ -n "${K8S_AUTH_KUBECONFIG:-}" || -n "${KUBECONFIG:-}" || -f "$HOME/.kube/config" ]]; then
  exec ansible-playbook "$PLAYBOOK" "$@"
fi

echo "run: no cluster configured; starting the embedded local control plane (configuration only, pods never run)"
TB=$(mktemp -d -t meshguard-run.XXXXXX)
trap 'python hack/testbed.py stop --dir "$TB" >/dev/null 2>&1 || true; rm -rf "$TB"' EXIT
python hack/testbed.py start --dir "$TB"
export K8S_AUTH_KUBECONFIG="$TB/kubeconfig"
export MESHGUARD_GATEWAY_CHART
MESHGUARD_GATEWAY_CHART=$(bash hack/chart.sh "$TB/charts")
export MESHGUARD_GATEWAY_SCHEMA="$MESHGUARD_GATEWAY_CHART/values.schema.json"
[[ -f "$MESHGUARD_GATEWAY_SCHEMA" ]] || MESHGUARD_GATEWAY_SCHEMA=""
# what a mesh install would already have: istio-system and the bookinfo namespace
ansible-playbook molecule/shared/prepare.yml
ansible-playbook "$PLAYBOOK" -e @hack/embedded-vars.yml "$@"
echo "run: done on the embedded control plane; stopping it"
