"""fast-risers: ZTF sources brightening faster than a threshold, in mag/day,
in the band of the current detection, measured against the light curve the
alert carries (prv_candidates).

The Python twin of sample-filters/fast-risers (same cuts, parameters and
verdicts; its README.md has the science and the exact cuts).
"""

import bandpass

# A known solar-system object within this distance (arcsec) vetoes.
SSO_RADIUS_ARCSEC = 5.0
# The band tag for each ZTF filter id.
BANDS = {1: "ztf-g", 2: "ztf-r", 3: "ztf-i"}


def check_params(params):
    if params.min_baseline_days <= 0.0:
        raise ValueError("parameter min_baseline_days: must be above 0")


@bandpass.filter(
    name="fast-risers",
    version="0.1.0",
    survey="ztf",
    description="Real ZTF sources brightening by at least 0.5 mag/day in the current band.",
    fields={
        # The current detection.
        "jd": "candidate.jd",  # observation date (JD)
        "fid": "candidate.fid",  # filter: 1 = g, 2 = r, 3 = i
        "magpsf": "candidate.magpsf",  # difference-image PSF magnitude
        "isdiffpos": "candidate.isdiffpos",  # "t" or "1" for a positive difference
        "drb": "candidate.drb?",  # deep real-bogus score (schema 3.3 and later)
        "rb": "candidate.rb",  # random-forest real-bogus score
        "ndethist": "candidate.ndethist",  # detections at this position so far
        "ssdistnr": "candidate.ssdistnr",  # nearest known solar-system object, arcsec
        # The earlier epochs: one list entry each, None where null.
        "prv_jd": "prv_candidates.jd",
        "prv_fid": "prv_candidates.fid",
        "prv_magpsf": "prv_candidates.magpsf?",  # None for a non-detection
        "prv_isdiffpos": "prv_candidates.isdiffpos?",
        "prv_diffmaglim": "prv_candidates.diffmaglim",  # 5-sigma limiting magnitude
    },
    params={"min_rise": 0.5, "min_baseline_days": 0.5, "min_real": 0.65},
    check_params=check_params,
)
def fast_risers(
    jd, fid, magpsf, isdiffpos, drb, rb, ndethist, ssdistnr,
    prv_jd, prv_fid, prv_magpsf, prv_isdiffpos, prv_diffmaglim, params,
):
    real = drb if drb is not None else rb
    if jd is None or fid is None or magpsf is None:
        return bandpass.reject()
    if (
        isdiffpos not in ("t", "1")
        or real is None
        or real < params.min_real
        # A moving object appears from nowhere: demand an earlier detection
        # here, and no known solar-system object nearby.
        or ndethist is None
        or ndethist < 2
        or (ssdistnr is not None and 0.0 <= ssdistnr <= SSO_RADIUS_ARCSEC)
    ):
        return bandpass.reject()

    rise = fastest_rise(
        jd, fid, magpsf, prv_jd, prv_fid, prv_magpsf, prv_isdiffpos, prv_diffmaglim, params.min_baseline_days
    )
    if rise is None:
        return bandpass.reject()
    rate, baseline, from_limit = rise
    if rate < params.min_rise:
        return bandpass.reject()
    tags = ["fast-riser", "rise-from-limit" if from_limit else "rise-from-detection"]
    if fid in BANDS:
        tags.append(BANDS[fid])
    notes = {"rise_mag_per_day": bandpass.fixed(rate, 3), "baseline_days": bandpass.fixed(baseline, 3)}
    return bandpass.accept(score=rate, tags=tags, notes=notes)


def fastest_rise(jd, fid, mag, prv_jd, prv_fid, prv_magpsf, prv_isdiffpos, prv_diffmaglim, min_baseline):
    """The fastest rise of the current detection over the earlier epochs in its
    band, as (mag/day, baseline days, whether from a non-detection), or None."""
    columns = (prv_jd, prv_fid, prv_magpsf, prv_isdiffpos, prv_diffmaglim)
    # No previous candidate, or a schema whose previous candidates lack a
    # column (forced-photometry rows, not detections): no usable light curve.
    if None in columns:
        return None
    if not len(prv_jd) == len(prv_fid) == len(prv_magpsf) == len(prv_isdiffpos) == len(prv_diffmaglim):
        return None
    best = None
    for then, band, m, sign, limit in zip(*columns):
        if then is None or band != fid:
            continue
        baseline = jd - then
        if baseline < min_baseline:
            continue
        if m is not None:
            if sign not in ("t", "1"):
                continue  # a negative detection says nothing about a rise
            reference, from_limit = m, False
        elif limit is not None:
            reference, from_limit = limit, True  # the source was fainter than the limit
        else:
            continue
        rate = (reference - mag) / baseline
        if best is None or rate > best[0]:
            best = (rate, baseline, from_limit)
    return best
