#!/usr/bin/env bash
# How long an upload takes, from the PUT to the answer that it runs
# (docs/benchmarks.md, "Uploads"): size check, compile, init, the canary
# on the 18 real ZTF alerts, the registry write, and the switch of the
# live filter set. For bright-transients in Rust, JavaScript (QuickJS)
# and Python, each uploaded ROUNDS times under a new name: the first
# compiles (a fresh compiled-code cache), the others find it cached.
#
#   scripts/bench-upload.sh [ROUNDS]      default 3
#   scripts/bench-upload.sh --smoke       one round, the debug build, the
#                                         broker of BANDPASS_KAFKA_BROKERS
#                                         (scripts/bench-smoke.sh)
#
# Builds the release binary and the sample filters, and starts an Apache
# Kafka broker of its own (scripts/kafka.sh, removed at the end).
set -euo pipefail
cd "$(dirname "$0")/.."
smoke=""
if [ "${1:-}" = "--smoke" ]; then
    smoke=1
    shift
fi
rounds="${1:-3}"
if [ -n "$smoke" ]; then rounds=1; fi

scripts/build-filters.sh --quiet
scripts/build-js-filters.sh >/dev/null
scripts/build-python-filters.sh >/dev/null
if [ -n "$smoke" ]; then
    cargo build --quiet -p bandpass
    bandpass=target/debug/bandpass
else
    cargo build --quiet --release -p bandpass
    bandpass=target/release/bandpass
fi
work="$(mktemp -d)"
kafka_dir=""
serve_pid=""
cleanup() {
    [ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null && wait "$serve_pid" 2>/dev/null
    [ -n "$kafka_dir" ] && scripts/kafka.sh stop "$kafka_dir"
    rm -rf "$work"
}
trap cleanup EXIT
if [ -z "$smoke" ]; then
    eval "$(scripts/kafka.sh start)"
    kafka_dir="$BANDPASS_KAFKA_DIR"
fi

token="bench-token"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
cat >"$work/bandpass.toml" <<EOF
[kafka]
brokers = ["$BANDPASS_KAFKA_BROKERS"]
[input]
topics = ["bench-upload-alerts-$port"]
group = "bench-upload-$port"
[engine]
cache_dir = "$work/cache"
[admin]
listen = "127.0.0.1:$port"
[admin.uploads]
registry_topic = "bench-upload-registry-$port"
canary_alerts = ["$(cd .. && pwd)/shared/data/ztf/alerts"]
[[admin.group]]
name = "bench"
token_sha256 = "$(printf %s "$token" | sha256sum | cut -d' ' -f1)"
max_filters = 100
EOF
"$bandpass" serve --config "$work/bandpass.toml" 2>"$work/serve.log" &
serve_pid=$!
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
    sleep 0.2
done

# Interpreted filters need more than the default budgets.
big='{"limits": {"fuel": 2000000000, "memory": "256MiB", "deadline": "1s"}}'
printf '%-12s %10s %8s %s\n' component bytes round "seconds (PUT to running)"
for spec in "rust:sample-filters/target/wasm32-wasip2/release/bright_transients.wasm:{}" \
            "javascript:sample-filters/target/js/bright-transients.wasm:$big" \
            "python:sample-filters/target/python/bright-transients.wasm:$big"; do
    IFS=: read -r lang file manifest <<<"$spec"
    for round in $(seq "$rounds"); do
        out="$(curl -s -o "$work/reply" -w '%{http_code} %{time_total}' -X PUT \
            -H "Authorization: Bearer $token" -F "component=@$file" -F "manifest=$manifest" \
            "http://127.0.0.1:$port/v1/groups/bench/filters/$lang-$round")"
        read -r status seconds <<<"$out"
        if [ "$status" != 201 ]; then
            echo "bench-upload: $lang round $round: HTTP $status: $(cat "$work/reply")" >&2
            exit 1
        fi
        printf '%-12s %10s %8s %s\n' "$lang" "$(stat -c %s "$file")" "$round" "$seconds"
    done
done
