#!/usr/bin/env bash
# helm.sh builds Helm from its Go module into .cache/bin/helm (Helm is not
# packaged in Debian bookworm; the Go module proxy serves helm.sh/helm/v3).
# Idempotent: nothing happens when .cache/bin/helm already reports
# HELM_VERSION. The linker flags are those of Helm's own Makefile, so
# `helm version` and the default Kubernetes version of `helm template` and
# `helm lint` (1.37, from the k8s.io/client-go v0.37 Helm v3.22.0 requires)
# match an upstream release binary. Prints the binary's path.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HELM_VERSION="v3.22.0"
K8S_MAJOR=1 K8S_MINOR=37
BIN="$ROOT/.cache/bin/helm"

if [[ -x "$BIN" ]] && [[ "$("$BIN" version --template '{{.Version}}' 2>/dev/null)" == "$HELM_VERSION" ]]; then
	echo "$BIN"
	exit 0
fi
echo "helm.sh: building helm $HELM_VERSION into .cache/bin (≈ 3 min, ≈ 3 CPU-min cold)" >&2
mkdir -p "$ROOT/.cache/bin"
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for p in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
	ldflags+=" -X $p.k8sVersionMajor=$K8S_MAJOR -X $p.k8sVersionMinor=$K8S_MINOR"
done
GOBIN="$ROOT/.cache/bin" CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-buildvcs=false \
	go install -trimpath -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
got="$("$BIN" version --template '{{.Version}}')"
if [[ "$got" != "$HELM_VERSION" ]]; then
	echo "helm.sh: built helm reports $got, want $HELM_VERSION" >&2
	exit 1
fi
echo "$BIN"
