"""hostile: a filter that misbehaves on purpose, to show (and test) what
the sandbox does with each kind of misbehaviour. Never deploy it.

Parameter `mode` picks the misbehaviour:

- loop: an infinite loop; the alert runs out of fuel.
- memory: allocates without end; the instance hits its memory cap and
  is rebuilt. (CPython fills what it allocates, at about 0.8 fuel a
  byte: under the default 50M fuel and 64 MiB the fuel runs out first;
  `bandpass test --memory-mib 32` shows the cap.)
- raise: an uncaught exception in a helper function; the alert is a
  filter error "ZeroDivisionError: ... (at hostile.py:LINE in normalise)"
  and the traceback goes to the filter's log.
- open-file: opens /etc/passwd; the sandbox has no files, so open()
  raises FileNotFoundError, uncaught: a filter error with that message.
- socket: opens a network connection; the sandbox refuses to make a
  socket (PermissionError), uncaught: a filter error with that message.

Parameter `max_mag` limits the misbehaviour to alerts with
candidate.magpsf <= max_mag and rejects the others, to show that the
alerts after a failure get verdicts again; by default (99) it misbehaves
on every alert.
"""

import socket

import bandpass

MODES = ("loop", "memory", "raise", "open-file", "socket")


def check_params(params):
    if params.mode not in MODES:
        raise ValueError(f"parameter mode: expected one of {', '.join(MODES)}, got {params.mode!r}")


@bandpass.filter(
    name="hostile",
    version="0.1.0",
    survey="ztf",
    description="Misbehaves on purpose (parameter mode); a test fixture, never deploy it.",
    fields={"magpsf": "candidate.magpsf"},
    params={"mode": "raise", "max_mag": 99.0},
    check_params=check_params,
)
def hostile(magpsf, params):
    if magpsf is None or magpsf > params.max_mag:
        return bandpass.reject()
    mode = params.mode
    if mode == "loop":
        while True:
            pass
    if mode == "memory":
        hoard = []
        while True:
            hoard.append(bytearray(4 << 20))  # 4 MiB more, forever
    if mode == "raise":
        return bandpass.accept(score=normalise(1.0, 0))
    if mode == "open-file":
        with open("/etc/passwd") as f:
            return bandpass.accept(notes={"first-user": f.readline()})
    if mode == "socket":
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.connect(("192.0.2.1", 80))
            s.sendall(b"an alert went out\n")
    return bandpass.reject()


def normalise(score, total):
    return score / total  # the bug: total is 0
