#!/usr/bin/env bash
# Builds the JavaScript sample filters, sample-filters/js/*.js, with the
# JavaScript SDK (guest-sdk/js):
#
#   sample-filters/target/js/<name>.wasm               the default engine (QuickJS)
#   sample-filters/target/js/spidermonkey/<name>.wasm  the other engine (SpiderMonkey)
#
# Installs the SDK's npm dependencies first (`npm ci`) when node_modules is
# missing or package-lock.json changed since the last install. Skips a
# component newer than its source and than every file of the SDK. Prints
# each build; stops at the first failure, naming the file.
set -euo pipefail
cd "$(dirname "$0")/.."

sdk=guest-sdk/js
out=sample-filters/target/js

fail() {
    echo "build-js-filters: $*" >&2
    exit 1
}

command -v node >/dev/null || fail "node is not installed; the JavaScript SDK needs Node.js 20 or later (and npm)"
command -v npm >/dev/null || fail "npm is not installed; it comes with Node.js 20 or later"
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' ||
    fail "node $(node --version) is too old; the JavaScript SDK needs Node.js 20 or later"

# `npm ci` is reproducible (exactly package-lock.json) but slow, so it runs
# only when the lock file's checksum differs from the one recorded at the
# last install.
stamp="$sdk/node_modules/.bandpass-lock-sha256"
lock_sum="$(sha256sum "$sdk/package-lock.json" | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$lock_sum" ]; then
    echo "build-js-filters: installing the JavaScript SDK's dependencies (npm ci in $sdk)" >&2
    (cd "$sdk" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) ||
        fail "npm ci in $sdk failed (see above); it needs the npm registry"
    echo "$lock_sum" >"$stamp"
fi

# The SDK's files: a component older than any of them is rebuilt.
sdk_files=("$sdk/src" "$sdk/build" "$sdk/bin" "$sdk/wit" "$sdk/package-lock.json")

# Whether $1 (a component) is missing or older than $2 (its source) or the SDK.
stale() {
    [ ! -f "$1" ] || [ "$2" -nt "$1" ] || [ -n "$(find "${sdk_files[@]}" -newer "$1" -print -quit)" ]
}

mkdir -p "$out/spidermonkey"
shopt -s nullglob
sources=(sample-filters/js/*.js)
[ ${#sources[@]} -gt 0 ] || fail "no sample-filters/js/*.js to build"
built=0
for source in "${sources[@]}"; do
    name="$(basename "$source" .js)"
    for engine in quickjs spidermonkey; do
        if [ "$engine" = quickjs ]; then target="$out/$name.wasm"; else target="$out/$engine/$name.wasm"; fi
        stale "$target" "$source" || continue
        node "$sdk/bin/bandpass-js.js" build "$source" -o "$target" --engine "$engine" ||
            fail "building $source with $engine failed (above)"
        built=$((built + 1))
    done
done
if [ "$built" -eq 0 ]; then
    echo "build-js-filters: ${#sources[@]} filters up to date in $out" >&2
fi
