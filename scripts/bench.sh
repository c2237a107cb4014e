#!/usr/bin/env bash
# bench.sh — runs `streamprofile bench` on the real stack and writes docs/bench/.
#
#   scripts/bench.sh [streamprofile bench flags]
#
# Starts Kafka and Redis with scripts/testenv.sh (in a state folder of its own, so a test
# environment that is up is left alone), builds the binary and runs
#   streamprofile bench --brokers ... --redis ... --out docs/bench --nice -10 --document BENCHMARKS.md [flags]
# which pins the measured process (and, in the latency runs, the score role) to the last CPU and the load
# generator to the others. Kafka
# and Redis are not pinned: they are part of the system measured and use any CPU (on 2 CPUs,
# pinning them next to the generator made the broker the bottleneck of every latency run).
# Services and workers run at nice -10 so that, on a machine shared with other work, they get
# their CPUs (without the privilege for it, nice warns and runs them at normal priority).
# The services are stopped again whatever happens. The Kafka broker runs with C2 and G1 here
# (STREAMPROFILE_TESTENV_KAFKA_JVM_OPTS; the test default trades throughput for start-up time).
#
# Environment:
#   STREAMPROFILE_BENCH_OUT          output folder (default: <repo>/docs/bench)
#   STREAMPROFILE_TESTENV_DIR        services' state folder (default: <repo>/.testenv/bench, git-ignored)
#   STREAMPROFILE_TESTENV_KAFKA_JVM_OPTS  broker JVM options (default "-Xms1g -Xmx1g -XX:+UseG1GC")
#   STREAMPROFILE_BENCH_NICE         nice adjustment of services and workers (default -10; 0: none)
#   STREAMPROFILE_BENCH_DOCUMENT     report written at the end of a complete run (default: <repo>/BENCHMARKS.md,
#                                    none when --quick or --out is given; "-": none)
#
# A full run rewrites docs/bench/ (results.json, results.md, plots, profiles) and BENCHMARKS.md: commit them
# together, so the report's run date says which code it measured.
#
# Examples:
#   scripts/bench.sh                          # 10k, 100k and 1M users (about 20 minutes on 2 CPUs)
#   scripts/bench.sh --quick --out /tmp/b     # smoke run, seconds
#   scripts/bench.sh --users 10000            # one scale, a few minutes
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
testenv="$repo/scripts/testenv.sh"
export STREAMPROFILE_TESTENV_DIR="${STREAMPROFILE_TESTENV_DIR:-$repo/.testenv/bench}"
export STREAMPROFILE_TESTENV_KAFKA_JVM_OPTS="${STREAMPROFILE_TESTENV_KAFKA_JVM_OPTS:--Xms1g -Xmx1g -XX:+UseG1GC}"
out="${STREAMPROFILE_BENCH_OUT:-docs/bench}" # relative: the command is recorded in the report
nice_adj="${STREAMPROFILE_BENCH_NICE:--10}"
document="${STREAMPROFILE_BENCH_DOCUMENT:-}"
if [[ -z "$document" ]]; then
	document="BENCHMARKS.md"
	for a in "$@"; do
		case "$a" in
		--quick | -quick | --quick=* | -quick=* | --out | -out | --out=* | -out=*) document=- ;;
		esac
	done
fi
doc_flags=()
if [[ "$document" != - ]]; then
	doc_flags=(--document "$document")
fi

# shellcheck disable=SC2317 # called by the EXIT trap.
down() {
	"$testenv" down || echo "bench.sh: scripts/testenv.sh down failed" >&2
}
trap down EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

up=("$testenv" up)
if [[ "$nice_adj" != 0 ]]; then
	up=(nice -n "$nice_adj" "${up[@]}")
fi
"${up[@]}"
eval "$("$testenv" env)"

bin="$STREAMPROFILE_TESTENV_DIR/bin/streamprofile"
go build -o "$bin" ./cmd/streamprofile

# --out given on the command line wins over the default (flags are parsed left to right).
"$bin" bench --brokers "$STREAMPROFILE_TEST_KAFKA" --redis "$STREAMPROFILE_TEST_REDIS" --out "$out" --nice "$nice_adj" \
	"${doc_flags[@]}" "$@"
