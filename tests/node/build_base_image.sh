#!/usr/bin/env bash
# Make the local base images the test images build FROM (no container registry is reachable):
#
#   localhost/modeldeploy/debian-python:<suite>  debootstrap --variant=minbase <suite> + python3,
#                                                python3-venv, python-is-python3, ca-certificates; podman import
#   localhost/modeldeploy/pause:<hash>           a static pause binary (tests/node/pause/main.go,
#                                                built here with Go) — containerd's sandbox_image
#
#   tests/node/build_base_image.sh            # prints "<python image>\n<pause image>"
#
# Cached: the rootfs tarball under ${MODELDEPLOY_IMAGE_CACHE:-~/.cache/modeldeploy/images}/base/,
# keyed by a hash of this script + the suite + the package list; an image already in podman's
# store is reused as is. Debian packages come from the host's apt mirror (deb.debian.org).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SUITE="${MODELDEPLOY_DEBIAN_SUITE:-bookworm}"
MIRROR="${MODELDEPLOY_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
INCLUDE="python3,python3-venv,python-is-python3,ca-certificates"
CACHE="${MODELDEPLOY_IMAGE_CACHE:-$HOME/.cache/modeldeploy/images}/base"
log() { echo "[build_base_image $(date +%H:%M:%S)] $*" >&2; }

mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9

key=$(cat "$0" <(echo "$SUITE $INCLUDE") | sha256sum | cut -c1-12)
PY_IMAGE="localhost/modeldeploy/debian-python:$SUITE-$key"
tarball="$CACHE/debian-$SUITE-$key.tar"

if ! podman image exists "$PY_IMAGE"; then
    if [ ! -s "$tarball" ]; then
        root="$CACHE/rootfs-$key"
        rm -rf "$root"
        log "debootstrap $SUITE (minbase + $INCLUDE) from $MIRROR"
        debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$root" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 \
            || { tail -20 "$CACHE/debootstrap.log" >&2; exit 1; }
        # No apt lists / caches / logs in the image.
        rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
               "$root"/var/log/* "$root"/tmp/*
        tar --numeric-owner -C "$root" -cf "$tarball.tmp" .
        mv "$tarball.tmp" "$tarball"
        rm -rf "$root"
    fi
    log "podman import $tarball -> $PY_IMAGE"
    podman import --change 'CMD ["/usr/bin/python3"]' --change 'ENV LANG=C.UTF-8' \
        "$tarball" "$PY_IMAGE" >/dev/null
fi

# pause: static Go binary, FROM scratch.
pkey=$(cat "$0" "$HERE/pause/main.go" | sha256sum | cut -c1-12)
PAUSE_IMAGE="localhost/modeldeploy/pause:$pkey"
if ! podman image exists "$PAUSE_IMAGE"; then
    command -v go >/dev/null || { echo "build_base_image.sh: Go is needed to build the pause binary" >&2; exit 2; }
    pdir="$CACHE/pause-$pkey"
    mkdir -p "$pdir"
    (cd "$HERE/pause" && CGO_ENABLED=0 GOTOOLCHAIN=local go build -trimpath -ldflags="-s -w" -o "$pdir/pause" main.go)
    ctr=$(buildah from scratch)
    trap 'buildah rm "$ctr" >/dev/null 2>&1 || true' EXIT
    buildah copy "$ctr" "$pdir/pause" /pause >/dev/null
    buildah config --entrypoint '["/pause"]' --user 65535:65535 "$ctr"
    buildah commit --quiet "$ctr" "$PAUSE_IMAGE" >/dev/null
    log "built $PAUSE_IMAGE"
fi
echo "$PY_IMAGE"
echo "$PAUSE_IMAGE"
