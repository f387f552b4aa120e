#!/usr/bin/env bash
# deploy-test.sh checks the deployment artifacts in deploy/: builds Helm
# (test/scripts/helm.sh, skipped when .cache/bin/helm is already the right
# version), lints and renders the chart with its default values and with the
# multi-replica external-services values, then runs the Go tests in deploy/,
# which parse the rendered YAML, the compose file and the systemd unit and
# check them against the gateway's code (see deploy/deploy_test.go).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
HELM="$(bash test/scripts/helm.sh)"
CHART=deploy/helm/gatehouse
MULTI=$CHART/ci/multi-replica-values.yaml

"$HELM" lint --strict "$CHART"
"$HELM" lint --strict "$CHART" -f "$MULTI"
"$HELM" template gatehouse "$CHART" >/dev/null
"$HELM" template gatehouse "$CHART" -f "$MULTI" >/dev/null
echo "deploy-test: helm lint and template passed (defaults, $MULTI)"

GATEHOUSE_HELM="$HELM" go test -count=1 ./deploy/
