"""bright-transients: bright, real, positive ZTF transients, confirmed by at
least a second detection and not a known solar-system object.

The Python twin of sample-filters/bright-transients (same cuts, parameters
and verdicts; its README.md has the science and the exact cuts).
"""

import bandpass

# A known solar-system object within this distance (arcsec) vetoes.
SSO_RADIUS_ARCSEC = 5.0
# Tagged `new` when first detected at most this many days ago.
NEW_DAYS = 5.0
# The band tag for each ZTF filter id.
BANDS = {1: "ztf-g", 2: "ztf-r", 3: "ztf-i"}


@bandpass.filter(
    name="bright-transients",
    version="0.1.0",
    survey="ztf",
    description="Bright (magpsf <= 18.5), real, positive ZTF transients seen at least twice, not known asteroids.",
    fields={
        "magpsf": "candidate.magpsf",  # difference-image PSF magnitude
        "isdiffpos": "candidate.isdiffpos",  # "t" or "1": brighter than the reference
        "drb": "candidate.drb?",  # deep real-bogus score (schema 3.3 and later)
        "rb": "candidate.rb",  # random-forest real-bogus score (every schema)
        "ndethist": "candidate.ndethist",  # detections at this position so far
        "ssdistnr": "candidate.ssdistnr",  # nearest known solar-system object, arcsec (-999: none)
        "jd": "candidate.jd",  # observation date (JD)
        "jdstarthist": "candidate.jdstarthist",  # first detection here (JD)
        "fid": "candidate.fid",  # filter: 1 = g, 2 = r, 3 = i
        "sgscore1": "candidate.sgscore1",  # star/galaxy score of the nearest PS1 source (1 = star)
        "distpsnr1": "candidate.distpsnr1",  # distance to that source, arcsec
    },
    params={
        "max_mag": 18.5,
        "min_real": 0.65,
        "min_ndethist": 2,
        "max_age_days": float,  # no limit unless given
    },
)
def bright_transients(
    magpsf, isdiffpos, drb, rb, ndethist, ssdistnr, jd, jdstarthist, fid, sgscore1, distpsnr1, params
):
    # Deep real-bogus where the schema has it, else the older score.
    real = drb if drb is not None else rb
    if real is None or magpsf is None or ndethist is None:
        return bandpass.reject()
    positive = isdiffpos in ("t", "1")
    near_sso = ssdistnr is not None and 0.0 <= ssdistnr <= SSO_RADIUS_ARCSEC
    age = jd - jdstarthist if jd is not None and jdstarthist is not None else None
    if params.max_age_days is None:
        young_enough = True
    else:
        young_enough = age is not None and age <= params.max_age_days
    if (
        not positive
        or magpsf > params.max_mag
        or real < params.min_real
        or ndethist < params.min_ndethist
        or near_sso
        or not young_enough
    ):
        return bandpass.reject()

    tags = ["bright"]
    if fid in BANDS:
        tags.append(BANDS[fid])
    if age is not None and age <= NEW_DAYS:
        tags.append("new")
    # A PS1 star within 1.5 arcsec: probably a variable star.
    if sgscore1 is not None and sgscore1 > 0.5 and distpsnr1 is not None and 0.0 <= distpsnr1 <= 1.5:
        tags.append("stellar-counterpart")
    return bandpass.accept(score=real, tags=tags, notes={"magpsf": bandpass.fixed(magpsf, 2)})
