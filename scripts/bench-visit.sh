#!/usr/bin/env bash
# The visit (docs/benchmarks.md, "A visit"; issue 17): real ZTF alerts
# already on a 4-partition topic, then `bandpass serve` with N
# deployments of bright-transients, in Rust and in Python, each timed
# from its start to its group's committed offsets at the end of the
# topic, with its CPU time and peak memory; beside a plain copy of the
# same topic measured the same way, in one run. Each deployment's output
# is checked against `bandpass run --config` (a difference stops the
# run). Builds the sample filters, the Python ones and the release
# binaries, starts an Apache Kafka broker of its own (scripts/kafka.sh,
# removed at the end), and runs `bandpass-serve-bench visit`.
#
#   scripts/bench-visit.sh [ALERTS [CASE...]]
#       ALERTS  default 10000
#       CASE    copy | rust:N | python:N; default
#               copy rust:100 rust:1000 python:5 python:25 python:100
#   scripts/bench-visit.sh --smoke
#       200 alerts; copy rust:3 python:1; the debug build and the broker
#       of BANDPASS_KAFKA_BROKERS (scripts/test.sh); nothing judged but
#       the outputs
#
# BANDPASS_CACHE_DIR, when set, is the compiled-code cache (scripts/test.sh
# sets one its tests have filled); else the run makes its own. Compiling is
# never in the figures: each case's check compiles before the clock starts.
#
# Needs about 2 GB of free disk for the broker's log with the defaults
# (10,000 alerts of 65 KB, the copy's, and each case's outputs, deleted
# after the case). The Python case with 100 deployments holds about
# 3.5 GB of memory.
set -euo pipefail
cd "$(dirname "$0")/.."
smoke=""
if [ "${1:-}" = "--smoke" ]; then
    smoke=1
    shift
    set -- 200 copy rust:3 python:1
fi

# The sample filters live in their own workspace and target, where the
# benchmark reads them, whatever CARGO_TARGET_DIR says for the host.
env -u CARGO_TARGET_DIR scripts/build-filters.sh --quiet
scripts/build-python-filters.sh >/dev/null
target="${CARGO_TARGET_DIR:-target}"
if [ -n "$smoke" ]; then
    : "${BANDPASS_KAFKA_BROKERS:?set BANDPASS_KAFKA_BROKERS (scripts/test.sh starts a broker)}"
    cargo build --quiet -p bandpass -p bandpass-bench
    bin="$target/debug"
else
    cargo build --quiet --release -p bandpass -p bandpass-bench
    bin="$target/release"
fi
kafka_dir=""
trap '[ -n "$kafka_dir" ] && scripts/kafka.sh stop "$kafka_dir"' EXIT
if [ -z "$smoke" ]; then
    eval "$(scripts/kafka.sh start)"
    kafka_dir="$BANDPASS_KAFKA_DIR"
fi
export BANDPASS_KAFKA_BROKERS
BANDPASS_BIN="$bin/bandpass" "$bin/bandpass-serve-bench" visit "$@"
