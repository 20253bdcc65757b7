#!/usr/bin/env bash
# Builds the sample filters and test fixtures (sample-filters/, a cargo
# workspace for wasm32-wasip2) into sample-filters/target/wasm32-wasip2/release.
# Installs the wasm32-wasip2 target first if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! rustup target list --installed | grep -qx wasm32-wasip2; then
    echo "build-filters: installing the wasm32-wasip2 target" >&2
    rustup target add wasm32-wasip2
fi
cargo build --release --target wasm32-wasip2 --manifest-path sample-filters/Cargo.toml "$@"
