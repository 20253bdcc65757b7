"""rise-once: each ZTF object once, the first time it is seen brighter, by a
margin, than the faintest detection the filter remembers of it in the same
band, at least a day after the filter first saw it.

It reads no light curve from the packet: what it knows of the object is its
own state, which the host keeps per object between alerts (contract 0.3.0):
when it first saw the object, the faintest magnitude per band, and whether
it already accepted it.

The Python twin of sample-filters/rise-once (same cut, parameters,
verdicts, scores, tags and notes, and the same state: a JSON object the
twins write alike; its README.md has the cut and the state's layout).
"""

import bandpass


@bandpass.filter(
    name="rise-once",
    version="0.1.0",
    survey="ztf",
    description="Each object once: the first time it is seen brighter by min_rise than the faintest "
    "remembered in its band, min_days after it was first seen.",
    fields={
        "jd": "candidate.jd",  # observation date (JD)
        "fid": "candidate.fid",  # filter: 1 = g, 2 = r, 3 = i
        "magpsf": "candidate.magpsf",  # difference-image PSF magnitude
        "isdiffpos": "candidate.isdiffpos",  # "t" or "1" for a positive difference
    },
    params={"min_rise": 0.5, "min_days": 1.0},
    # {"since": first JD seen, "faintest": {"<fid>": faintest mag}, "done": accepted already}
    state=bandpass.State(format="rise-once/1", max_bytes=512),
)
def rise_once(jd, fid, magpsf, isdiffpos, params, state):
    if jd is None or fid is None or magpsf is None or isdiffpos not in ("t", "1"):
        return bandpass.reject()  # not a positive detection: the state stays as it was
    if state.get("done", False):
        return bandpass.reject()  # accepted once already
    band = str(fid)  # a JSON key is a string: the band in decimal
    faintest = state.setdefault("faintest", {})  # {band: faintest magnitude}
    since = state.get("since", jd)  # the first positive detection seen (this one if none)
    f = faintest.get(band)
    if f is not None:
        rise, days = f - magpsf, jd - since
        if rise >= params.min_rise and days >= params.min_days:
            state["done"] = True
            notes = {"rise": bandpass.fixed(rise, 2), "days": bandpass.fixed(days, 2)}
            return bandpass.accept(score=rise, tags=["rise-once"], notes=notes)
    faintest[band] = magpsf if f is None else max(f, magpsf)
    state["since"] = min(since, jd)
    return bandpass.reject()
