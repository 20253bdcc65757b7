"""The component glue: used only inside a built component, never natively.

`bandpass-py build` generates the component's entry module, which imports
the author's module (registering its filter) and then::

    Filter = bandpass._component.bind("my_filter")

componentize-py exports that class as the `filter` interface of
`wit/filter.wit` (world `alert-filter`, contract 0.5.0). The class turns
each alert's fields (`fields`: numbers, kinds and texts packed in one
bytes object; `others`, None when no field needs one) into the plain
Python values the author's function takes, calls it positionally, and
turns its verdict back into the WIT answer: `None` for a rejection that
leaves the state as it was (the cheapest answer to hand back), else a
`decided` decision with the object's `state-change`: always `keep` for a
filter that declares no state; for one that does, the change of the dict
it was handed (`bandpass._state`).

Cost is the point here (the contract crosses the boundary once per alert
and the SDK must not spend more than the crossing). Per alert there is one
dict lookup of the kinds' bytes, then a caller generated for that pattern
of kinds (see `_compile`) does one `struct.unpack_from` for every number
and text span and calls the author's function with the arguments in place;
only `others` (bytes, columns) are converted one by one. A verdict is one
check of the returned object and the WIT records it becomes.

Every exception from the author's code (or from the glue) becomes a
`failed` answer, "ExcType: message (at file.py:LINE in function)" (`init`'s
an `err` result), and its traceback
goes to the filter's log: an exception escaping to componentize-py would
trap the instance and lose the message. MemoryError is the exception: it is
re-raised, so that the host reports the memory cap it hit and rebuilds the
instance.
"""

import os
import struct
import sys
import traceback
from array import array
from operator import attrgetter

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import log as wit_log
from wit_world.imports import types as wit

from . import _spec, _state
from . import log as _log
from ._verdict import REJECT, Accept

# --- what the author declared (set once by `bind`, at build time) ---------
_spec_ = None  # the FilterSpec
_function = None  # the author's function
_params = None  # the Params of this deployment (set by `init`)
_none_message = None  # the error for a function that returned None
_reseed = None  # `random.seed` when the filter imported `random` (see `bind`)
_state_spec = None  # the declared bandpass.State, or None
_kinds = slice(0, 0)  # where the kinds are in `fields`: bytes 8n to 9n for n fields

# --- values -----------------------------------------------------------------

_SDK_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


# Columns cost per element, so the common cases take no Python step per
# element: a column without nulls is one C call, nulls cost one pass.


def _padded(present, n):
    """A presence mask of the wrong length cut or padded (as absent) to ``n``."""
    return present[:n].ljust(n, b"\x00")


def _numbers(v, typecode):
    """A packed numeric column as a list (``typecode``: "d" reals, "q"
    integers), None where null."""
    c = v.value
    values = array(typecode, c.values).tolist()
    present = c.present
    if present.count(1) != len(values):
        if len(present) != len(values):
            present = _padded(present, len(values))
        values = [x if p == 1 else None for x, p in zip(values, present)]
    return values


def _reals(v):
    """A real column as a list of floats, None where null."""
    return _numbers(v, "d")


def _integers(v):
    """An integer column as a list of ints, None where null."""
    return _numbers(v, "q")


def _texts(v):
    """A text column as a list of str, None where null."""
    c = v.value
    text, ends, present = c.text, c.ends, c.present
    values = []
    start = 0
    if not ends or len(text) == ends[-1]:  # all ASCII: byte offsets are str offsets
        for end in ends:
            values.append(text[start:end])
            start = end
    else:
        raw = text.encode()
        for end in ends:
            values.append(raw[start:end].decode(errors="replace"))
            start = max(start, end)
    if present.count(1) != len(values):
        if len(present) != len(values):
            present = _padded(present, len(values))
        values = [x if p == 1 else None for x, p in zip(values, present)]
    return values


def _absent(v):
    return None


_value = attrgetter("value")

# How each `value` case becomes a plain Python value.
_CONVERT = {
    wit.Value_Text: _value,
    wit.Value_Real: _value,
    wit.Value_Integer: _value,
    wit.Value_Boolean: _value,
    wit.Value_Bytes: _value,
    wit.Value_Booleans: _value,
    wit.Value_Reals: _reals,
    wit.Value_Integers: _integers,
    wit.Value_Texts: _texts,
    wit.Value_Absent: _absent,
}

# Kinds of `evaluate`'s fields (wit/filter.wit).
_ABSENT, _REAL, _INTEGER, _BOOLEAN, _OTHER, _TEXT = 0, 1, 2, 3, 4, 5


def _compile(kinds):
    """The caller for one pattern of kinds: unpacks and calls the author's function.

    Generated code, so that each alert costs one `struct.unpack_from` into
    locals and one call with the arguments in place: for kinds 1, 3, 0, 5,
    4 (a real, a boolean, an absent field, a text, a column) it reads

        def call(fields, others, params, state):
            v0, v1, s3, e3 = unpack(fields)
            return function(v0, v1 != 0, None, fields[s3:e3].decode("utf-8", "replace"), convert[type(others[0])](others[0]), params)

    Every field takes 8 bytes at the start of `fields`: a double (kind 1),
    a 64-bit integer (kinds 2 and 3), a text's first and past-its-last byte
    in `fields` (kind 5, two 32-bit integers), or bytes to skip (absent,
    others, and kinds of later contract versions, which read as absent).
    """
    fmt, names, args = ["<"], [], []
    j = 0
    for i, kind in enumerate(kinds):
        if kind == _REAL or kind == _INTEGER or kind == _BOOLEAN:
            fmt.append("d" if kind == _REAL else "q")
            names.append(f"v{i}")
            args.append(f"v{i} != 0" if kind == _BOOLEAN else f"v{i}")
        elif kind == _TEXT:
            fmt.append("II")
            names.extend((f"s{i}", f"e{i}"))
            args.append(f'fields[s{i}:e{i}].decode("utf-8", "replace")')
        elif kind == _OTHER:
            fmt.append("8x")
            args.append(f"convert[type(others[{j}])](others[{j}])")
            j += 1
        else:
            fmt.append("8x")
            args.append("None")
    args.extend(_spec_.extras)  # "params", "state", in the function's order
    lines = ["def call(fields, others, params, state):"]
    if names:
        lines.append(f"    {', '.join(names)}, = unpack(fields)")
    lines.append(f"    return function({', '.join(args)})")
    scope = {"unpack": struct.Struct("".join(fmt)).unpack_from, "function": _function, "convert": _CONVERT}
    exec(compile("\n".join(lines), f"<bandpass: fields of kinds {list(kinds)}>", "exec"), scope)  # noqa: S102
    return scope["call"]


# Callers by kinds; a filter sees a few patterns (per schema version and
# which fields are null), so the cache stays small. Bounded all the same.
_callers = {}
_MAX_CALLERS = 256


def _caller(kinds, sent):
    """The caller for ``kinds``, the kinds' bytes of a `fields` of ``sent`` bytes."""
    n = len(_spec_.paths)
    if len(kinds) != n or sent < 9 * n:
        raise ValueError(f"the host sent {sent} bytes of fields for {n} declared fields (9 a field at least)")
    if len(_callers) >= _MAX_CALLERS:
        _callers.clear()
    call = _callers[kinds] = _compile(kinds)
    return call


# --- verdicts -----------------------------------------------------------------

_WIT_REJECT = wit.Verdict_Reject()
_Verdict_Accept = wit.Verdict_Accept
_Accepted = wit.Accepted
_Decision = wit.Decision
_Decided = wit.Answer_Decided
_Failed = wit.Answer_Failed
_KEEP = wit.StateChange_Keep()
_FORGET = wit.StateChange_Forget()
_Set = wit.StateChange_Set


def _verdict(result):
    """A return value other than a rejection, as a WIT verdict."""
    if type(result) is not Accept:
        if result is None:
            raise _spec.FilterError(_none_message)
        result = _spec.verdict_of(result, _function)  # True, or a TypeError naming what came back
    return _Verdict_Accept(_Accepted(*result))


# --- errors -------------------------------------------------------------------


# Where the standard library and installed packages (this SDK's folder's
# parent) live: an error is located in the author's code, not in theirs.
# (`traceback`, not `os`: a frozen module may not say where it lives.)
_LIBRARIES = (os.path.dirname(os.path.abspath(traceback.__file__)) + os.sep, os.path.dirname(_SDK_DIR[:-1]) + os.sep)


def _is_sdk(filename):
    return filename.startswith(_SDK_DIR) or filename.startswith("<bandpass")


def _is_author(filename):
    return not filename.startswith(_LIBRARIES) and not filename.startswith("<")


def _describe(e):
    """ "ExcType: message (at file.py:LINE in function)", at the author's innermost frame.

    The innermost frame in the author's own files; failing that (an error
    in the glue itself), the innermost frame outside the SDK, or at all.
    """
    frames = []
    tb = e.__traceback__
    while tb is not None:
        frames.append((tb.tb_frame.f_code, tb.tb_lineno))
        tb = tb.tb_next
    where = None
    for wanted in (_is_author, lambda f: not _is_sdk(f), lambda f: True):
        where = next(((c, n) for c, n in reversed(frames) if wanted(c.co_filename)), None)
        if where is not None:
            break
    text = str(e)
    out = f"{type(e).__name__}: {text}" if text else type(e).__name__
    if where is not None:
        code, line = where
        out += f" (at {os.path.basename(code.co_filename)}:{line} in {code.co_name})"
    return out


def _log_traceback(e):
    """The exception's traceback, without the SDK's frames, to the filter log."""
    try:
        te = traceback.TracebackException.from_exception(e)
        te.stack = traceback.StackSummary.from_list([f for f in te.stack if not _is_sdk(f.filename)])
        for chunk in te.format():
            for line in chunk.splitlines():
                if line.strip():
                    wit_log.log(wit_log.Level.ERROR, line)
    except Exception:  # noqa: BLE001 - a log line must never hide the error itself
        wit_log.log(wit_log.Level.ERROR, _describe(e))


def _failure(e):
    """The message for an exception; MemoryError is re-raised (see the module doc)."""
    if isinstance(e, MemoryError):
        raise e
    if isinstance(e, (_spec.FilterError, _state.StateError)):
        return str(e)
    _log_traceback(e)
    return _describe(e)


# --- the exported interface --------------------------------------------------


class Filter(exports.Filter):
    """The `filter` interface, serving the one filter `bind` found."""

    def describe(self):
        s = _spec_
        state = None if s.state is None else wit.StateSpec(format=s.state.format, max_bytes=s.state.max_bytes)
        return wit.Manifest(
            name=s.name,
            version=s.version,
            survey=s.survey,
            fields=list(s.paths),
            description=s.description,
            state=state,
            crossmatches=[
                wit.Crossmatch(name=c.name, catalog=c.catalog, radius_arcsec=c.radius_arcsec, max_rows=c.max_rows)
                for c in s.crossmatches
            ],
        )

    def init(self, params):
        global _params
        try:
            _params = _spec_.configure(params)
        except BaseException as e:  # noqa: BLE001 - every failure refuses the deployment with its reason
            if isinstance(e, MemoryError):
                raise
            if isinstance(e, (ValueError, _spec.FilterError)):
                raise Err(str(e)) from None
            raise Err(_failure(e)) from None

    def evaluate(self, fields, others, state):
        try:
            if _reseed is not None:
                _reseed(int.from_bytes(_urandom(16), "little"))
            kinds = fields[_kinds]
            call = _callers.get(kinds) or _caller(kinds, len(fields))
            if _state_spec is None:
                # No state declared: the host sends none, and it stays none.
                result = call(fields, others, _params, None)
                if result is REJECT or result is False:
                    return None  # reject, state unchanged
                return _Decided(_Decision(_verdict(result), _KEEP))
            current = _state.load(state, _state_spec)
            result = call(fields, others, _params, current)
            rejected = result is REJECT or result is False
            verdict = _WIT_REJECT if rejected else _verdict(result)
            change = _state.change(state, current, _state_spec)
            if change is _state.KEEP:
                return None if rejected else _Decided(_Decision(verdict, _KEEP))
            if change is _state.FORGET:
                return _Decided(_Decision(verdict, _FORGET))
            return _Decided(_Decision(verdict, _Set(change)))
        except BaseException as e:  # noqa: BLE001 - an escaping exception would trap the instance
            return _Failed(_failure(e))


def _host_log(level, message):
    wit_log.log(_LEVELS[level], message)


_LEVELS = (wit_log.Level.DEBUG, wit_log.Level.INFO, wit_log.Level.WARN, wit_log.Level.ERROR)


_urandom = os.urandom


def bind(module_name):
    """The exported class, serving the filter declared in ``module_name``.

    Runs while the component is built, after the filter's module (and so
    every module it imports) is imported. If `random` is among them, each
    alert reseeds its generator from `os.urandom`, which reads the host's
    `wasi:random`: a stream the host starts afresh from the component and
    the alert, so the filter draws the same numbers for the same alert in
    `test`, `run` and `serve`, whatever came before. Without `random`,
    this costs nothing per alert.
    """
    global _spec_, _function, _params, _none_message, _reseed, _state_spec, _kinds
    try:
        _spec_ = _spec.find_filter(module_name)
    except LookupError as e:
        raise LookupError(f"{module_name}.py {e}") from None
    _function = _spec_.function
    _params = _spec_.defaults
    _state_spec = _spec_.state
    _kinds = slice(8 * len(_spec_.paths), 9 * len(_spec_.paths))
    _callers.clear()  # callers made for another filter (tests bind several)
    _none_message = _spec.returned_none(_spec_.where)
    random = sys.modules.get("random")
    _reseed = getattr(random, "seed", None) if random is not None else None
    _log._sink = _host_log
    return Filter

