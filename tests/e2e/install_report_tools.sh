#!/usr/bin/env bash
# Install the tools the report/progress tests drive: Debian's headless `chromium`
# (report.html is opened and screenshotted) and `tmux` (a real TTY run is captured).
#
#   tests/e2e/install_report_tools.sh     # install what is missing; prints nothing else
#
# Idempotent. Needs root or passwordless sudo for apt-get.
set -euo pipefail

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v tmux >/dev/null 2>&1 || missing+=(tmux)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
else
    echo "install_report_tools.sh: ${missing[*]} missing and apt-get needs root (or passwordless sudo); run: sudo apt-get install -y ${missing[*]}" >&2
    exit 2
fi
export DEBIAN_FRONTEND=noninteractive
exec 8>/tmp/.modeldeploy-apt.lock
flock 8     # one apt at a time across the test scripts (make test installs in parallel)
"${SUDO[@]}" apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null || {
    "${SUDO[@]}" apt-get update -qq >/dev/null
    "${SUDO[@]}" apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null
}
