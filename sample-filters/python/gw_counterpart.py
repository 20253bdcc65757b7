"""gw-counterpart: positive ZTF detections inside a gravitational-wave
localisation's credible region whose brightness changes fast (a kilonova
rises and fades within days; a slow supernova does not).

It reads no sky map itself: the host holds the operator's map `gw` (a
multi-order probability map) and gives each alert, in the fields
`map.gw.credible` and `map.gw.prob`, the smallest credible level whose
region holds it (0 at the peak) and the probability density there, per
square degree; both None for an alert without a usable position.

The Python twin of sample-filters/gw-counterpart (same cut, parameters,
verdicts, score, tags and notes; its README.md has the science and the
map).
"""

import bandpass


@bandpass.filter(
    name="gw-counterpart",
    version="0.1.0",
    survey="ztf",
    description="Positive ZTF detections inside the gravitational-wave map gw's max_credible region, "
    "rising or fading by at least min_rate mag/day since the last detection in the band.",
    fields={
        # The current detection.
        "isdiffpos": "candidate.isdiffpos",  # "t" or "1" for a positive difference
        "jd": "candidate.jd",  # observation date (JD)
        "fid": "candidate.fid",  # filter: 1 = g, 2 = r, 3 = i
        "magpsf": "candidate.magpsf",  # difference-image PSF magnitude
        # The earlier epochs: one list entry each, None where null.
        "prv_jd": "prv_candidates.jd",
        "prv_fid": "prv_candidates.fid",
        "prv_magpsf": "prv_candidates.magpsf?",  # None for a non-detection
        # The map's answers; None without a position.
        "credible": "map.gw.credible",  # smallest credible level holding the alert
        "prob": "map.gw.prob",  # probability density there, per square degree
    },
    params={"max_credible": 0.9, "min_rate": 0.3},
)
def gw_counterpart(isdiffpos, jd, fid, magpsf, prv_jd, prv_fid, prv_magpsf, credible, prob, params):
    if (
        isdiffpos not in ("t", "1")
        or jd is None
        or fid is None
        or magpsf is None
        or credible is None
        or prob is None
    ):
        return bandpass.reject()
    if credible > params.max_credible:
        return bandpass.reject()
    # The latest earlier detection in the same band (the first on a tie).
    last = None  # (jd, magpsf)
    jds, fids, mags = prv_jd or (), prv_fid or (), prv_magpsf or ()
    for i in range(min(len(jds), len(fids), len(mags))):
        t, f, m = jds[i], fids[i], mags[i]
        if t is None or f is None or m is None:
            continue
        if f == fid and t < jd and (last is None or t > last[0]):
            last = (t, m)
    if last is None:
        return bandpass.reject()
    then, before = last
    rate = (before - magpsf) / (jd - then)  # positive: brightening, mag/day
    if abs(rate) < params.min_rate:
        return bandpass.reject()
    return bandpass.accept(
        score=prob,
        tags=["rising" if rate > 0.0 else "fading"],
        notes={"rate": bandpass.fixed(rate, 2), "credible": bandpass.fixed(credible, 3)},
    )
