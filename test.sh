#!/usr/bin/env bash
# The project's test command (README: "Running the tests"). With CI=true the
# end-to-end tests (a real kube-apiserver, the JavaScript SDK) must run and
# fail loudly if what they need is missing; without it they skip with a
# message saying what to install (.ci/run installs everything).
set -euo pipefail
cd "$(dirname "$0")"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './node_modules/*'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:" $unformatted >&2
  exit 1
fi
go vet ./...
go test -count=1 -timeout 30m ./...
