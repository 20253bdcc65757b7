"""rise-once: a ZTF object that has brightened, in one band, by at least
min_rise magnitudes below the faintest this filter saw of it in that band,
at least min_days after the filter first saw it; accepted once per object.

The filter remembers each object (contract 0.3.0 state): when it first saw
it, the faintest magnitude per band, and whether it already accepted it.
So it measures a rise over every alert the host has passed it, not only the
light curve one alert carries, and stays quiet about an object afterwards.

The Python twin of sample-filters/rise-once (same cut, parameters, state
rules, verdicts, scores, tags and notes; the state's bytes differ: each SDK
keeps its own layout, so the two must not share a deployment).
"""

import bandpass


@bandpass.filter(
    name="rise-once",
    version="0.1.0",
    survey="ztf",
    description="ZTF objects that rise by min_rise mag in a band over at least min_days, accepted once each.",
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
        return bandpass.reject()  # nothing to learn: the state stays as it was
    if state.get("done", False):
        return bandpass.reject()  # accepted once already
    band = str(fid)  # JSON keys are strings
    faintest = state.get("faintest", {})
    since = state.get("since")
    f = faintest.get(band)
    if f is not None and since is not None:
        rise, days = f - magpsf, jd - since
        if rise >= params.min_rise and days >= params.min_days:
            state["done"] = True
            return bandpass.accept(
                score=rise, tags=["rise-once"], notes={"rise": f"{rise:.2f}", "days": f"{days:.2f}"}
            )
    faintest[band] = magpsf if f is None else max(f, magpsf)
    state["faintest"] = faintest
    state["since"] = jd if since is None else min(since, jd)
    return bandpass.reject()
