"""host-coverage: positive ZTF detections inside the Legacy Surveys
footprint, where a host galaxy has a photometric redshift to look up.

It reads no footprint itself: the host holds the operator's sky map
`legacy` (a MOC) and says, in the field `map.legacy.inside`, whether each
alert is inside it: True or False, or None for an alert without a usable
position (which is never accepted).

The Python twin of sample-filters/host-coverage (same cut, parameter,
verdicts and tag; its README.md has the science and the map).
"""

import bandpass


@bandpass.filter(
    name="host-coverage",
    version="0.1.0",
    survey="ztf",
    description="Positive ZTF detections inside the Legacy Surveys footprint (map legacy), "
    "where a host galaxy photometric redshift exists.",
    fields={
        "isdiffpos": "candidate.isdiffpos",  # "t" or "1" for a positive difference
        "drb": "candidate.drb?",  # deep real-bogus score (schema 3.3 and later)
        "inside": "map.legacy.inside",  # inside the footprint; None without a position
    },
    params={"min_drb": 0.65},
)
def host_coverage(isdiffpos, drb, inside, params):
    positive = isdiffpos in ("t", "1")
    real = drb is None or drb >= params.min_drb  # no drb (older schemas): not a cut
    if positive and real and inside is True:
        return bandpass.accept(tags=["legacy-footprint"])
    return bandpass.reject()
