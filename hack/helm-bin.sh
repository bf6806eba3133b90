#!/usr/bin/env bash
# helm-bin.sh builds (once) the helm CLI that deploy/chart_test.go runs
# (`helm lint`, `helm template`), into ${WIF_E2E_CACHE:-$HOME/.cache/wif-e2e}/bin,
# from the Go module proxy. The last line printed is its path.
set -euo pipefail
HELM_VERSION="${WIF_HELM_VERSION:-v3.19.5}"
BIN="${WIF_E2E_CACHE:-$HOME/.cache/wif-e2e}/bin"
mkdir -p "$BIN"
if [ ! -x "$BIN/helm" ]; then
  echo "helm-bin: building helm $HELM_VERSION" >&2
  (cd "$BIN" && GOFLAGS= GOBIN="$BIN" CGO_ENABLED=0 "${GO:-go}" install -trimpath -ldflags "-s -w" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION")
fi
echo "$BIN/helm"
