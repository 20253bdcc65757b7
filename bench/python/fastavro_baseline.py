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

    decoded = [decode(m) for m in messages]
    accepted = sum(isinstance(filter_only(a), bandpass.Accept) for a in decoded)
    total_us = per_alert_us(decode_and_filter, messages, args.seconds, args.repeat)
    filter_us = per_alert_us(filter_only, decoded, args.seconds, args.repeat)

    report = {
        "alerts": len(messages),
        "accepted": accepted,
        "decode_and_filter_us": round(total_us, 3),
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
            f"  decode + filter {total_us:8.2f} µs per alert\n"
            f"  filter only     {filter_us:8.2f} µs per alert"
        )


if __name__ == "__main__":
    main()
