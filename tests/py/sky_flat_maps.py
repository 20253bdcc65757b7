#!/usr/bin/env python3
"""Flat (single-order) HEALPix sky maps made from the shared multi-order
gravitational-wave map, and what each says at many positions, computed
independently of bandpass, for its flat-map tests.

Usage:
  python3 tests/py/sky_flat_maps.py SKY_DIR OUT_DIR N SEED > expected.jsonl

Writes into OUT_DIR (a temporary directory: the nside-1024 maps are 50
and 100 MB) five flat maps of `bayestar.multiorder.fits` of SKY_DIR
(`../shared/data/sky`), rasterised with numpy: a pixel at order k of a
cell of order o <= k gets the cell's density times its own area; a cell
finer than k adds its probability to the pixel holding it.

  flat256_nested.fits       nside 256, NESTED, IMPLICIT, one double a row
  flat256_ring_vector.fits  nside 256, RING, IMPLICIT, 1024 floats a row
                            (`1024E`), its 100 least probable pixels
                            written as healpy's UNSEEN (read as 0)
  flat256_ring_partial.fits nside 256, RING, EXPLICIT: a PIXEL column and
                            the densest pixels holding 99.5 %, rows
                            shuffled, and 50 further pixels UNSEEN
  flat1024_ring_vector.fits nside 1024, RING, IMPLICIT, `1024D` rows
  flat1024_nested.fits      nside 1024, NESTED, IMPLICIT, one float a row

The first line printed is `{"maps": {file: {"nside", "ordering",
"scheme", "cells"}}}`, where `cells` is how many cells the map is once
every four sibling pixels of equal value are merged into their parent,
again up the orders (numpy, level by level, on the values as written).
Then one JSON object per position (N uniform on the sphere, N/4 near the
map's densest pixel, the poles, across RA 0/360): `ra`, `dec`, and per
file `[prob, credible, inside, before]`: the probability per square
degree at the pixel holding the position (astropy-healpix finds it, in
the file's own ordering), the credible level (the probability of every
pixel at least as dense, over the map's total), whether it is in the 90 %
region (`before`, what every denser pixel holds, is under 0.9, and the
pixel holds some probability). A pixel an EXPLICIT map does not list, or
an UNSEEN one, holds 0: density 0, credible 1, outside.

Needs: pip install astropy-healpix (astropy and numpy come with it).
"""

import json
import math
import os
import sys

import astropy.units as u
import numpy as np
from astropy.io import fits
from astropy_healpix import HEALPix
from astropy_healpix.core import nested_to_ring

from sky_maps import multi_order, positions  # the multi-order map's oracle's reader and positions

GW = "bayestar.multiorder.fits"
UNSEEN = -1.6375e30
SKY_DEG2 = 4 * math.pi * (180 / math.pi) ** 2


def rasterise(order, ipix, density, k):
    """Probability per pixel at order k, NESTED."""
    prob = np.zeros(12 * 4**k)
    pixel_sr = 4 * math.pi / (12 * 4**k)
    for o in np.unique(order):
        at = order == o
        p, d = ipix[at], density[at]
        if o <= k:
            n = 4 ** (k - o)
            children = (p[:, None] * n + np.arange(n)[None, :]).ravel()
            prob[children] = np.repeat(d * pixel_sr, n)
        else:
            np.add.at(prob, p >> (2 * (o - k)), d * 4 * math.pi / (12 * 4**o))
    return prob


def merged_cells(nested, present):
    """Cells left when every four present siblings of equal value become
    their parent, level by level up to the 12 base cells."""
    cells = 0
    value, ok = nested, present
    while len(value) > 12:
        v, o = value.reshape(-1, 4), ok.reshape(-1, 4)
        merge = o.all(axis=1) & (v == v[:, :1]).all(axis=1)
        cells += int(o[~merge].sum())
        value, ok = v[:, 0].copy(), merge
    return cells + int(ok.sum())


def write(path, nside, ordering, columns, explicit=False):
    header = fits.Header()
    header["PIXTYPE"] = ("HEALPIX", "HEALPIX pixelisation")
    header["ORDERING"] = ordering
    header["COORDSYS"] = "C"
    header["NSIDE"] = nside
    header["INDXSCHM"] = "EXPLICIT" if explicit else "IMPLICIT"
    header["OBJECT"] = "PARTIAL" if explicit else "FULLSKY"
    table = fits.BinTableHDU.from_columns(columns, header=header)
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(path, overwrite=True)


def answers(values, present, total, pixels, nside, points):
    """[prob per deg2, credible, inside, before] at each point, from
    `values` (0 where not `present`) indexed by `pixels` (the file's
    ordering)."""
    v = np.where(present, values, 0.0)
    desc = np.sort(v)[::-1]
    cum = np.cumsum(desc)
    at = v[pixels]
    last = np.searchsorted(-desc, -at, side="right") - 1
    first = np.searchsorted(-desc, -at, side="left")
    credible = np.minimum(cum[last] / total, 1.0)
    before = np.where(first > 0, cum[np.maximum(first - 1, 0)], 0.0) / total
    inside = (before < 0.9) & (at > 0)
    pixel_deg2 = SKY_DEG2 / (12 * nside * nside)
    return [
        [float(a / pixel_deg2), float(c), bool(i), float(b)]
        for a, c, i, b in zip(at, credible, inside, before)
    ]


def main():
    sky, out, n, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    order, ipix, density = multi_order(os.path.join(sky, GW))
    rng = np.random.default_rng(seed)
    maps = {}  # name -> (nside, ordering, scheme, values in file order, present)

    nested256 = rasterise(order, ipix, density, 8)
    ring256 = np.empty_like(nested256)
    ring256[nested_to_ring(np.arange(len(nested256)), 256)] = nested256
    write(
        os.path.join(out, "flat256_nested.fits"),
        256,
        "NESTED",
        [fits.Column(name="PROB", format="D", array=nested256)],
    )
    maps["flat256_nested.fits"] = (256, "NESTED", "IMPLICIT", nested256, np.ones(len(nested256), bool))

    floats = ring256.astype(np.float32)
    unseen = np.argsort(floats, kind="stable")[:100]
    written = floats.copy()
    written[unseen] = UNSEEN
    write(
        os.path.join(out, "flat256_ring_vector.fits"),
        256,
        "RING",
        [fits.Column(name="PROB", format="1024E", array=written.reshape(-1, 1024))],
    )
    values = floats.astype(np.float64)
    values[unseen] = 0.0
    maps["flat256_ring_vector.fits"] = (256, "RING", "IMPLICIT", values, np.ones(len(values), bool))

    by_prob = np.argsort(-ring256, kind="stable")
    keep = by_prob[: int(np.searchsorted(np.cumsum(ring256[by_prob]), 0.995)) + 1]
    extra = by_prob[len(keep) : len(keep) + 50]
    listed = np.concatenate([keep, extra])
    listed_values = np.concatenate([ring256[keep], np.full(len(extra), UNSEEN)])
    shuffle = rng.permutation(len(listed))
    write(
        os.path.join(out, "flat256_ring_partial.fits"),
        256,
        "RING",
        [
            fits.Column(name="PIXEL", format="K", array=listed[shuffle]),
            fits.Column(name="PROB", format="D", array=listed_values[shuffle]),
        ],
        explicit=True,
    )
    present = np.zeros(len(ring256), bool)
    present[listed] = True
    partial = np.zeros(len(ring256))
    partial[keep] = ring256[keep]
    maps["flat256_ring_partial.fits"] = (256, "RING", "EXPLICIT", partial, present)

    nested1024 = rasterise(order, ipix, density, 10)
    ring1024 = np.empty_like(nested1024)
    ring1024[nested_to_ring(np.arange(len(nested1024)), 1024)] = nested1024
    write(
        os.path.join(out, "flat1024_ring_vector.fits"),
        1024,
        "RING",
        [fits.Column(name="PROB", format="1024D", array=ring1024.reshape(-1, 1024))],
    )
    maps["flat1024_ring_vector.fits"] = (1024, "RING", "IMPLICIT", ring1024, np.ones(len(ring1024), bool))
    del ring256, floats, written
    floats1024 = nested1024.astype(np.float32)
    write(
        os.path.join(out, "flat1024_nested.fits"),
        1024,
        "NESTED",
        [fits.Column(name="PROB", format="E", array=floats1024)],
    )
    maps["flat1024_nested.fits"] = (1024, "NESTED", "IMPLICIT", floats1024.astype(np.float64), np.ones(len(floats1024), bool))

    peak = HEALPix(nside=1024, order="nested").healpix_to_lonlat([int(np.argmax(nested1024))])
    points = positions(n, seed, (peak[0].deg[0], peak[1].deg[0]))
    lon = np.array([p[0] for p in points]) * u.deg
    lat = np.array([p[1] for p in points]) * u.deg

    meta = {}
    per_map = {}
    for name, (nside, ordering, scheme, values, present) in maps.items():
        if ordering == "RING":
            ring_to_nested = np.empty(len(values), np.int64)
            ring_to_nested[nested_to_ring(np.arange(len(values)), nside)] = np.arange(len(values))
            nested_values = np.empty_like(values)
            nested_values[ring_to_nested] = values
            nested_present = np.empty_like(present)
            nested_present[ring_to_nested] = present
        else:
            nested_values, nested_present = values, present
        meta[name] = {
            "nside": nside,
            "ordering": ordering,
            "scheme": scheme,
            "cells": merged_cells(nested_values, nested_present),
        }
        total = float(np.where(present, values, 0.0).sum())
        pixels = HEALPix(nside=nside, order=ordering.lower()).lonlat_to_healpix(lon, lat)
        per_map[name] = answers(values, present, total, pixels, nside, points)
    print(json.dumps({"maps": meta}))
    for i, (ra, dec) in enumerate(points):
        line = {"ra": ra, "dec": dec}
        for name in maps:
            line[name] = per_map[name][i]
        print(json.dumps(line))


if __name__ == "__main__":
    main()
