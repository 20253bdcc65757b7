"""Minimal bandpass filter in Python (componentize-py 0.25.1).

componentize-py looks in the app module for one class per exported
interface, named after it in UpperCamelCase: `filter` -> `Filter`.
"""
from typing import List, Tuple

from wit_world import exports
from wit_world.imports import types, log
from componentize_py_types import Err

FIELDS = ["candidate.magpsf", "candidate.rb"]
MAX_MAG = 18.5
MIN_RB = 0.65


def real(v: types.Value):
    # Value is a Union of dataclasses; match on the class.
    if isinstance(v, types.Value_Real):
        return v.value
    if isinstance(v, types.Value_Integer):
        return float(v.value)
    return None


class Filter(exports.Filter):
    def describe(self) -> types.Manifest:
        return types.Manifest(
            name="py-bright",
            version="0.1.0",
            survey="ztf",
            fields=FIELDS,
            description="magpsf < 18.5 and rb > 0.65 (spike).",
        )

    def init(self, params: List[Tuple[str, str]]) -> None:
        global MAX_MAG, MIN_RB
        for k, v in params:
            if k == "max_mag":
                MAX_MAG = float(v)
            elif k == "min_rb":
                MIN_RB = float(v)
            elif k == "boom":
                pass
            else:
                # result<_, string> error: raise Err(value)
                raise Err(f"unknown parameter {k!r}")

    def evaluate(self, fields: List[types.Value]) -> types.Verdict:
        mag = real(fields[0])
        rb = real(fields[1])
        if mag is None or rb is None:
            return types.Verdict_Reject()
        if mag < MAX_MAG and rb > MIN_RB:
            return types.Verdict_Accept(types.Accepted(
                score=rb * (MAX_MAG - mag),
                tags=["bright"],
                annotations=[("magpsf", f"{mag:.3f}")],
            ))
        return types.Verdict_Reject()
