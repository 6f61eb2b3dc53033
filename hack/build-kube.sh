#!/usr/bin/env bash
# Build kube-apiserver and kube-controller-manager (Kubernetes 1.20.2) from Debian
# bookworm's `kubernetes` source package, offline, and cache them.
#
#   hack/build-kube.sh            # builds once, then reuses the cache
#
# Cache: ${MESHGUARD_CACHE:-~/.cache/meshguard-egress}/kube/bin/{kube-apiserver,kube-controller-manager}
# Needs: a Debian (bookworm) host with apt, as root (or sudo). Elsewhere, put a
# kube-apiserver/kube-controller-manager of your own in that folder, or set
# MESHGUARD_KUBECONFIG to test against an existing cluster (see README).
set -euo pipefail

CACHE="${MESHGUARD_CACHE:-$HOME/.cache/meshguard-egress}"
OUT="$CACHE/kube/bin"
WORK="$CACHE/kube/build"
cached() { [[ -x "$OUT/kube-apiserver" && -x "$OUT/kube-controller-manager" ]]; }
if cached; then echo "build-kube: cached binaries in $OUT"; exit 0; fi
mkdir -p "$CACHE/kube"
exec 9>"$CACHE/kube/.lock"
flock 9   # one build at a time; a second caller waits and then reuses the result
if cached; then echo "build-kube: cached binaries in $OUT"; exit 0; fi

if ! command -v apt-get >/dev/null 2>&1 || ! grep -qs bookworm /etc/os-release; then
  cat >&2 <<MSG
build-kube: this host is not Debian bookworm, so the local control plane cannot be
built from Debian's 'kubernetes' source package here. Either
  * copy kube-apiserver and kube-controller-manager (v1.20+) into $OUT, or
  * export MESHGUARD_KUBECONFIG=/path/to/kubeconfig to run the tests against a real cluster.
MSG
  exit 3
fi

SUDO=""
[[ $(id -u) -eq 0 ]] || SUDO="sudo"

echo "build-kube: installing build dependencies from Debian"
$SUDO apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  golang-go rsync dpkg-dev golang-github-modern-go-reflect2-dev etcd-server make >/dev/null

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

export GOPATH="$WORK/gopath"
mkdir -p "$GOPATH/src/k8s.io"
ln -sfn "$TREE" "$GOPATH/src/k8s.io/kubernetes"
cd "$GOPATH/src/k8s.io/kubernetes"
echo "build-kube: compiling (a few minutes on 2 cores)"
GOFLAGS=-mod=vendor GOPROXY=off CGO_ENABLED=0 GO111MODULE=on GOCACHE="$WORK/gocache" \
  make WHAT="cmd/kube-apiserver cmd/kube-controller-manager" >"$WORK/make.log" 2>&1 || {
    tail -n 40 "$WORK/make.log" >&2; exit 1; }
BIN=$(find "$TREE/_output" -type f -name kube-apiserver -path '*bin*' | head -n1)
install -m 0755 "$BIN" "$OUT/kube-apiserver"
install -m 0755 "$(dirname "$BIN")/kube-controller-manager" "$OUT/kube-controller-manager"
"$OUT/kube-apiserver" --version
rm -rf "$WORK"
echo "build-kube: done, binaries in $OUT"
