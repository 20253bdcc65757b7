#!/usr/bin/env bash
# The embedded default: builds what it needs (the wasm target, the sample
# filters, the host) and runs `bandpass demo` on synthetic alerts.
# No Kafka, no data of your own. Extra arguments go to `bandpass demo`.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/build-filters.sh --quiet
cargo run --quiet -p bandpass -- demo "$@"
