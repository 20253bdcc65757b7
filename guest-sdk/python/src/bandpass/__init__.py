"""Write bandpass alert filters in Python.

A filter is a plain function that receives the alert fields it declares
as plain Python values and returns a verdict::

    import bandpass

    @bandpass.filter(
        name="bright", version="0.1.0", survey="ztf",
        description="Bright, real, positive ZTF detections.",
        fields={"magpsf": "candidate.magpsf", "rb": "candidate.rb",
                "isdiffpos": "candidate.isdiffpos"},
        params={"max_mag": 18.5},
    )
    def bright(magpsf, rb, isdiffpos, params):
        if magpsf is None or rb is None or isdiffpos not in ("t", "1"):
            return bandpass.reject()
        if magpsf <= params.max_mag and rb >= 0.65:
            return bandpass.accept(score=rb, tags=["bright"], notes={"magpsf": bandpass.fixed(magpsf, 2)})
        return bandpass.reject()

`bandpass-py build bright.py -o bright.wasm` makes it a component for the
bandpass host; `bandpass test bright.wasm ALERTS` runs it on real alerts.
This module imports nothing of the component model: the same file runs in
plain CPython (`bright.bandpass.evaluate({...})`, or call `bright(...)`).

A filter that keeps a little state per object declares
``state=bandpass.State(format="my-filter/1", max_bytes=512)`` and takes an
argument ``state``: a dict it changes in place, which the host keeps (as
JSON) for the object's next alert.

A filter that reads catalogue rows near each alert declares
``crossmatches=[bandpass.Crossmatch("stars", "gaia", radius_arcsec=10.0, max_rows=20)]``
and the fields ``xmatch.stars.dist``, ``xmatch.stars.mag``, ...: lists, one
entry per row, nearest first.

``bandpass.fixed(value, decimals)`` writes a real number for a note as the
Rust and JavaScript SDKs do (exact binary value, a half to the even digit).
See docs/filter-authors-python.md.
"""

from . import log
from ._crossmatch import Crossmatch
from ._spec import Decision, FilterError, ParamError, Params, filter
from ._state import State, StateError
from ._verdict import Accept, Reject, accept, fixed, reject

__version__ = "0.2.0"
#: The contract this SDK builds for (its copy is bandpass/wit/filter.wit).
CONTRACT = "bandpass:filter@0.5.0"

__all__ = [
    "filter",
    "accept",
    "reject",
    "Accept",
    "Reject",
    "fixed",
    "Params",
    "ParamError",
    "FilterError",
    "State",
    "StateError",
    "Crossmatch",
    "Decision",
    "log",
    "CONTRACT",
]
