#!/usr/bin/env bash
# Every benchmark once, small: each case of the engine benchmark, the
# serve benchmark (latency, throughput, recovery, a slow tenant), the
# object store (write, lookups, a restore from its changelog), the
# upload benchmark and the soak, on a few thousand alerts, with the debug
# build. Run by scripts/test.sh after the tests, so that a benchmark that
# stops running fails the suite. Nothing is timed or judged here: the
# figures are the full runs' (docs/benchmarks.md, docs/reliability.md).
#
#   scripts/bench-smoke.sh      needs BANDPASS_KAFKA_BROKERS, and
#                               BANDPASS_KAFKA_DIR for the soak (which
#                               restarts that broker): scripts/test.sh
#                               sets both
#
# Uses the sample filters scripts/build-filters.sh and the Python and
# JavaScript builds made (the tests make them).
set -euo pipefail
cd "$(dirname "$0")/.."

: "${BANDPASS_KAFKA_BROKERS:?set BANDPASS_KAFKA_BROKERS (scripts/test.sh starts a broker)}"
export BANDPASS_BIN="$PWD/target/debug/bandpass"
cargo build --quiet -p bandpass -p bandpass-bench
bin=target/debug

step() { echo "== bench smoke: $* (at ${SECONDS}s)" >&2; }
# Each benchmark's report goes to a file, shown only when it fails: a
# failing run in CI must say why, a passing one need not fill the log.
report="$(mktemp)"
trap 'rm -f "$report"' EXIT
quiet() {
    if ! "$@" >"$report" 2>&1; then
        echo "bench smoke: FAILED: $*; its report:" >&2
        tail -n 80 "$report" >&2
        return 1
    fi
}

step "engine, every case"
quiet "$bin/bandpass-bench" 0.05
step "engine, the languages case"
quiet "$bin/bandpass-bench" 0.05 languages
step "serve: latency, fill, plain copy, throughput"
quiet "$bin/bandpass-serve-bench" 2000 200 3
step "serve: a slow tenant"
BENCH_SLOW_MEAN=5ms quiet "$bin/bandpass-serve-bench" 2000 200 3
step "serve: recovery after a SIGKILL"
quiet "$bin/bandpass-serve-bench" recovery 2000
step "the object store and its restore"
MEMORY_BENCH_DIR="${TMPDIR:-/tmp}" quiet "$bin/bandpass-memory-bench" 2000 2000
step "catalogue cones"
quiet "$bin/bandpass-sky-bench" "" 2000
step "engine, the Gaia cross-match case"
quiet "$bin/bandpass-bench" 0.05 sky
step "uploads"
quiet scripts/bench-upload.sh --smoke
step "soak"
if [ -z "${BANDPASS_KAFKA_DIR:-}" ]; then
    echo "bench smoke: NOT RUN: the soak restarts its broker, and BANDPASS_KAFKA_DIR names none (a broker given by BANDPASS_KAFKA_BROKERS alone); run scripts/soak.sh 3000 10" >&2
    exit 1
fi
soak_dir="$(mktemp -d)"
if ! SOAK_DIR="$soak_dir" quiet "$bin/bandpass-soak" 3000 10; then
    # serve's own log says what happened on its side.
    for log in "$soak_dir"/*.log; do
        [ -f "$log" ] || continue
        echo "bench smoke: the end of $log:" >&2
        grep -v " INFO " "$log" | tail -n 60 >&2
    done
    exit 1
fi
rm -rf "$soak_dir"
echo "bench smoke: every benchmark ran, in ${SECONDS}s" >&2
