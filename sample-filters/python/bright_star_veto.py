"""bright-star-veto: positive ZTF detections with no bright Gaia star nearby.

A bright star makes ghosts, diffraction spikes and bad subtractions around
it, which pass as positive detections. The filter asks the host for the
Gaia rows within 10 arcseconds of each alert (a cross-match, contract
0.4.0) and vetoes the alert when any of them is brighter than
`max_star_mag`. The rows arrive as columns, one entry per star, nearest
first; none at all is an empty list.

The Python twin of sample-filters/bright-star-veto (same cut, parameter,
cross-match and verdicts; its README.md has the science).
"""

import math

import bandpass


@bandpass.filter(
    name="bright-star-veto",
    version="0.1.0",
    survey="ztf",
    description="Positive ZTF detections with no Gaia star brighter than max_star_mag within 10 arcseconds "
    "(ghosts and bright-star artifacts vetoed).",
    fields={
        "isdiffpos": "candidate.isdiffpos",  # "t" or "1" for a positive difference
        "dist": "xmatch.stars.dist",  # each Gaia star's distance from the alert, arcsec
        "mag": "xmatch.stars.mag",  # each Gaia star's magnitude (G)
    },
    params={"max_star_mag": 15.0},
    # The Gaia stars within 10 arcsec, nearest first, at most 20.
    crossmatches=[bandpass.Crossmatch("stars", "gaia", radius_arcsec=10.0, max_rows=20)],
)
def bright_star_veto(isdiffpos, dist, mag, params):
    if isdiffpos not in ("t", "1"):
        return bandpass.reject()
    # No position (the columns are absent, not empty): no search was run,
    # so nothing says the field is clear.
    if dist is None:
        return bandpass.reject()
    # A star without a magnitude (None, NaN) never vetoes.
    for m in mag or ():
        if m is not None and not math.isnan(m) and m < params.max_star_mag:
            return bandpass.reject()
    return bandpass.accept(tags=["faint-neighbour" if dist else "clear"])
