#!/usr/bin/env python3
"""What the shared sky maps say at many positions, computed independently
of bandpass, for its sky-map tests.

Usage:
  python3 tests/py/sky_maps.py SKY_DIR N SEED > expected.jsonl

Positions: N uniform on the sphere, N/4 near the gravitational-wave
map's densest cell, and fixed ones at the poles and across RA 0/360.
One JSON object per line: `ra`, `dec`, and per map file of SKY_DIR
(`../shared/data/sky`): for the two MOCs, whether the position is inside
(mocpy, the CDS's Python MOC library); for `bayestar.multiorder.fits`,
the probability density there per square degree, the smallest
credible level whose region holds it (the cumulative probability of
every cell at least as dense), and whether it is in the 90% region
(the smallest set of densest cells holding at least 90%: the cells
denser than its own hold less), from its UNIQ and PROBDENSITY columns
read with astropy and the cell holding the position found with
astropy-healpix.

Needs: pip install mocpy astropy-healpix (astropy and numpy come with
them).
"""

import json
import math
import os
import random
import sys

import astropy.units as u
import numpy as np
from astropy.io import fits
from astropy_healpix import HEALPix
from mocpy import MOC

MOCS = ["ls_footprint_moc.fits", "P-SDSS9-r.moc.fits"]
GW = "bayestar.multiorder.fits"


def positions(n, seed, peak):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        z = rng.uniform(-1.0, 1.0)
        out.append((rng.uniform(0.0, 360.0), math.degrees(math.asin(z))))
    for _ in range(n // 4):
        out.append(((peak[0] + rng.gauss(0, 3)) % 360.0, max(-90.0, min(90.0, peak[1] + rng.gauss(0, 3)))))
    for dec in (90.0, -90.0, 89.9999, -89.9999):
        out.append((0.0, dec))
    for ra in (0.0, 359.99999, 1e-9, 180.0, 360.0):
        out.append((ra, 12.5))
    return out


def multi_order(path):
    """A multi-order map's cells: order, nested index and density (per
    steradian), read by astropy."""
    with fits.open(path) as f:
        table = f[1].data
        uniq = np.asarray(table["UNIQ"], dtype=np.int64)
        density = np.asarray(table["PROBDENSITY"], dtype=np.float64)
    order = (np.floor(np.log2(uniq) / 2) - 1).astype(np.int64)
    ipix = uniq - 4 ** (order + 1)
    return order, ipix, density


def gw_map(path):
    order, ipix, density = multi_order(path)
    area = 4 * math.pi / (12 * 4.0 ** order)
    prob = density * area
    total = prob.sum()
    # Credible level of a cell: the probability of every cell at least as
    # dense (its own included), over the total.
    by_density = np.argsort(-density, kind="stable")
    cumulative = np.cumsum(prob[by_density])
    sorted_density = density[by_density]
    # For each cell, the last position whose density is >= its own.
    last = np.searchsorted(-sorted_density, -density, side="right") - 1
    credible = np.minimum(cumulative[last] / total, 1.0)
    # What every strictly denser cell holds.
    first = np.searchsorted(-sorted_density, -density, side="left")
    before = np.where(first > 0, cumulative[np.maximum(first - 1, 0)], 0.0) / total
    inside = (before < 0.9) & (density > 0)
    cells = {
        (int(o), int(p)): (float(d), float(c), bool(i))
        for o, p, d, c, i in zip(order, ipix, density, credible, inside)
    }
    peak = int(np.argmax(density))
    hp = HEALPix(nside=2 ** int(order[peak]), order="nested")
    lon, lat = hp.healpix_to_lonlat([int(ipix[peak])])
    return cells, sorted(set(int(o) for o in order)), (lon.deg[0], lat.deg[0])


def lookup(cells, orders, points):
    """(density per square degree, credible level, in the 90% region) at
    each (ra, dec): the cell of the map holding it, at whichever order
    the map has it."""
    lon = np.array([p[0] for p in points]) * u.deg
    lat = np.array([p[1] for p in points]) * u.deg
    per_order = {o: HEALPix(nside=2**o, order="nested").lonlat_to_healpix(lon, lat) for o in orders}
    deg2_per_sr = (180.0 / math.pi) ** 2
    out = []
    for i in range(len(points)):
        found = None
        for o in orders:
            hit = cells.get((o, int(per_order[o][i])))
            if hit is not None:
                found = hit
                break
        density, credible, inside = found if found is not None else (0.0, 1.0, False)
        out.append((density / deg2_per_sr, credible, inside))
    return out


def main():
    sky, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    cells, orders, peak = gw_map(os.path.join(sky, GW))
    points = positions(n, seed, peak)
    lon = np.array([p[0] for p in points]) * u.deg
    lat = np.array([p[1] for p in points]) * u.deg
    inside = {}
    for name in MOCS:
        moc = MOC.from_fits(os.path.join(sky, name))
        inside[name] = moc.contains_lonlat(lon, lat)
    for i, ((ra, dec), (prob, credible, inside90)) in enumerate(zip(points, lookup(cells, orders, points))):
        line = {"ra": ra, "dec": dec, GW: {"prob": prob, "credible": credible, "inside": inside90}}
        for name in MOCS:
            line[name] = bool(inside[name][i])
        print(json.dumps(line))


if __name__ == "__main__":
    main()
