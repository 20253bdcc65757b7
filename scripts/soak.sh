#!/usr/bin/env bash
# The soak (docs/reliability.md, "Soak"): ALERTS real ZTF alerts through
# `bandpass serve` with 25 filters (five of them hostile), serve killed
# with SIGKILL every KILL_EVERY seconds and started again at once, and the
# broker killed and started again halfway. Reports accepted alerts lost
# (must be zero), duplicates, serve's resident memory and open
# descriptors over time; exits non-zero on a loss.
#
#   scripts/soak.sh [ALERTS [KILL_EVERY]]     defaults 1000000 120
#
# SOAK_DELIVERY=exactly-once runs serve in that mode (default
# at-least-once). SOAK_DIR keeps the work dir (config, serve's log,
# soak.csv) somewhere chosen; by default a new temp dir, kept.
#
# The broker is its own (scripts/kafka.sh, removed at the end), keeping at
# most 1 GiB per partition of every topic (64 MiB segments, checked every
# 5 s): a million 65 KB alerts are 65 GB, and the soak paces its producer
# so that nothing is deleted before serve and the checker read it. Peak
# disk use is about 30 GB.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/build-filters.sh --quiet
cargo build --quiet --release -p bandpass -p bandpass-bench
kafka_dir=""
trap '[ -n "$kafka_dir" ] && scripts/kafka.sh stop "$kafka_dir"' EXIT
export BANDPASS_KAFKA_PROPERTIES="log.retention.bytes=1073741824
log.segment.bytes=67108864
log.retention.check.interval.ms=5000
log.segment.delete.delay.ms=1000"
eval "$(scripts/kafka.sh start)"
kafka_dir="$BANDPASS_KAFKA_DIR"
export BANDPASS_KAFKA_BROKERS BANDPASS_KAFKA_DIR
target/release/bandpass-soak "$@"
