#!/usr/bin/env python3
"""The 20-field cut as plain CPython over fastavro: the baseline for bandpass.

What a ZTF-style Python consumer pays per alert: each alert's bytes (an
Avro Object Container File, as one ZTF Kafka message carries) decoded with
fastavro.reader, then the filter function called with its 20 values taken
from the decoded dict. The function is the very one the Python component
runs (sample-filters/python/bench_twenty_fields.py), imported from source
with the SDK (guest-sdk/python/src): nothing to install but fastavro.

The alert files are read into memory once; then, for at least --seconds
each (or --repeat passes over all alerts), it times:

  decode_and_filter_us: fastavro decode + taking the values + the call,
  schema_once_us: the same with each file's writer schema parsed once
      beforehand and the record read with fastavro.schemaless_reader (the
      best a Python consumer can do; a ZTF message carries its schema, so
      a consumer must at least recognise it per message),
  filter_us: taking the values from an already decoded dict + the call.

Usage:
    python3 bench/python/fastavro_baseline.py [--seconds S | --repeat N] [--json] [ALERTS...]

ALERTS are .avro files or folders of them (default: ../shared/data/ztf/alerts
beside the repository). The bench's `languages` case (bench/src/main.rs)
runs it with --json and reads filter_us and decode_and_filter_us.
"""

import argparse
import io
import json
import os
import platform
import sys
import time

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path[:0] = [os.path.join(ROOT, "guest-sdk", "python", "src"), os.path.join(ROOT, "sample-filters", "python")]

try:
    import fastavro
except ImportError:
    sys.exit("fastavro_baseline: fastavro is not installed; install it with: python3 -m pip install fastavro")

import bandpass  # noqa: E402 - found through the path set above
from bench_twenty_fields import bench_twenty_fields as cut  # noqa: E402

DEFAULT_ALERTS = os.path.join(ROOT, "..", "shared", "data", "ztf", "alerts")


def alert_files(paths):
    files = []
    for path in paths:
        if os.path.isdir(path):
            for folder, _, names in os.walk(path):
                files += [os.path.join(folder, n) for n in names if n.endswith(".avro")]
        elif os.path.isfile(path):
            files.append(path)
        else:
            sys.exit(f"fastavro_baseline: {path}: no such file or folder; give .avro files or folders of them")
    if not files:
        sys.exit(f"fastavro_baseline: no .avro file in {', '.join(paths)}")
    return sorted(files)


def decode(message):
    """One ZTF message (a container file holding one alert) as a dict."""
    return next(fastavro.reader(io.BytesIO(message)))


def _long(buf, pos):
    """An Avro long (zig-zag varint) at ``pos``: (value, next position)."""
    shift = result = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return (result >> 1) ^ -(result & 1), pos


def datum_offset(message):
    """Where the first record starts in a container file: after the magic,
    the metadata map, the 16-byte sync marker and the first block's count
    and size (ZTF writes one uncompressed record per file)."""
    pos = 4
    while True:
        count, pos = _long(message, pos)
        if count == 0:
            break
        if count < 0:
            _, pos = _long(message, pos)  # the block's size in bytes
            count = -count
        for _ in range(2 * count):  # key, value
            length, pos = _long(message, pos)
            pos += length
    pos += 16
    _, pos = _long(message, pos)  # records in the block
    _, pos = _long(message, pos)  # its size in bytes
    return pos


def schema_once(message):
    """The message's parsed writer schema and the offset of its record."""
    schema = fastavro.parse_schema(fastavro.reader(io.BytesIO(message)).writer_schema)
    return schema, datum_offset(message)


def arguments_getter(spec):
    """A function from a decoded alert to the filter's positional arguments.

    The 20-field cut reads `candidate.X` only: the consumer's idiom is
    `candidate = alert["candidate"]` and then one lookup per field
    (`.get` for an optional `?` field, None when the schema lacks it).
    """
    keys = []
    for path in spec.paths:
        record, _, field = path.rstrip("?").partition(".")
        if record != "candidate" or "." in field:
            sys.exit(f"fastavro_baseline: {path}: only candidate.X paths are supported here")
        keys.append(field)
    params = spec.defaults

    def arguments(alert):
        candidate = alert["candidate"]
        return [candidate.get(k) for k in keys] + [params]

    return arguments


def per_alert_us(work, items, seconds, repeat):
    """Mean µs per item of work(item), over `repeat` passes or `seconds`."""
    done = 0
    start = time.perf_counter()
    while True:
        for item in items:
            work(item)
        done += 1
        elapsed = time.perf_counter() - start
        if (repeat and done >= repeat) or (not repeat and elapsed >= seconds):
            return elapsed / (done * len(items)) * 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("alerts", nargs="*", default=[DEFAULT_ALERTS], help=".avro files or folders")
    parser.add_argument("--seconds", type=float, default=2.0, help="time each measurement this long (default 2)")
    parser.add_argument("--repeat", type=int, default=0, help="instead: this many passes over the alerts")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    files = alert_files(args.alerts)
    messages = []
    for path in files:
        with open(path, "rb") as f:
            messages.append(f.read())
    arguments = arguments_getter(cut.bandpass)

    def decode_and_filter(message):
        return cut(*arguments(decode(message)))

    def filter_only(alert):
        return cut(*arguments(alert))

    parsed = [(m, *schema_once(m)) for m in messages]

    def schema_once_and_filter(item):
        message, schema, offset = item
        record = fastavro.schemaless_reader(io.BytesIO(memoryview(message)[offset:]), schema, None)
        return cut(*arguments(record))

    decoded = [decode(m) for m in messages]
    for (message, schema, offset), alert in zip(parsed, decoded):
        record = fastavro.schemaless_reader(io.BytesIO(memoryview(message)[offset:]), schema, None)
        if record != alert:
            sys.exit("fastavro_baseline: reading past the header gave another record than fastavro.reader")
    accepted = sum(isinstance(filter_only(a), bandpass.Accept) for a in decoded)
    total_us = per_alert_us(decode_and_filter, messages, args.seconds, args.repeat)
    schema_once_us = per_alert_us(schema_once_and_filter, parsed, args.seconds, args.repeat)
    filter_us = per_alert_us(filter_only, decoded, args.seconds, args.repeat)

    report = {
        "alerts": len(messages),
        "accepted": accepted,
        "decode_and_filter_us": round(total_us, 3),
        "schema_once_us": round(schema_once_us, 3),
        "filter_us": round(filter_us, 3),
        "python": platform.python_version(),
        "fastavro": fastavro.__version__,
    }
    if args.json:
        print(json.dumps(report))
    else:
        print(
            f"{len(messages)} ZTF alerts, {accepted} accepted by {cut.bandpass.name} "
            f"(CPython {report['python']}, fastavro {report['fastavro']}):\n"
            f"  decode + filter                {total_us:8.2f} µs per alert\n"
            f"  the same, schema parsed once   {schema_once_us:8.2f} µs per alert\n"
            f"  filter only                    {filter_us:8.2f} µs per alert"
        )


if __name__ == "__main__":
    main()
