#!/usr/bin/env bash
# The end-to-end benchmark (docs/benchmarks.md, "bandpass serve"): builds
# the sample filters and the release binaries, starts an Apache Kafka
# broker of its own (scripts/kafka.sh, in a temp dir removed at the end),
# and runs bandpass-serve-bench: a plain copy baseline, `bandpass serve`
# with 25 filters, and latency at a steady rate.
#
#   scripts/bench-serve.sh [ALERTS [RATE [SECONDS]]]   defaults 40000 2000 20
#
# Needs several GB of free disk for the broker's log (ZTF alerts are about
# 65 KB each, and every accepted alert is written again to its output).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/build-filters.sh --quiet
cargo build --quiet --release -p bandpass -p bandpass-bench
kafka_dir=""
trap '[ -n "$kafka_dir" ] && scripts/kafka.sh stop "$kafka_dir"' EXIT
eval "$(scripts/kafka.sh start)"
kafka_dir="$BANDPASS_KAFKA_DIR"
export BANDPASS_KAFKA_BROKERS
bin="${CARGO_TARGET_DIR:-target}/release"
BANDPASS_BIN="$bin/bandpass" "$bin/bandpass-serve-bench" "$@"
