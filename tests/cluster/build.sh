#!/usr/bin/env bash
# Build the real Kubernetes control-plane binaries used by the cluster tests.
#
#   tests/cluster/build.sh            # build (or reuse) binaries, print the bin dir
#
# Produces, under ${MODELDEPLOY_K8S_CACHE:-$HOME/.cache/modeldeploy/k8s}/<k8s-version>/bin/:
#   kube-apiserver kube-controller-manager kube-scheduler etcd kubelet
#   (kubelet: the real node of tests/node; it needs the k8s.io/cri-streaming staging module,
#   picked up like every other staging module k8s.io/kubernetes requires)
#
# How: a throw-away Go module that `require`s k8s.io/kubernetes at K8S_VERSION and
# `replace`s every k8s.io/<staging repo> it requires with v0.<minor>.<patch> (the
# staging repos are published as separate modules). etcd is built from
# go.etcd.io/etcd/server/v3 at the version k8s.io/kubernetes itself requires, in the
# same module, so it shares the Go build cache and the dependency graph.
#
# Idempotent: when all binaries exist and a stamp file matches the version, the script
# prints the bin dir and exits immediately; only missing binaries are (re)built.
#
# Environment knobs:
#   MODELDEPLOY_K8S_VERSION   default v1.37.2
#   MODELDEPLOY_K8S_CACHE     default $HOME/.cache/modeldeploy/k8s
#   MODELDEPLOY_BUILD_P       go build -p (parallel packages), default: nproc
set -euo pipefail

K8S_VERSION="${MODELDEPLOY_K8S_VERSION:-v1.37.2}"
CACHE_ROOT="${MODELDEPLOY_K8S_CACHE:-$HOME/.cache/modeldeploy/k8s}"
DEST="$CACHE_ROOT/$K8S_VERSION"
BIN="$DEST/bin"
STAMP="$BIN/.stamp"
BINARIES=(kube-apiserver kube-controller-manager kube-scheduler etcd kubelet)

have_all() {
    [ -f "$STAMP" ] || return 1
    [ "$(cat "$STAMP")" = "$K8S_VERSION" ] || return 1
    for b in "${BINARIES[@]}"; do [ -x "$BIN/$b" ] || return 1; done
}

if have_all; then
    echo "$BIN"
    exit 0
fi

if ! command -v go >/dev/null 2>&1; then
    echo "build.sh: the Go toolchain ('go') is not on PATH; it is needed to build kube-apiserver etc. (Go >= 1.26)" >&2
    exit 2
fi

log() { echo "[build.sh $(date +%H:%M:%S)] $*" >&2; }

start=$(date +%s)
mkdir -p "$BIN"
# Serialise concurrent builds (e.g. two pytest sessions) on the same cache dir.
exec 9>"$DEST/.lock"
flock 9
if have_all; then echo "$BIN"; exit 0; fi

WORK="$DEST/src"
mkdir -p "$WORK"
cd "$WORK"

export CGO_ENABLED=0
export GOFLAGS="${GOFLAGS:-} -mod=mod -buildvcs=false"
# Use the installed toolchain; never silently download another one.
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"

minor_patch="${K8S_VERSION#v1.}"            # 37.2
STAGING_VERSION="v0.${minor_patch}"

log "resolving k8s.io/kubernetes@$K8S_VERSION"
k8s_gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | python3 -c '
import json, sys
d = json.load(sys.stdin)
if not d.get("GoMod"):
    sys.exit("build.sh: cannot fetch k8s.io/kubernetes@" + sys.argv[1] + " from the Go module proxy: " + d.get("Error", "?"))
print(d["GoMod"])' "$K8S_VERSION")

# Staging modules that k8s.io/kubernetes requires (replaced with ./staging/... upstream).
mapfile -t STAGING < <(python3 - "$k8s_gomod" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
replaced = set(re.findall(r"^\s*(k8s\.io/[\w.-]+)\s*=>\s*\./staging/", text, re.M))
required = set()
for block in re.findall(r"^require\s*\((.*?)^\)", text, re.M | re.S):
    for line in block.splitlines():
        parts = line.split()
        if parts and parts[0] in replaced:
            required.add(parts[0])
for line in re.findall(r"^require\s+(k8s\.io/\S+)\s", text, re.M):
    if line in replaced:
        required.add(line)
print("\n".join(sorted(required)))
EOF
)
etcd_version=$(grep -E '^\s+go\.etcd\.io/etcd/server/v3 ' "$k8s_gomod" | awk '{print $2}')
go_directive=$(grep -E '^go ' "$k8s_gomod" | awk '{print $2}')

{
    echo "module modeldeploy.test/k8sbuild"
    echo
    echo "go $go_directive"
    echo
    echo "require ("
    echo "	k8s.io/kubernetes $K8S_VERSION"
    echo "	go.etcd.io/etcd/server/v3 $etcd_version"
    echo ")"
    echo
    echo "replace ("
    for m in "${STAGING[@]}"; do echo "	$m => $m $STAGING_VERSION"; done
    echo ")"
} > go.mod.new
if ! cmp -s go.mod.new go.mod 2>/dev/null; then
    mv go.mod.new go.mod
    rm -f go.sum
else
    rm -f go.mod.new
fi

# A file that imports the main packages keeps `go mod tidy` honest.
cat > tools.go <<'EOF'
//go:build tools

package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
EOF

log "go mod tidy (k8s $K8S_VERSION, staging $STAGING_VERSION, etcd $etcd_version)"
go mod tidy -e 2>&1 | grep -v '^go: finding' >&2 || true

LDFLAGS="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=${minor_patch%%.*} -X k8s.io/component-base/version.gitTreeState=clean -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION"
PFLAG=(-p "${MODELDEPLOY_BUILD_P:-$(nproc)}")

missing=()
for b in kube-apiserver kube-controller-manager kube-scheduler kubelet; do
    [ -x "$BIN/$b" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$K8S_VERSION" ] || missing+=("k8s.io/kubernetes/cmd/$b")
done
if [ "${#missing[@]}" -gt 0 ]; then
    log "building ${missing[*]##*/}"
    go build "${PFLAG[@]}" -trimpath -ldflags="$LDFLAGS" -o "$BIN/" "${missing[@]}"
fi
if ! { [ -x "$BIN/etcd" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$K8S_VERSION" ]; }; then
    log "building etcd $etcd_version"
    go build "${PFLAG[@]}" -trimpath -ldflags="-s -w" -o "$BIN/etcd" go.etcd.io/etcd/server/v3
fi

echo "$K8S_VERSION" > "$STAMP"
echo "etcd $etcd_version" > "$BIN/.etcd-version"
log "done in $(( $(date +%s) - start ))s"
echo "$BIN"
