#!/usr/bin/env python3
"""Moves real ZTF alerts across the shared sky maps, and says what the
host-coverage and gw-counterpart cuts (their READMEs in sample-filters/)
decide on each, computed independently of bandpass: for its sky-map
tests.

Usage:
  python3 tests/py/sky_map_alerts.py OUT_DIR SKY_DIR ALERT.avro...

Writes OUT_DIR/legacy/ (each alert at a random position on the sphere)
and OUT_DIR/gw/ (each at an offset of 0.3 to 12 degrees from the
gravitational-wave map's densest cell, its latest earlier epoch made a
detection in its band, fainter or brighter: few real sample alerts
have one), each with one more alert whose
right ascension is NaN, and OUT_DIR/<set>/expected.json: per file, the
verdict and tag the cut implies (host-coverage with its defaults on
legacy/, gw-counterpart with its defaults on gw/), and for gw/
the density and credible level there. Whether a position is in the
Legacy Surveys footprint comes from mocpy; the map's density and
credible level from tests/py/sky_maps.py (astropy and astropy-healpix).
"""

import json
import math
import os
import random
import sys

import astropy.units as u
import fastavro
from mocpy import MOC

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sky_maps  # noqa: E402
from sky_neighbours import offset  # noqa: E402

MIN_DRB = 0.65
MAX_CREDIBLE = 0.9
MIN_RATE = 0.3
OFFSETS_DEG = [0.3, 1.0, 2.0, 3.0, 4.0, 6.0, 12.0]
# The magnitude given to each gw/ alert's latest earlier epoch, over the
# current one's: fainter before (rising), brighter before (fading), or
# nearly the same.
DELTAS = [1.2, -1.0, 0.02, 0.9, -0.8, 2.0, 0.1]


def read(path):
    with open(path, "rb") as f:
        reader = fastavro.reader(f)
        return reader.writer_schema, list(reader)


def write(path, schema, records):
    with open(path, "wb") as f:
        fastavro.writer(f, fastavro.parse_schema(schema), records)


def positive(c):
    return c["isdiffpos"] in ("t", "1")


def host_coverage(c, inside):
    drb = c.get("drb")
    real = drb is None or drb >= MIN_DRB
    if positive(c) and real and inside is True:
        return {"verdict": "accept", "tag": "legacy-footprint"}
    return {"verdict": "reject", "tag": None}


def gw_counterpart(record, at):
    c = record["candidate"]
    if at is None or not positive(c) or None in (c.get("jd"), c.get("fid"), c.get("magpsf")):
        return {"verdict": "reject", "tag": None}
    density, credible = at
    if credible > MAX_CREDIBLE:
        return {"verdict": "reject", "tag": None}
    last = None
    for p in record.get("prv_candidates") or []:
        t, f, m = p.get("jd"), p.get("fid"), p.get("magpsf")
        if None in (t, f, m) or f != c["fid"] or not t < c["jd"]:
            continue
        if last is None or t > last[0]:
            last = (t, m)
    if last is None:
        return {"verdict": "reject", "tag": None}
    rate = (last[1] - c["magpsf"]) / (c["jd"] - last[0])
    if abs(rate) < MIN_RATE:
        return {"verdict": "reject", "tag": None}
    return {
        "verdict": "accept",
        "tag": "rising" if rate > 0 else "fading",
        "score": density,
        "rate": f"{rate:.2f}",
        "credible": f"{credible:.3f}",
    }


def main():
    out, sky, alerts = sys.argv[1], sys.argv[2], sys.argv[3:]
    rng = random.Random(15)
    legacy = MOC.from_fits(os.path.join(sky, "ls_footprint_moc.fits"))
    cells, orders, peak = sky_maps.gw_map(os.path.join(sky, sky_maps.GW))
    for name in ("legacy", "gw"):
        os.makedirs(os.path.join(out, name), exist_ok=True)
    expected = {"legacy": {}, "gw": {}}
    nopos_done = False
    for i, path in enumerate(alerts):
        schema, records = read(path)
        assert len(records) == 1, path
        base = os.path.basename(path)
        # Anywhere on the sphere.
        z = rng.uniform(-1.0, 1.0)
        ra, dec = rng.uniform(0.0, 360.0), math.degrees(math.asin(z))
        records[0]["candidate"]["ra"], records[0]["candidate"]["dec"] = ra, dec
        inside = bool(legacy.contains_lonlat([ra] * u.deg, [dec] * u.deg)[0])
        write(os.path.join(out, "legacy", f"{i:02}-{base}"), schema, records)
        expected["legacy"][f"{i:02}-{base}"] = host_coverage(records[0]["candidate"], inside)
        # Near the gravitational-wave map's peak.
        ra, dec = offset(peak[0], peak[1], OFFSETS_DEG[i % len(OFFSETS_DEG)] * 3600.0, 53.0 * i)
        records[0]["candidate"]["ra"], records[0]["candidate"]["dec"] = ra, dec
        c = records[0]["candidate"]
        earlier = [p for p in records[0].get("prv_candidates") or [] if p.get("jd") is not None and p["jd"] < c["jd"]]
        if earlier and c.get("magpsf") is not None:
            latest = max(earlier, key=lambda p: p["jd"])
            latest["fid"] = c["fid"]
            latest["magpsf"] = c["magpsf"] + DELTAS[i % len(DELTAS)]
            latest["isdiffpos"] = "t"
        at = sky_maps.lookup(cells, orders, [(ra, dec)])[0]
        write(os.path.join(out, "gw", f"{i:02}-{base}"), schema, records)
        e = gw_counterpart(records[0], at[:2])
        e["density"], e["credible_level"] = at[:2]
        expected["gw"][f"{i:02}-{base}"] = e
        if not nopos_done and positive(records[0]["candidate"]):
            records[0]["candidate"]["ra"] = float("nan")
            for name in ("legacy", "gw"):
                write(os.path.join(out, name, f"99-nopos-{base}"), schema, records)
                expected[name][f"99-nopos-{base}"] = {"verdict": "reject", "tag": None}
            nopos_done = True
    for name in ("legacy", "gw"):
        with open(os.path.join(out, name, "expected.json"), "w") as f:
            json.dump(expected[name], f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
