#!/usr/bin/env bash
# Coverage-guided fuzzing (libFuzzer through cargo-fuzz) of what producers
# and tenants hand the host: see docs/reliability.md, "Fuzzing", and the
# targets' bodies in host/src/fuzzing.rs.
#
#   scripts/fuzz.sh [RUNS [TARGET...]]   RUNS executions of each TARGET
#                                        (default: 10,000,000 of every one)
#   scripts/fuzz.sh --smoke              a short run of every target (CI)
#
# Installs cargo-fuzz (from crates.io) the first time. Needs no nightly
# toolchain: cargo-fuzz's -Z flags are accepted by the stable compiler
# under RUSTC_BOOTSTRAP=1, and no sanitizer is built (safe Rust; what is
# sought is a panic, a hang or an allocation past -rss_limit_mb).
# Seeds: fuzz/seeds/<target>, plus the real alerts of ../shared/data for
# the decoder targets, copied into fuzz/corpus/ at run time (never
# committed). A finding lands in fuzz/artifacts/<target>/; once fixed,
# keep it in fuzz/regressions/<target>/, which the test suite replays.
set -euo pipefail
cd "$(dirname "$0")/.."

targets=(decode_message writer_schema manifest_verdict config upload_request object_record)
runs=10000000
if [ "${1:-}" = "--smoke" ]; then
    runs=20000
    shift
elif [ -n "${1:-}" ]; then
    runs="$1"
    shift
fi
if [ "$#" -gt 0 ]; then targets=("$@"); fi

if ! command -v cargo-fuzz >/dev/null; then
    echo "fuzz: installing cargo-fuzz" >&2
    cargo install --quiet --locked cargo-fuzz
fi
export RUSTC_BOOTSTRAP=1

# Seeds from the real data, made at run time.
data="../shared/data"
for t in "${targets[@]}"; do mkdir -p "fuzz/corpus/$t"; done
if [ -d "fuzz/corpus/decode_message" ]; then
    find "$data/ztf/alerts" -name '*.avro' -exec cp -n {} fuzz/corpus/decode_message/ \;
    for f in "$data"/rubin/schema/*/sample_data/fakeAlert.avro; do
        cp -n "$f" "fuzz/corpus/decode_message/rubin-$(basename "$(dirname "$(dirname "$f")")").avro"
    done
fi
if [ -d "fuzz/corpus/writer_schema" ] && python3 -c 'import fastavro' 2>/dev/null; then
    # Each real alert's writer schema, a NUL, and its record re-encoded.
    python3 - "$data" fuzz/corpus/writer_schema <<'PY'
import io, json, pathlib, sys, fastavro
data, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
for path in sorted(data.glob("ztf/alerts/*/*.avro")) + sorted(data.glob("rubin/schema/*/sample_data/fakeAlert.avro")):
    with open(path, "rb") as f:
        reader = fastavro.reader(f)
        schema, record = reader.writer_schema, next(iter(reader))
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(schema), record)
    name = path.parent.name + "-" + path.stem
    (out / name).write_bytes(json.dumps(schema).encode() + b"\0" + body.getvalue())
PY
fi

cargo fuzz build -s none -O --fuzz-dir fuzz
for t in "${targets[@]}"; do
    echo "== fuzz $t: $runs runs"
    seeds=()
    if [ -d "fuzz/seeds/$t" ]; then seeds+=("fuzz/seeds/$t"); fi
    if [ -d "fuzz/regressions/$t" ]; then seeds+=("fuzz/regressions/$t"); fi
    log="$(mktemp)"
    if ! cargo fuzz run -s none -O --fuzz-dir fuzz "$t" "fuzz/corpus/$t" "${seeds[@]}" -- \
        -runs="$runs" -max_len=131072 -rss_limit_mb=2048 -malloc_limit_mb=1024 \
        -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
        tail -n 60 "$log" >&2
        echo "fuzz: $t failed (above); the input is in fuzz/artifacts/$t" >&2
        exit 1
    fi
    grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)' "$log" || true
    rm -f "$log"
    if [ -n "$(ls -A "fuzz/artifacts/$t" 2>/dev/null)" ]; then
        echo "fuzz: $t found something: fuzz/artifacts/$t" >&2
        exit 1
    fi
done
