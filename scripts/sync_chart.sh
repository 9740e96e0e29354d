#!/usr/bin/env bash
# Copy the single sources of the CRD and the operator's RBAC rules into the Helm chart
# (Helm reads only files inside the chart directory). tests/unit/chart/ fails until the
# copies are identical, so edit the sources and run this script.
#
#   scripts/sync_chart.sh          # copy
#   scripts/sync_chart.sh --check  # exit 1 (and name the file) if a copy differs
set -euo pipefail
cd "$(dirname "$0")/.."
CHART=charts/modeldeploy-operator
PAIRS=(
    "crds/modeldeployment.yaml:$CHART/crds/modeldeployment.yaml"
    "config/rbac/role.yaml:$CHART/files/rbac/role.yaml"
)
status=0
for pair in "${PAIRS[@]}"; do
    src="${pair%%:*}" dst="${pair#*:}"
    if [ "${1:-}" = "--check" ]; then
        if ! cmp -s "$src" "$dst"; then
            echo "sync_chart.sh: $dst differs from $src; run scripts/sync_chart.sh" >&2
            status=1
        fi
    else
        mkdir -p "$(dirname "$dst")"
        cp "$src" "$dst"
        echo "$src -> $dst"
    fi
done
exit $status
