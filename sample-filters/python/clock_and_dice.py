"""clock-and-dice: a fixture that reads everything a filter could read that
might differ between runs (the wall clock, the monotonic clock, os.urandom
and the random module) and puts it all in its verdict. The host fixes each
of them by the alert, so `bandpass test`, `run` and `serve` give the same
verdict for an alert, byte for byte.
"""

import os
import random
import time

import bandpass


@bandpass.filter(
    name="clock-and-dice",
    version="0.1.0",
    survey="any",
    description="Accepts every alert, noting the clocks and random numbers it read.",
    fields={"jd": "candidate.jd?"},
)
def clock_and_dice(jd):
    wall = time.time_ns()
    start = time.monotonic_ns()
    elapsed = time.monotonic_ns() - start
    urandom = int.from_bytes(os.urandom(8), "little")
    drawn = random.random()
    return bandpass.accept(
        score=drawn,
        notes={"wall_ns": wall, "elapsed_ns": elapsed, "urandom": urandom, "random": repr(drawn)},
    )
