#!/usr/bin/env bash
# Build helm from its Go module and cache the binary (no helm package exists in the
# registries this project may use; see /work/shared/ENVIRONMENT.md).
#
#   tests/e2e/build_helm.sh        # build (or reuse) helm, print the binary's path
#
# Produces ${MODELDEPLOY_HELM_CACHE:-$HOME/.cache/modeldeploy/helm}/<version>/helm.
# helm.sh/helm/v3 has no replace directives, so `go install module@version` works.
# Idempotent: an existing binary whose stamp matches the version is reused at once.
#
# Environment knobs:
#   MODELDEPLOY_HELM_VERSION   default v3.22.0
#   MODELDEPLOY_HELM_CACHE     default $HOME/.cache/modeldeploy/helm
#   MODELDEPLOY_BUILD_P        go build -p (parallel packages), default: nproc
set -euo pipefail

HELM_VERSION="${MODELDEPLOY_HELM_VERSION:-v3.22.0}"
CACHE_ROOT="${MODELDEPLOY_HELM_CACHE:-$HOME/.cache/modeldeploy/helm}"
DEST="$CACHE_ROOT/$HELM_VERSION"
HELM="$DEST/helm"
STAMP="$DEST/.stamp"

have() { [ -x "$HELM" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$HELM_VERSION" ]; }

if have; then echo "$HELM"; exit 0; fi

if ! command -v go >/dev/null 2>&1; then
    echo "build_helm.sh: the Go toolchain ('go') is not on PATH; it is needed to build helm $HELM_VERSION (Go >= 1.26)" >&2
    exit 2
fi

major="${HELM_VERSION%%.*}"                 # v3
MODULE="helm.sh/helm/$major"
log() { echo "[build_helm.sh $(date +%H:%M:%S)] $*" >&2; }

mkdir -p "$DEST"
exec 9>"$DEST/.lock"
flock 9                                     # two pytest sessions: one build
if have; then echo "$HELM"; exit 0; fi

start=$(date +%s)
export CGO_ENABLED=0
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"  # never download another toolchain silently
export GOFLAGS="${GOFLAGS:-} -buildvcs=false"
export GOBIN="$DEST/.gobin"
LDFLAGS="-s -w -X $MODULE/internal/version.version=$HELM_VERSION"
log "go install $MODULE/cmd/helm@$HELM_VERSION"
go install -p "${MODELDEPLOY_BUILD_P:-$(nproc)}" -trimpath -ldflags="$LDFLAGS" "$MODULE/cmd/helm@$HELM_VERSION"
mv "$GOBIN/helm" "$HELM"
rmdir "$GOBIN" 2>/dev/null || true
"$HELM" version --short >&2
echo "$HELM_VERSION" > "$STAMP"
log "done in $(( $(date +%s) - start ))s"
echo "$HELM"
