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
# -json through hack/testsummary: plain go test's output, then which tests
# were skipped and why (a green run without the end-to-end suites says so).
summary=$(mktemp -d)/testsummary
go build -o "$summary" ./hack/testsummary
go test -count=1 -timeout 30m -json ./... | "$summary"
