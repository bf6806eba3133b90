#!/usr/bin/env bash
# run.sh runs the gateway example end to end, from any directory, on free
# ports, leaving nothing behind: a Kubernetes-style issuer (wif issuer
# serve), the token service with this directory's directory.yaml (wif
# serve), a backend, and wif gateway running seed 000's production APIM
# policy (policysample.xml, unedited) in front of it. It then proves what
# the policy does: the approved identity's token gets 200 (the backend sees
# the caller), no token gets 401.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

log() { echo "run.sh: $*" >&2; }
wait_file() { # wait_file FILE PID: until FILE exists, or fail if PID exits
  for _ in $(seq 1 300); do
    [ -s "$1" ] && { cat "$1"; return 0; }
    kill -0 "$2" 2>/dev/null || { log "a process exited early; its log:"; cat "$work"/*.log >&2; return 1; }
    sleep 0.1
  done
  log "timed out waiting for $1"; return 1
}

log "building wif and the backend into $work"
(cd "$root" && go build -o "$work/wif" ./cmd/wif && go build -o "$work/backend" ./examples/gateway/backend)
wif="$work/wif"

"$wif" issuer serve --listen 127.0.0.1:0 --tls-self-signed --state-dir "$work/issuer" --ready-file "$work/issuer.url" >"$work/issuer.log" 2>&1 &
pids+=($!); issuer="$(wait_file "$work/issuer.url" $!)"
log "issuer $issuer"

# directory.yaml names the issuer at its usual address; use this run's.
sed "s|issuer: https://127.0.0.1:6443|issuer: $issuer|" "$here/directory.yaml" >"$work/directory.yaml"
"$wif" serve --listen 127.0.0.1:0 --store memory: --tls-self-signed --tls-ca-out "$work/ca.pem" --entra-issuer-names \
  --directory "$work/directory.yaml" --issuer-ca-file "$work/issuer/ca.pem" --allow-private-issuers \
  --ready-file "$work/sts.url" >"$work/sts.log" 2>&1 &
pids+=($!); sts="$(wait_file "$work/sts.url" $!)"
log "token service $sts"

"$work/backend" -ready-file "$work/backend.url" >"$work/backend.log" 2>&1 &
pids+=($!); backend="$(wait_file "$work/backend.url" $!)"
log "backend $backend"

# gateway.yaml with this run's token service, CA, backend and policy path.
sed -e "s|url: https://127.0.0.1:8443|url: $sts|" -e "s|caFile: ca.pem|caFile: $work/ca.pem|" \
    -e "s|backend: http://127.0.0.1:9000/|backend: $backend|" -e "s|policy: policysample.xml|policy: $here/policysample.xml|" \
    "$here/gateway.yaml" >"$work/gateway.yaml"
"$wif" gateway --config "$work/gateway.yaml" --listen 127.0.0.1:0 --ready-file "$work/gateway.url" >"$work/gateway.log" 2>&1 &
pids+=($!); gateway="$(wait_file "$work/gateway.url" $!)"
log "gateway $gateway"

# The approved workload: a service-account token from the issuer,
# exchanged for an access token to api://mydummyapi.
"$wif" issuer token --state-dir "$work/issuer" --issuer "$issuer" --service-account approved --out "$work/sa.token" --once
token="$("$wif" token get --authority-host "$sts/" --ca-file "$work/ca.pem" --tenant-id d12058fe-ecf4-454a-9a69-cef5686fc24f \
  --client-id ad0c8137-362f-451a-93b0-d08040425294 --token-file "$work/sa.token" --scope api://mydummyapi/.default)"

fail=0
code="$(curl -sS -o "$work/ok.json" -w '%{http_code}' -H "Authorization: Bearer $token" "${gateway%/}/")"
echo "with the approved identity's token: $code $(cat "$work/ok.json")"
[ "$code" = 200 ] || fail=1
code="$(curl -sS -o "$work/none.json" -w '%{http_code}' "${gateway%/}/")"
echo "without a token: $code $(cat "$work/none.json")"
[ "$code" = 401 ] || fail=1
if [ "$fail" = 1 ]; then
  log "unexpected answers; the gateway's log:"; cat "$work/gateway.log" >&2
  exit 1
fi
echo "ok: the policy admits the approved identity and refuses a request without a token"
