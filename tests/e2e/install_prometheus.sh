#!/usr/bin/env bash
# Install the Prometheus server from Debian's `prometheus` package (DESIGN.md §4: the
# dashboard's PromQL is evaluated against the real server). Prints the binary's path.
#
#   tests/e2e/install_prometheus.sh      # install (or reuse) /usr/bin/prometheus
#
# Idempotent: when $PROMETHEUS_BIN (default /usr/bin/prometheus) already runs, nothing is
# installed. Needs root or passwordless sudo for apt-get. The package's service is never
# started here (policy-rc.d denies it during the install; the tests run their own server
# on 127.0.0.1 with their own config and tsdb directory).
set -euo pipefail

BIN="${PROMETHEUS_BIN:-/usr/bin/prometheus}"
log() { echo "[install_prometheus.sh $(date +%H:%M:%S)] $*" >&2; }

works() { [ -x "$BIN" ] && "$BIN" --version >/dev/null 2>&1; }

if works; then echo "$BIN"; exit 0; fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
else
    echo "install_prometheus.sh: $BIN is missing and installing the Debian package 'prometheus' needs root (or passwordless sudo); run: sudo apt-get install -y prometheus" >&2
    exit 2
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_prometheus.sh: $BIN is missing and apt-get is not available; install Prometheus >= 2.42 and set PROMETHEUS_BIN" >&2
    exit 2
fi

start=$(date +%s)
exec 9>/tmp/.modeldeploy-install-prometheus.lock
flock 9                                     # two pytest sessions: one install
if works; then echo "$BIN"; exit 0; fi

# Keep the package's init scripts from starting a system-wide server.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$policy" >/dev/null
    "${SUDO[@]}" chmod +x "$policy"
    created_policy=1
fi
cleanup() { if [ "$created_policy" = 1 ]; then "${SUDO[@]}" rm -f "$policy"; fi; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
exec 8>/tmp/.modeldeploy-apt.lock
flock 8                                     # one apt at a time across the test scripts
log "apt-get update"
"${SUDO[@]}" apt-get update -qq >&2
log "apt-get install prometheus"
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends prometheus >&2

if ! works; then
    echo "install_prometheus.sh: the 'prometheus' package installed but $BIN does not run" >&2
    exit 1
fi
log "$("$BIN" --version 2>&1 | head -1) installed in $(( $(date +%s) - start ))s"
echo "$BIN"
