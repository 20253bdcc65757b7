"""State per object: what a filter declares (`State`), and the dict it keeps.

A filter that declares ``state=bandpass.State(format=..., max_bytes=...)``
receives, with each alert, a dict: what it left for the alert's object last
time, ``{}`` the first time (or after it emptied it). It changes the dict in
place. The host keeps bytes (contract 0.3.0: ``evaluate(fields, state)``
returns a ``decision`` with a ``state-change``); this module is the one place
that turns bytes into the dict and the dict back into a change:

- the bytes are the dict as compact JSON (sorted keys, no spaces, UTF-8);
- unchanged bytes are ``keep``, an emptied dict ``forget``, anything else
  ``set(bytes)``;
- what JSON cannot hold (NaN, a set, an object, a key that is not a string)
  and a state over ``max_bytes`` are errors of the filter on that alert,
  raised here with the key named, and the host keeps the old state.

The component glue and the native path (`FilterSpec.evaluate`) share it, so a
unit test sees the state exactly as the component does.
"""

import json
import json.scanner
import math

__all__ = ["State", "StateError", "KEEP", "FORGET", "load", "change", "encode"]

# `state-change` other than `set`: the component glue maps them to its own.
KEEP = "keep"
FORGET = "forget"

MAX_FORMAT_BYTES = 64
MAX_STATE_BYTES = 65536


class StateError(Exception):
    """The state cannot be read or kept; the host keeps the old state.

    A `FilterError` in spirit (its message alone is the error on the alert);
    defined apart so that `_spec` can import this module first.
    """


class State:
    """What a filter keeps per object: ``state=bandpass.State(format="rise-once/1", max_bytes=512)``.

    format: your name for the layout of the state, printable ASCII without
        spaces, at most 64 bytes. A new version of the filter with the same
        format receives what the old one left; change it (``rise-once/2``)
        when the meaning of the keys changes, and every object starts afresh.
    max_bytes: the most the state of one object may take, as compact JSON
        (1 to 65536; the host refuses a filter above its operator's cap,
        4096 by default). A state over it fails that alert.
    """

    __slots__ = ("format", "max_bytes")

    def __init__(self, format, max_bytes):  # noqa: A002 - the contract's word
        if not isinstance(format, str):
            raise TypeError(f"State(format=...) takes a string such as 'rise-once/1', got {type(format).__name__}")
        if not format or len(format) > MAX_FORMAT_BYTES or not all("!" <= c <= "~" for c in format):
            raise ValueError(
                f"State(format={format!r}): a format is 1 to {MAX_FORMAT_BYTES} printable ASCII characters "
                f"without spaces, your name for the layout of the state, e.g. 'rise-once/1'"
            )
        if type(max_bytes) is not int:
            raise TypeError(f"State(max_bytes=...) takes an integer, got {type(max_bytes).__name__} {max_bytes!r}")
        if not 1 <= max_bytes <= MAX_STATE_BYTES:
            raise ValueError(
                f"State(max_bytes={max_bytes}): must be 1 to {MAX_STATE_BYTES} (the host allows 4096 "
                f"unless its operator says otherwise)"
            )
        self.format = format
        self.max_bytes = max_bytes

    def __eq__(self, other):
        return type(other) is State and (self.format, self.max_bytes) == (other.format, other.max_bytes)

    def __hash__(self):
        return hash((self.format, self.max_bytes))

    def __repr__(self):
        return f"State(format={self.format!r}, max_bytes={self.max_bytes})"


# --- the dict a filter receives ------------------------------------------------


class _StateDict(dict):
    """A dict of the state (each object in the stored JSON becomes one).

    Checks what is stored in it as it is stored, so that a NaN, a set or a
    key that is not a string fails at the author's own line; what reaches
    the state otherwise (a dict of the author's own, ``update``) is checked
    after the call, by `change`, naming the key.
    """

    __slots__ = ()
    _where = "state[...]"

    def __setitem__(self, key, value):
        t = type(value)
        # The common case in a few steps: a str key and a str, int, bool,
        # None or finite float (x - x is NaN for NaN and the infinities).
        if type(key) is not str or not (
            t is float and value - value == 0.0 or t is str or t is int or t is bool or value is None
        ):
            self._check(key, value)
        dict.__setitem__(self, key, value)

    def _check(self, key, value):
        if type(key) is not str:
            raise TypeError(_bad_key(self._where, key))
        problem = _find_bad(value, f"{self._where}[{key!r}]", set())
        if problem is not None:
            raise (ValueError if type(value) is float else TypeError)(problem)


class _RootState(_StateDict):
    """The dict the filter function receives as ``state``."""

    __slots__ = ()
    _where = "state"


_ALLOWED = "dicts with string keys, lists, str, int, float, bool and None"


def _bad_key(where, key):
    if isinstance(key, (int, float)) or key is None:
        stored = json.dumps(json.loads(json.dumps({key: 0}, allow_nan=True)))[1:-4]
        return (
            f"{where} has the key {key!r} ({type(key).__name__}): state keys must be strings "
            f"(JSON would store it as {stored}, and the next alert would look for {key!r} in vain); "
            f"use str({key!r}) as the key"
        )
    return f"{where} has the key {key!r:.40} ({type(key).__name__}): state keys must be strings"


def _find_bad(value, where, seen):
    """Why ``value`` cannot be kept as JSON, naming where it is; None if it can."""
    t = type(value)
    if t is str or t is int or t is bool or value is None:
        return None
    if t is float or isinstance(value, float):
        if math.isfinite(value):
            return None
        return (
            f"{where} is {value!r}: the state is kept as JSON, which has no NaN or infinity; "
            f"store None, or leave the key out"
        )
    if isinstance(value, (str, int)):
        return None
    if isinstance(value, (dict, list, tuple)):
        if id(value) in seen:
            return f"{where} contains itself: the state is kept as JSON, which cannot hold a cycle"
        seen.add(id(value))
        if isinstance(value, dict):
            for k, v in value.items():
                if type(k) is not str:
                    return _bad_key(where, k)
                problem = _find_bad(v, f"{where}[{k!r}]", seen)
                if problem is not None:
                    return problem
        else:
            for i, v in enumerate(value):
                problem = _find_bad(v, f"{where}[{i}]", seen)
                if problem is not None:
                    return problem
        seen.discard(id(value))
        return None
    hint = ": store sorted(...) as a list" if isinstance(value, (set, frozenset)) else ""
    name = type(value).__name__
    article = "an" if name[:1] in "aeiouAEIOU" else "a"
    return (
        f"{where} is {article} {name} ({value!r:.40}), which the state cannot hold{hint}; "
        f"the state is kept as JSON: {_ALLOWED}"
    )


# --- bytes to dict and back ----------------------------------------------------


def _no_constant(name):
    raise ValueError(f"{name} is not JSON")


def _not_json(value):
    raise TypeError(f"{type(value).__name__} is not JSON")


# Made once, not per alert: json.dumps and json.loads with options build
# an encoder or a decoder on every call, which a component pays for in fuel
# (tens of thousands a call). The encoder is json's C encoder with the
# options of json.dumps(state, separators=(",", ":"), sort_keys=True,
# allow_nan=False, ensure_ascii=False), without its check for cycles (a cycle ends in a
# RecursionError, which _find_bad then names); the scanners read one JSON
# value from the start of a text, in C, and the decoder does the same in
# Python with whitespace allowed and a full message when it fails.
_DECODER = json.JSONDecoder(object_pairs_hook=_StateDict, parse_constant=_no_constant)
_scan = json.scanner.make_scanner(_DECODER)
_scan_plain = json.scanner.make_scanner(json.JSONDecoder())
try:
    from json.encoder import c_make_encoder as _c_make_encoder
    # Not the ASCII one: the state is UTF-8 JSON, as the Rust and
    # JavaScript SDKs write it (the same bytes for the same state, and a
    # non-ASCII character counted as its UTF-8 bytes against max_bytes).
    from json.encoder import encode_basestring as _encode_string
except ImportError:  # a Python without json's C accelerator
    _c_make_encoder = None
if _c_make_encoder is not None:
    _iterencode = _c_make_encoder(None, _not_json, _encode_string, None, ":", ",", True, False, False)

    def _dumps(state):
        return "".join(_iterencode(state, 0))
else:
    _ENCODER = json.JSONEncoder(
        separators=(",", ":"), sort_keys=True, allow_nan=False, ensure_ascii=False, default=_not_json
    )
    _dumps = _ENCODER.encode


def _next_format(format):  # noqa: A002
    """``rise-once/1`` -> ``rise-once/2``: the format to suggest after a change of layout."""
    head, _, tail = format.rpartition("/")
    if head and tail.isdigit():
        return f"{head}/{int(tail) + 1}"
    return f"{format}/2"


def _unreadable(spec, raw, why):
    return StateError(
        f"the state stored for this object ({len(raw)} bytes, format {spec.format!r}) is {why}; "
        f"the Python SDK keeps state as a JSON object. If another filter, SDK or layout wrote it under "
        f"this format, give this layout a format of its own (e.g. {_next_format(spec.format)!r}) and "
        f"every object starts afresh"
    )


def load(raw, spec):
    """The dict for the incoming state ``raw`` (bytes, or None for none)."""
    if raw is None:
        return _RootState()
    try:
        text = raw.decode("utf-8")
        try:
            value, end = _scan(text, 0)
        except StopIteration:
            end = -1
        if end != len(text):  # not one compact value: the decoder says why, or reads it with its spaces
            value = _DECODER.decode(text)
    except UnicodeDecodeError as e:
        raise _unreadable(spec, raw, f"not UTF-8 text ({e.reason} at byte {e.start})") from None
    except (ValueError, RecursionError) as e:
        raise _unreadable(spec, raw, f"not JSON ({e})") from None
    if type(value) is not _StateDict:
        raise _unreadable(spec, raw, f"JSON but a {_json_kind(value)}, not an object")
    return _RootState(value)


def _json_kind(value):
    if isinstance(value, list):
        return "list"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"


def encode(state):
    """``state`` (a dict) as the bytes the host keeps; StateError naming the key
    if JSON cannot hold it. (A key that is not a string, which JSON turns
    into one, is found by `change`.)"""
    try:
        encoded = _dumps(state).encode()
    except (TypeError, ValueError, RecursionError) as e:
        raise StateError(_find_bad(state, "state", set()) or f"the state cannot be kept as JSON: {e}") from None
    return encoded


def change(raw, state, spec):
    """What becomes of the object's state: KEEP, FORGET, or the bytes to set.

    ``raw`` is what came in (bytes or None), ``state`` the dict after the
    call. Raises StateError for a state JSON cannot hold or over max_bytes.
    """
    if not state:
        return KEEP if raw is None or raw == b"{}" else FORGET
    encoded = encode(state)
    if encoded == raw:
        return KEEP
    if _scan_plain(encoded.decode(), 0)[0] != state:
        # Something JSON gives back as another thing: a key that is not a
        # string is an error (the next alert would not find it); a tuple
        # comes back as a list, which is fine.
        problem = _find_bad(state, "state", set())
        if problem is not None:
            raise StateError(problem)
    if len(encoded) > spec.max_bytes:
        raise StateError(
            f"state of {len(encoded)} bytes exceeds max_bytes={spec.max_bytes} declared in the filter "
            f"(the state is counted as compact JSON; keep less per object, or declare more)"
        )
    return encoded
