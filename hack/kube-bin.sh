#!/usr/bin/env bash
# kube-bin.sh builds (once) the control-plane binaries the Kubernetes end-to-end
# test runs as plain processes: kube-apiserver v1.30.14 and etcd. They are cached
# outside the repository in ${WIF_E2E_CACHE:-$HOME/.cache/wif-e2e}/bin; a second
# run finds them and returns at once. The last lines printed are the paths.
#
# kube-apiserver: the Go module proxy serves k8s.io/kubernetes, but that module
# points its k8s.io/* staging modules at ./staging/..., so a scratch module
# requires k8s.io/kubernetes and replaces every staging module with the v0.X.Y
# release of the same tree (no `go mod tidy`: -mod=mod resolves what the build
# needs).
#
# etcd: an etcd already on PATH, else Debian's etcd-server (when running as root
# with apt-get), else go.etcd.io/etcd/server/v3 built the same way.
# WIF_E2E_ETCD_FROM_SOURCE=1 forces the source build.
set -euo pipefail

KUBE_VERSION="${WIF_KUBE_VERSION:-v1.30.14}"
STAGING_VERSION="v0.${KUBE_VERSION#v1.}"
ETCD_VERSION="${WIF_ETCD_VERSION:-v3.5.21}"
CACHE="${WIF_E2E_CACHE:-$HOME/.cache/wif-e2e}"
BIN="$CACHE/bin"
APISERVER="$BIN/kube-apiserver-$KUBE_VERSION"
ETCD="$BIN/etcd"
GO="${GO:-go}"

mkdir -p "$BIN"
log() { echo "kube-bin: $*" >&2; }

build_apiserver() {
  local work
  work="$(mktemp -d "$CACHE/build-apiserver.XXXXXX")"
  trap 'rm -rf "$work"' RETURN
  log "building kube-apiserver $KUBE_VERSION in $work (a few minutes cold)"
  local gomod
  gomod="$(cd "$work" && GOFLAGS= "$GO" mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')"
  [ -f "$gomod" ] || { log "cannot find go.mod of k8s.io/kubernetes@$KUBE_VERSION"; return 1; }
  {
    echo "module wif.local/kubebin"
    echo
    echo "go 1.22"
    echo
    echo "require k8s.io/kubernetes $KUBE_VERSION"
    echo
    echo "replace ("
    sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => \./staging/src/.*#\t\1 => \1 '"$STAGING_VERSION"'#p' "$gomod"
    echo ")"
  } >"$work/go.mod"
  cat >"$work/tools.go" <<'GO'
//go:build tools

package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
GO
  # Stamp the version the way Kubernetes' own build does, so /version (and
  # the webhook's native-sidecar detection) sees a real v1.30.x.
  local v=k8s.io/component-base/version minor="${KUBE_VERSION#v1.}"
  minor="${minor%%.*}"
  (cd "$work" && GOFLAGS=-mod=mod CGO_ENABLED=0 "$GO" build -trimpath \
    -ldflags "-s -w -X $v.gitVersion=$KUBE_VERSION -X $v.gitMajor=1 -X $v.gitMinor=$minor -X $v.gitTreeState=clean" \
    -o "$APISERVER.tmp" k8s.io/kubernetes/cmd/kube-apiserver)
  mv "$APISERVER.tmp" "$APISERVER"
}

build_etcd() {
  local work
  work="$(mktemp -d "$CACHE/build-etcd.XXXXXX")"
  trap 'rm -rf "$work"' RETURN
  log "building etcd $ETCD_VERSION in $work"
  printf 'module wif.local/etcdbin\n\ngo 1.22\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "$ETCD_VERSION" >"$work/go.mod"
  (cd "$work" && GOFLAGS=-mod=mod CGO_ENABLED=0 "$GO" build -trimpath -ldflags "-s -w" \
    -o "$ETCD.tmp" go.etcd.io/etcd/server/v3)
  mv "$ETCD.tmp" "$ETCD"
}

if [ -x "$APISERVER" ]; then
  log "cached: $APISERVER"
else
  start=$(date +%s)
  build_apiserver
  log "kube-apiserver built in $(( $(date +%s) - start ))s"
fi

if [ -x "$ETCD" ]; then
  log "cached: $ETCD"
elif [ "${WIF_E2E_ETCD_FROM_SOURCE:-}" != 1 ] && command -v etcd >/dev/null 2>&1; then
  ln -sf "$(command -v etcd)" "$ETCD"
  log "using $(command -v etcd)"
elif [ "${WIF_E2E_ETCD_FROM_SOURCE:-}" != 1 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
    && { DEBIAN_FRONTEND=noninteractive apt-get install -y -q etcd-server >&2 \
         || { apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q etcd-server >&2; }; } \
    && [ -x /usr/bin/etcd ]; then
  ln -sf /usr/bin/etcd "$ETCD"
  log "using Debian's etcd-server (/usr/bin/etcd)"
else
  start=$(date +%s)
  build_etcd
  log "etcd built in $(( $(date +%s) - start ))s"
fi

echo "$APISERVER"
echo "$ETCD"
