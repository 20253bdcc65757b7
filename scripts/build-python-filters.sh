#!/usr/bin/env bash
# Builds the Python sample filters (sample-filters/python/*.py) into
# components: sample-filters/target/python/<module, dashes for
# underscores>.wasm. Installs what it needs first, in a venv of its own at
# target/bandpass-tools/py-venv (created if missing): componentize-py and
# the Python SDK (guest-sdk/python), re-installed when its sources change.
# Skips a component newer than its module and the SDK's sources; prints a
# line per component it builds, nothing else on success; on failure says
# which file failed and why, and exits 1. Python 3.11 or later: set
# BANDPASS_PYTHON to pick the interpreter that makes the venv.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/bandpass-tools/py-venv
sdk=guest-sdk/python
out=sample-filters/target/python
python="${BANDPASS_PYTHON:-python3}"
say() { echo "build-python-filters: $*" >&2; }

mkdir -p target/bandpass-tools "$out"
# One build at a time per checkout (the tests and the bench both call this).
exec 9>target/bandpass-tools/py-build.lock
flock 9

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
# Runs pip quietly; shows its output and stops if it fails.
pip_install() {
    if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@" >"$log" 2>&1; then
        cat "$log" >&2
        say "pip install $* failed (is the package index reachable?)"
        exit 1
    fi
}

if [ ! -x "$venv/bin/python" ]; then
    if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        say "$python is missing or older than 3.11; set BANDPASS_PYTHON to a Python 3.11 or later"
        exit 1
    fi
    say "creating the build venv $venv"
    "$python" -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import componentize_py, wheel' 2>/dev/null; then
    say "installing componentize-py 0.25.1 into $venv"
    pip_install componentize-py==0.25.1 wheel
fi

# The SDK is re-installed when the hash of its sources differs from the
# one recorded at its last install.
sdk_files() {
    find "$sdk/pyproject.toml" "$sdk/README.md" "$sdk/src/bandpass" -type f \
        ! -path '*/__pycache__/*' ! -name '*.pyc' | LC_ALL=C sort
}
sdk_hash="$(sdk_files | xargs sha256sum | sha256sum | cut -d' ' -f1)"
stamp="$venv/bandpass-sdk.sha256"
if [ "$(cat "$stamp" 2>/dev/null)" != "$sdk_hash" ]; then
    say "installing the Python SDK from $sdk"
    pip_install --no-build-isolation --no-deps --force-reinstall "./$sdk"
    echo "$sdk_hash" >"$stamp"
fi

for source in sample-filters/python/*.py; do
    module="$(basename "$source" .py)"
    wasm="$out/${module//_/-}.wasm"
    if [ -f "$wasm" ] && [ "$wasm" -nt "$source" ] &&
        [ -z "$(find "$sdk/pyproject.toml" "$sdk/src/bandpass" -newer "$wasm" \
            ! -path '*/__pycache__/*' -print -quit)" ]; then
        continue
    fi
    say "building $wasm from $source"
    if ! "$venv/bin/bandpass-py" build --quiet "$source" -o "$wasm"; then
        say "building $source failed (above: what to change)"
        exit 1
    fi
done
