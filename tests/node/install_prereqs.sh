#!/usr/bin/env bash
# Install (idempotently) what the image and real-node test tiers need on a Debian host:
# debootstrap (base images), podman + buildah (image builds), runc, containerd 1.6 + ctr,
# the CNI plugins, iptables/conntrack (CNI bridge/portmap), and the containers.conf ulimits
# this kernel accepts (tests/cluster/README.md "Real node": podman's default NPROC is refused).
#
#   tests/node/install_prereqs.sh      # prints "prereqs-ok" on success; exit 3 = not a Debian/apt host
#
# Needs root (the node tier runs containerd/kubelet as root anyway).
set -euo pipefail

PKGS=(debootstrap podman buildah runc containerd containernetworking-plugins iptables conntrack
      uidmap fuse-overlayfs slirp4netns)
CMDS=(debootstrap podman buildah runc containerd ctr)

have_all() {
    for c in "${CMDS[@]}"; do command -v "$c" >/dev/null 2>&1 || return 1; done
    [ -x /usr/lib/cni/bridge ] && [ -x /usr/lib/cni/host-local ] && [ -x /usr/lib/cni/loopback ]
}

if [ "$(id -u)" != 0 ]; then
    echo "install_prereqs.sh: must run as root (apt-get, containerd and the kubelet need it)" >&2
    exit 2
fi

if ! have_all; then
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "install_prereqs.sh: no apt-get on this host; install ${PKGS[*]} by hand" >&2
        exit 3
    fi
    export DEBIAN_FRONTEND=noninteractive
    # One apt at a time across the test scripts (`make test` builds these images beside the
    # tools target, which may install prometheus/chromium): dpkg's own lock fails, not waits.
    exec 8>/tmp/.modeldeploy-apt.lock
    flock 8
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${PKGS[@]}" >/dev/null
    have_all || { echo "install_prereqs.sh: packages installed but a command is still missing" >&2; exit 1; }
fi

# podman's default ulimits ask for an RLIMIT_NPROC this kernel refuses; these values work.
conf=/etc/containers/containers.conf
mkdir -p /etc/containers
if ! grep -q 'default_ulimits' "$conf" 2>/dev/null; then
    if grep -q '^\[containers\]' "$conf" 2>/dev/null; then
        sed -i '/^\[containers\]/a default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]' "$conf"
    else
        printf '[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n' >> "$conf"
    fi
fi
echo prereqs-ok
