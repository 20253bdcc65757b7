#!/usr/bin/env python3
"""Writes nights of alerts of a few ZTF objects, in the real 4.02 schema,
for the tests of filters that remember (tests/all/memory.rs).

Usage:
  python3 tests/py/nights.py TEMPLATE.avro OUT_DIR [FROM:TO]

Reads one real ZTF alert (TEMPLATE.avro, schema 4.02) and writes, for each
object below, one alert file per epoch: the template with its objectId,
candid, candidate.jd, candidate.fid, candidate.magpsf and
candidate.isdiffpos replaced (everything else, cutouts included, kept).
Files are named by candid, and candids are drawn so that the files' name
order is not their time order: a tool that reads them in file order sees
each object's nights shuffled. With FROM:TO, only the epochs from FROM to
before TO days after the first night are written (their candids the same
as in the whole set), so that a test can feed a run the nights in parts.

The light curves exercise the cut of sample-filters/rise-once: a rise
after a day, a rise within the day, negative detections between, a rise
in one band against the other band's faintest, a flat object, and an
object that rises twice (accepted once).
"""

import copy
import os
import random
import sys

import fastavro

# The first night; `NIGHTS_JD0` moves it (to within a year of the
# template's own previous candidates, for the tests of history).
JD0 = float(os.environ.get("NIGHTS_JD0", "2461000.5"))

# objectId: [(days after JD0, fid, magpsf, isdiffpos), ...]
OBJECTS = {
    # Faintest 19.2 on night 1; 18.6 on night 3 is a rise of 0.6 after
    # 3 days: accepted there, and never again (night 4 is brighter still).
    "ZTF26aaaaaaa": [(0.0, 1, 19.0, "t"), (1.0, 1, 19.2, "t"), (2.0, 1, 18.9, "t"),
                     (3.0, 1, 18.6, "t"), (4.0, 1, 18.0, "t")],
    # Rises by a magnitude within a few hours: not a day yet; then a
    # second night at the same brightness is a rise of 1.0 after 1.1 d.
    "ZTF26aaaaaab": [(0.0, 2, 19.5, "t"), (0.1, 2, 18.5, "1"), (1.1, 2, 18.5, "t")],
    # Negative detections (bright in the reference) between: they are
    # neither remembered nor accepted.
    "ZTF26aaaaaac": [(0.0, 1, 19.0, "t"), (1.0, 1, 17.0, "f"), (2.0, 1, 16.0, "0"),
                     (3.0, 1, 18.8, "t")],
    # Bands apart: r is brighter than g always; g rises 0.3 (no), r rises
    # 0.7 against r's own faintest (yes, on day 2.5).
    "ZTF26aaaaaad": [(0.0, 1, 19.0, "t"), (0.5, 2, 18.0, "t"), (1.5, 1, 18.7, "t"),
                     (2.5, 2, 17.3, "t")],
    # Flat for a week: never.
    "ZTF26aaaaaae": [(d * 1.0, 2, 18.2 + 0.01 * (d % 3), "t") for d in range(7)],
}


def main(argv):
    if len(argv) not in (2, 3):
        print(__doc__.strip().split("\n\n")[1], file=sys.stderr)
        return 2
    template_path, out = argv[:2]
    first, last = (float(x) for x in argv[2].split(":")) if len(argv) == 3 else (0.0, 1e9)
    with open(template_path, "rb") as fh:
        reader = fastavro.reader(fh)
        schema = reader.writer_schema
        template = next(reader)
    os.makedirs(out, exist_ok=True)
    rng = random.Random(14)
    candids = rng.sample(range(3_000_000_000_000_000_000, 3_999_999_999_999_999_999, 1_000_003),
                         sum(len(v) for v in OBJECTS.values()))
    i = 0
    for object_id, epochs in OBJECTS.items():
        for days, fid, mag, sign in epochs:
            alert = copy.deepcopy(template)
            candid = candids[i]
            i += 1
            if not first <= days < last:
                continue
            alert["objectId"] = object_id
            alert["candid"] = candid
            c = alert["candidate"]
            c["candid"] = candid
            c["jd"] = JD0 + days
            c["fid"] = fid
            c["magpsf"] = mag
            c["isdiffpos"] = sign
            with open(os.path.join(out, f"{candid}.avro"), "wb") as fh:
                fastavro.writer(fh, schema, [alert])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
