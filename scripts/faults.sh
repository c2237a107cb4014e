#!/usr/bin/env bash
# faults.sh — the fault suite (package faults, build tag `faults`; see faults/doc.go).
#
#   scripts/faults.sh                  run every case and rewrite faults/RESULTS.md
#   scripts/faults.sh [go test flags]  e.g. -run TestSlowRedis; results go to a temporary file
#
# Like scripts/test.sh it starts Kafka, Redis and a Redis Cluster with scripts/testenv.sh, exports
# their addresses with STREAMPROFILE_REQUIRE_REAL=1 and stops them again whatever happens. It runs
#   go test -tags faults -count=1 -timeout 45m -v [flags] ./faults/...
# without -race: the cases report memory and throughput, which the race detector inflates.
# The whole suite takes about 20 minutes (the soak alone is 10; STREAMPROFILE_FAULTS_SOAK=2m
# shortens it for a try-out). STREAMPROFILE_FAULTS_RESULTS overrides where the table goes.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
testenv="$repo/scripts/testenv.sh"

# shellcheck disable=SC2317 # called by the EXIT trap.
down() {
	"$testenv" down || echo "faults.sh: scripts/testenv.sh down failed" >&2
}
trap down EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if (($# == 0)); then
	results="${STREAMPROFILE_FAULTS_RESULTS:-$repo/faults/RESULTS.md}"
else
	results="${STREAMPROFILE_FAULTS_RESULTS:-${TMPDIR:-/tmp}/streamprofile-faults-RESULTS.md}"
fi

"$testenv" up
eval "$("$testenv" env)"
export STREAMPROFILE_REQUIRE_REAL=1
export STREAMPROFILE_FAULTS_RESULTS="$results"

status=0
go test -tags faults -count=1 -timeout 45m -v "$@" ./faults/... || status=$?
echo "faults.sh: results table in $results" >&2
exit "$status"
