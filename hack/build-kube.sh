#!/usr/bin/env bash
# Build the local test bed's Kubernetes 1.20.2 binaries from Debian bookworm's `kubernetes`
# source package, offline, and cache them:
#   control plane: kube-apiserver, kube-controller-manager
#   node:          kubelet, kube-scheduler, kube-proxy, and the sandbox ("pause") binary
#
#   hack/build-kube.sh            # builds what is missing from the cache, once
#
# Only missing binaries are built (one `make` for all of them), so a cache holding only the
# control plane stays valid and gains the node binaries. The node binaries are built with
# `-tags=providerless`, and the kubelet without the in-tree AWS/Azure/GCP image credential
# providers (their blank imports in cmd/kubelet/app are removed first): in 1.20
# they are linked even with providerless and make the kubelet call the cloud metadata
# address 169.254.169.254 at start; nor cAdvisor's cloud-info providers (kubelet.recipe
# records this; a kubelet of an older recipe is rebuilt). `pause` is
# build/pause/linux/pause.c, gcc -Os -static.
#
# Cache: ${MESHGUARD_CACHE:-~/.cache/meshguard-egress}/kube/bin/
# Needs: a Debian (bookworm) host with apt, as root (or sudo). Elsewhere, put a
# kube-apiserver/kube-controller-manager of your own in that folder, or set
# MESHGUARD_KUBECONFIG to test against an existing cluster (see README).
set -euo pipefail

CACHE="${MESHGUARD_CACHE:-$HOME/.cache/meshguard-egress}"
OUT="$CACHE/kube/bin"
WORK="$CACHE/kube/build"
GO_BINARIES=(kube-apiserver kube-controller-manager kubelet kube-scheduler kube-proxy)
# Bumped when the kubelet's recipe changes; a cached kubelet of another recipe is rebuilt.
KUBELET_RECIPE="no-cloud-credential-providers,no-cadvisor-cloudinfo"
missing() {
  local name
  for name in "${GO_BINARIES[@]}" pause; do
    if [[ ! -x "$OUT/$name" ]]; then echo "$name"
    elif [[ $name == kubelet && "$(cat "$OUT/kubelet.recipe" 2>/dev/null)" != "$KUBELET_RECIPE" ]]; then
      echo "$name"
    fi
  done
}
if [[ -z "$(missing)" ]]; then echo "build-kube: cached binaries in $OUT"; exit 0; fi
mkdir -p "$CACHE/kube"
exec 9>"$CACHE/kube/.lock"
flock 9   # one build at a time; a second caller waits and then reuses the result
mapfile -t TODO < <(missing)
if ((${#TODO[@]} == 0)); then echo "build-kube: cached binaries in $OUT"; exit 0; fi
echo "build-kube: to build: ${TODO[*]}"

if ! command -v apt-get >/dev/null 2>&1 || ! grep -qs bookworm /etc/os-release; then
  cat >&2 <<MSG
build-kube: this host is not Debian bookworm, so the local control plane cannot be
built from Debian's 'kubernetes' source package here. Either
  * copy ${TODO[*]} (v1.20+) into $OUT, or
  * export MESHGUARD_KUBECONFIG=/path/to/kubeconfig to run the tests against a real cluster.
MSG
  exit 3
fi

SUDO=""
[[ $(id -u) -eq 0 ]] || SUDO="sudo"

echo "build-kube: installing build dependencies from Debian"
$SUDO apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  golang-go rsync dpkg-dev golang-github-modern-go-reflect2-dev etcd-server make gcc libc6-dev \
  >/dev/null

mkdir -p "$WORK/apt/lists/partial" "$OUT"
cat > "$WORK/apt/sources.list" <<SRC
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian-security bookworm-security main
SRC
APTOPTS=(-o "Dir::Etc::sourcelist=$WORK/apt/sources.list" -o "Dir::Etc::sourceparts=-"
         -o "Dir::State::Lists=$WORK/apt/lists" -o "APT::Get::List-Cleanup=0")
apt-get "${APTOPTS[@]}" update -qq
cd "$WORK"
rm -rf src && mkdir src && cd src
echo "build-kube: fetching and unpacking the kubernetes source package"
apt-get "${APTOPTS[@]}" source -qq kubernetes >/dev/null
TREE=$(find . -maxdepth 1 -mindepth 1 -type d -name 'kubernetes-*' | head -n1)
[[ -n "$TREE" ]] || { echo "build-kube: source tree not found" >&2; exit 1; }
TREE=$(cd "$TREE" && pwd)

# reflect2 1.0.1 crashes under Go >= 1.18; use Debian's 1.0.2.
R2="$TREE/vendor/github.com/modern-go/reflect2"
rm -rf "$R2" && mkdir -p "$R2"
cp -a /usr/share/gocode/src/github.com/modern-go/reflect2/. "$R2/"
find "$R2" -name '*_test.go' -delete

# The kubelet must not link the cloud credential providers (see the header): blank imports
# in cmd/kubelet/app/plugins.go (aws, azure, gcp) and in options/globalflags.go (azure, gcp,
# "to register their flags"; with providerless the kubelet looks none of those flags up).
# Nor cAdvisor's cloud-info providers (pkg/kubelet/cadvisor/cadvisor_linux.go), which ask
# the metadata address for the instance type when the machine looks like a cloud VM.
for f in "$TREE/cmd/kubelet/app/plugins.go" "$TREE/cmd/kubelet/app/options/globalflags.go"; do
  sed -i -E '\#^\s*_ "k8s.io/kubernetes/pkg/credentialprovider/(aws|azure|gcp)"$#d' "$f"
done
sed -i -E '\#^\s*_ "github.com/google/cadvisor/utils/cloudinfo/(aws|azure|gce)"$#d' \
  "$TREE/pkg/kubelet/cadvisor/cadvisor_linux.go"
if grep -rqE '"(k8s.io/kubernetes/pkg/credentialprovider/(aws|azure|gcp)|github.com/google/cadvisor/utils/cloudinfo/(aws|azure|gce))"' \
    --include='*.go' --exclude='*_test.go' "$TREE/cmd" "$TREE/pkg/kubelet"; then
  echo "build-kube: could not remove the cloud providers from the kubelet" >&2; exit 1
fi

WHAT=()
for name in "${TODO[@]}"; do [[ $name == pause ]] || WHAT+=("cmd/$name"); done
if [[ " ${TODO[*]} " == *" pause "* ]]; then
  gcc -Os -static -o "$WORK/pause" "$TREE/build/pause/linux/pause.c"
  strip "$WORK/pause"
fi

export GOPATH="$WORK/gopath"
mkdir -p "$GOPATH/src/k8s.io"
ln -sfn "$TREE" "$GOPATH/src/k8s.io/kubernetes"
cd "$GOPATH/src/k8s.io/kubernetes"
if ((${#WHAT[@]})); then
  echo "build-kube: compiling ${WHAT[*]} (a few minutes on 2 cores)"
  # -tags last: hack/lib/golang.sh takes the tags from GOFLAGS up to the next '-'
  GOFLAGS="-mod=vendor -tags=providerless" GOPROXY=off CGO_ENABLED=0 GO111MODULE=on \
    GOCACHE="$WORK/gocache" make WHAT="${WHAT[*]}" >"$WORK/make.log" 2>&1 || {
      tail -n 40 "$WORK/make.log" >&2; exit 1; }
fi
for name in "${TODO[@]}"; do
  if [[ $name == pause ]]; then
    install -m 0755 "$WORK/pause" "$OUT/pause"
  else
    BIN=$(find "$TREE/_output" -type f -name "$name" -path '*bin*' | head -n1)
    [[ -n "$BIN" ]] || { echo "build-kube: $name was not built" >&2; exit 1; }
    if [[ $name == kubelet ]] &&
      grep -qaE 'pkg/credentialprovider/(aws|azure|gcp)|cadvisor/utils/cloudinfo/(aws|azure|gce)' "$BIN"; then
      echo "build-kube: the kubelet still links a cloud provider" >&2; exit 1
    fi
    install -m 0755 "$BIN" "$OUT/$name"
    [[ $name != kubelet ]] || echo "$KUBELET_RECIPE" > "$OUT/kubelet.recipe"
    "$OUT/$name" --version
  fi
done
rm -rf "$WORK"
echo "build-kube: done, binaries in $OUT"
