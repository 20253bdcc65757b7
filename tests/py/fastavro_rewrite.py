#!/usr/bin/env python3
"""Writes Avro container files with every codec of the Avro specification,
with fastavro, for bandpass's decoder tests.

Usage:
  python3 tests/py/fastavro_rewrite.py OUT_DIR INPUT.avro [INPUT.avro ...]
  python3 tests/py/fastavro_rewrite.py OUT_DIR --weather

Reads the records of the inputs (which must share one writer schema) with
fastavro and writes them again with that schema, once per codec (null,
deflate, snappy, zstandard, bzip2, xz):

- OUT_DIR/<codec>.avro: every record, in two blocks when there are several
  (all but the last, then the last);
- OUT_DIR/<codec>-first.avro: the first record alone, as a survey's
  one-alert message.

`--weather` writes the records of Apache Avro's interoperability file
`weather.avro` (test.Weather: station, time, temp) instead: the project
does not have Apache's `weather-snappy.avro` / `weather-zstd.avro`, so the
tests make their equivalents here, many small records to a block.

Needs fastavro with its optional codec packages: `pip install fastavro
cramjam backports.zstd` (cramjam for snappy, backports.zstd for zstandard
before Python 3.14; bz2 and lzma are in the standard library). The Rust test tests/all/decode.rs runs this script, then reads
each file with bandpass and with tests/py/fastavro_dump.py and compares.
"""

import json
import os
import sys

try:
    import fastavro
    import fastavro.read
    import fastavro.write
except ImportError:
    sys.stderr.write(
        "fastavro is not installed: run `pip install fastavro cramjam backports.zstd` "
        "(needed by tests/py/fastavro_rewrite.py)\n"
    )
    sys.exit(3)

# Raw values, written back as they were read: no logical type conversion.
fastavro.read.LOGICAL_READERS.clear()

CODECS = ["null", "deflate", "snappy", "zstandard", "bzip2", "xz"]

WEATHER_SCHEMA = {
    "type": "record",
    "name": "Weather",
    "namespace": "test",
    "doc": "A weather reading.",
    "fields": [
        {"name": "station", "type": "string", "order": "ignore"},
        {"name": "time", "type": "long"},
        {"name": "temp", "type": "int"},
    ],
}

WEATHER = [
    {"station": "011990-99999", "time": -619524000000, "temp": 0},
    {"station": "011990-99999", "time": -619506000000, "temp": 22},
    {"station": "011990-99999", "time": -619484400000, "temp": -11},
    {"station": "012650-99999", "time": -655531200000, "temp": 111},
    {"station": "012650-99999", "time": -655509600000, "temp": 78},
]


def read_all(paths):
    """(writer schema, records) of the inputs; they must share the schema."""
    schema, records = None, []
    for p in paths:
        with open(p, "rb") as fh:
            reader = fastavro.reader(fh)
            text = json.loads(reader.metadata["avro.schema"])
            if schema is None:
                schema = text
            elif text != schema:
                raise SystemExit("%s has another writer schema than %s" % (p, paths[0]))
            records.extend(reader)
    return schema, records


def write(path, schema, codec, blocks):
    """Writes `blocks` (lists of records), each as one container block (the
    sync interval is past any block's size: only flush() ends a block)."""
    with open(path, "wb") as fh:
        w = fastavro.write.Writer(
            fh, fastavro.parse_schema(schema), codec=codec, sync_interval=1 << 30
        )
        for block in blocks:
            for r in block:
                w.write(r)
            w.flush()


def main(argv):
    if len(argv) < 2:
        sys.stderr.write(__doc__)
        return 2
    out, inputs = argv[0], argv[1:]
    if inputs == ["--weather"]:
        schema, records = WEATHER_SCHEMA, WEATHER
    else:
        schema, records = read_all(inputs)
    if not records:
        raise SystemExit("the inputs hold no records")
    blocks = [records[:-1], records[-1:]] if len(records) > 1 else [records]
    os.makedirs(out, exist_ok=True)
    for codec in CODECS:
        write(os.path.join(out, codec + ".avro"), schema, codec, blocks)
        write(os.path.join(out, codec + "-first.avro"), schema, codec, [records[:1]])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
