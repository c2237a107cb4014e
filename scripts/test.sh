#!/usr/bin/env bash
# test.sh — THE test command: runs every Go test against real services.
#
#   scripts/test.sh [go test flags] [packages]
#
# Starts Kafka, Redis and a Redis Cluster with scripts/testenv.sh, exports their addresses with
# STREAMPROFILE_REQUIRE_REAL=1 (so no integration test can skip), runs
#   go test -race -count=1 -timeout 25m [args] [./... when no package is named]
# then, when that passed and no package was named, the CDNOW comparisons without -race
#   go test -count=1 -timeout 10m -run CDNOW ./model/...
# (under -race they read the CDNOW sample; the network-vs-BG/NBD check needs the master file),
# and stops the services again whatever happens. Exits non-zero when either go test run fails.
# Flags given here come after the defaults, so `-timeout 5m` or `-count 3` override them.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
testenv="$repo/scripts/testenv.sh"

# shellcheck disable=SC2317 # called by the EXIT trap.
down() {
	"$testenv" down || echo "test.sh: scripts/testenv.sh down failed" >&2
}
trap down EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$testenv" up
eval "$("$testenv" env)"
export STREAMPROFILE_REQUIRE_REAL=1

# A package pattern among the arguments replaces the default ./...
# (go test takes flags before and after packages).
have_pkg=0
prev=""
for a in "$@"; do
	case "$a" in
	./* | ../* | . | .. | github.com/streamprofile/streamprofile*)
		# ...unless it is the value of a flag that takes a path.
		case "${prev#-}" in
		-coverprofile | -cpuprofile | -memprofile | -blockprofile | -mutexprofile | -trace | -o | -outputdir | \
			-exec | -modfile | -overlay | -pgo | -C | coverprofile | cpuprofile | memprofile | blockprofile | \
			mutexprofile | trace | o | outputdir | exec | modfile | overlay | pgo | C) ;;
		*) have_pkg=1 ;;
		esac
		;;
	esac
	prev="$a"
done
pkgs=()
((have_pkg)) || pkgs=(./...)

status=0
go test -race -count=1 -timeout 25m "$@" "${pkgs[@]}" || status=$?
if ((status == 0 && !have_pkg)); then
	go test -count=1 -timeout 10m -run CDNOW ./model/... || status=$?
fi
exit "$status"
