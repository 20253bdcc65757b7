"""{{name}}: bright, real, positive ZTF detections. A starting point:
change the fields, the cut and the description, then build and test it
(README.md has the commands)."""

import bandpass


@bandpass.filter(
    name="{{name}}",
    version="0.1.0",
    survey="ztf",
    description="Bright, real, positive ZTF detections.",
    # The alert fields the function receives, by argument name (list them
    # all with `bandpass fields ALERT.avro`). A trailing `?` means the
    # field may be missing from older schemas: it then arrives as None.
    fields={
        "magpsf": "candidate.magpsf",  # difference-image PSF magnitude
        "drb": "candidate.drb?",  # deep real-bogus score (schema 3.3 and later)
        "rb": "candidate.rb",  # random-forest real-bogus score (every schema)
        "isdiffpos": "candidate.isdiffpos",  # "t" or "1": brighter than the reference
    },
    # Parameters an operator may set (`--param max_mag=19`), with defaults.
    params={"max_mag": 18.5, "min_real": 0.65},
)
def {{module}}(magpsf, drb, rb, isdiffpos, params):
    real = drb if drb is not None else rb
    positive = isdiffpos in ("t", "1")
    if magpsf is None or real is None or not positive:
        return bandpass.reject()
    if magpsf > params.max_mag or real < params.min_real:
        return bandpass.reject()
    return bandpass.accept(score=real, tags=["bright"], notes={"magpsf": f"{magpsf:.2f}"})
