"""The `@bandpass.filter(...)` decorator and the operator's parameters.

The decorator only checks and records what the filter declares; it
returns the function unchanged, so the same module runs in plain CPython
(tests, benchmarks) and inside the component, where `bandpass._component`
finds the recorded filter. Everything here runs once, when the module is
imported (for a component: at build time), never per alert.
"""

import json
import linecache
import math
import os
import re

from collections import namedtuple

from . import _crossmatch, _state
from ._state import State
from ._verdict import REJECT, Accept, accept

__all__ = ["filter", "Params", "FilterSpec", "FilterError", "ParamError", "Decision", "find_filter"]

SURVEYS = ("ztf", "rubin", "any")
_NAME = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*\Z")
_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\??\Z")
_TRUE = ("true", "yes", "1")
_FALSE = ("false", "no", "0")

# Every filter declared so far, in declaration order.
_registry = []


class FilterError(Exception):
    """Raise it to report a problem you found in an alert.

    The host reports an error of this filter on this alert with your
    message alone (no location, no traceback in the log); any other
    exception is reported as "ExcType: message (at file.py:LINE in f)".
    """


class ParamError(ValueError):
    """The operator's parameters do not fit the filter: the deployment is refused."""


class Params:
    """The operator's parameters, typed from the defaults the filter declared.

    Read them as attributes (``params.max_mag``) or by key
    (``params["max_mag"]``).
    """

    def __init__(self, values):
        self.__dict__.update(values)

    def __getitem__(self, key):
        return self.__dict__[key]

    def __eq__(self, other):
        return type(other) is Params and self.__dict__ == other.__dict__

    def __repr__(self):
        inner = ", ".join(f"{k}={v!r}" for k, v in self.__dict__.items())
        return f"Params({inner})"


def _kind(default):
    """What a declared default says about its parameter: (type, default)."""
    if any(default is t for t in (float, int, bool, str)):
        return default, None
    for t in (bool, int, float, str):  # bool first: a bool is also an int
        if type(default) is t:
            return t, default
    raise TypeError(
        f"the default {default!r} is a {type(default).__name__}; a default must be a number "
        f"(18.5), an integer (2), a boolean (True), a text ('r'), or one of the types "
        f"float, int, bool, str for a parameter that is None unless given"
    )


def _parse(key, kind, raw):
    """One parameter as the operator wrote it, converted to its declared type."""
    if type(raw) is kind or (kind is float and type(raw) is int and not isinstance(raw, bool)):
        return kind(raw)
    text = str(raw).strip()
    if kind is float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if math.isfinite(value):
            return value
        raise ParamError(f"parameter {key}: expected a finite number, got {raw!r}")
    if kind is int:
        try:
            return int(text)
        except ValueError:
            hint = " (the filter declares an integer default; write it as 0.0 for a number)" if _looks_real(text) else ""
            raise ParamError(f"parameter {key}: expected an integer, got {raw!r}{hint}") from None
    if kind is bool:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise ParamError(f"parameter {key}: expected true or false, got {raw!r}")
    return str(raw)


def _looks_real(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


#: A verdict and what becomes of the object's state: ``state`` is
#: ``"keep"``, ``"forget"``, or the bytes to keep (`FilterSpec.decide`).
Decision = namedtuple("Decision", "verdict state")


class FilterSpec:
    """What one decorated function declares; `function.bandpass` holds it."""

    def __init__(
        self, function, name, version, survey, description, fields, params, check_params, state=None, crossmatches=None
    ):
        where = f"@bandpass.filter on {function.__qualname__}()"
        for label, value in (("name", name), ("version", version), ("survey", survey), ("description", description)):
            if not isinstance(value, str) or not value:
                raise TypeError(f"{where}: {label}= must be a non-empty string, got {value!r}")
        if not _NAME.match(name):
            raise ValueError(
                f"{where}: name={name!r} must be lowercase letters, digits and dashes "
                f"(it names the filter in logs, metrics and headers), e.g. 'bright-transients'"
            )
        if survey not in SURVEYS:
            raise ValueError(f"{where}: survey={survey!r} must be one of {', '.join(SURVEYS)}")
        if not isinstance(fields, dict):
            raise TypeError(
                f"{where}: fields= must be a dict from argument name to alert path, "
                f"e.g. {{'magpsf': 'candidate.magpsf'}}"
            )
        params = {} if params is None else params
        if not isinstance(params, dict):
            raise TypeError(f"{where}: params= must be a dict from parameter name to default, e.g. {{'max_mag': 18.5}}")
        if state is not None and type(state) is not State:
            raise TypeError(
                f"{where}: state= takes bandpass.State(format='my-filter/1', max_bytes=512), "
                f"got {type(state).__name__} {state!r:.60}"
            )

        crossmatches = _crossmatch.check_declared(crossmatches, where)

        code = getattr(function, "__code__", None)
        if code is None:
            raise TypeError(f"{where}: decorate a plain function (def ...), not {type(function).__name__}")
        if code.co_flags & 0x0C or code.co_kwonlyargcount or code.co_posonlyargcount:
            raise TypeError(
                f"{where}: the function takes plain arguments only, one per field "
                f"(and `params` last): no *args, **kwargs, keyword-only or positional-only markers"
            )
        args = list(code.co_varnames[: code.co_argcount])
        # After the fields: `params` and (when state= is declared) `state`,
        # in either order.
        special = ("params", "state") if state is not None else ("params",)
        extras = []
        while args and args[-1] in special and args[-1] not in extras:
            extras.insert(0, args.pop())
        takes_params = "params" in extras
        if params and not takes_params:
            raise TypeError(f"{where}: params= is declared, so the function must take a last argument named `params`")
        for arg in special:
            if arg in args and arg not in fields:
                raise ValueError(
                    f"{where}: put `{arg}` after the fields: the function takes the fields, then `params` "
                    f"and `state` (when declared), in either order"
                )
        if state is not None and "state" not in extras:
            raise TypeError(
                f"{where}: state= is declared, so the function must take an argument named `state` "
                f"after the fields (beside `params`): the object's state, a dict"
            )
        for arg in args:
            if arg not in fields:
                hint = (
                    "; or, to keep state per object, declare state=bandpass.State(format=..., max_bytes=...)"
                    if arg == "state"
                    else ""
                )
                raise ValueError(
                    f"{where}: the function takes {arg!r} but fields= gives no alert path for it; "
                    f"add {arg!r}: 'candidate.{arg}' (or the path you mean) to fields={hint}"
                )
        for key, path in fields.items():
            if key in extras:
                raise ValueError(
                    f"{where}: fields= names {key!r}, which is the function's `{key}` argument, not a field; "
                    f"give the field another name"
                )
            if key not in args:
                raise ValueError(f"{where}: fields= names {key!r}, which is not an argument of the function; add it")
            if not isinstance(path, str) or not (_PATH.match(path) or _crossmatch.PATH.match(path)):
                raise ValueError(
                    f"{where}: the path for {key!r} is {path!r}; a path is dotted names from the alert's "
                    f"root such as 'candidate.magpsf', with a trailing '?' when optional"
                )
        _crossmatch.check_fields(fields, crossmatches, where)
        kinds = {}
        for key, default in params.items():
            if not isinstance(key, str) or not key.isidentifier() or key.startswith("_"):
                raise ValueError(f"{where}: parameter name {key!r} must be a Python name such as 'max_mag'")
            try:
                kinds[key] = _kind(default)
            except TypeError as e:
                raise TypeError(f"{where}: parameter {key!r}: {e}") from None
        if check_params is not None and not callable(check_params):
            raise TypeError(f"{where}: check_params= must be a function taking the parameters")

        self.function = function
        self.where = _where(function)
        self.name = name
        self.version = version
        self.survey = survey
        self.description = description
        self.arguments = args
        self.paths = [fields[a] for a in args]
        self.takes_params = takes_params
        #: The arguments after the fields, in the function's order: "params", "state".
        self.extras = extras
        #: The declared `State`, or None for a filter that keeps none.
        self.state = state
        #: The declared `Crossmatch`es, in declaration order (a tuple, empty for none).
        self.crossmatches = crossmatches
        self.check_params = check_params
        self._kinds = kinds
        self.defaults = Params({k: d for k, (_, d) in kinds.items()})

    def configure(self, given=()):
        """The parameters of one deployment: the defaults, overridden by ``given``.

        ``given`` is what the host passes to ``init`` (a list of
        ``(key, text)`` pairs) or, natively, a dict; a text is converted to
        the type of the declared default, a value of that type is kept.
        Raises :class:`ParamError` for an unknown key or a bad value, and
        whatever ``check_params`` raises.
        """
        pairs = given.items() if isinstance(given, dict) else given
        values = dict(self.defaults.__dict__)
        for key, raw in pairs:  # the last value of a repeated key wins
            if key not in self._kinds:
                if not self._kinds:
                    raise ParamError(f'unknown parameter "{key}"; this filter takes none')
                raise ParamError(f'unknown parameter "{key}"; this filter knows: {", ".join(self._kinds)}')
            values[key] = _parse(key, self._kinds[key][0], raw)
        params = Params(values)
        if self.check_params is not None:
            self.check_params(params)
        return params

    def evaluate(self, values, params=None, state=None):
        """Runs the filter natively on one alert's values and returns its verdict.

        ``values`` maps argument names (or paths) to plain values; a missing
        one is None. ``params`` is a :class:`Params`, a dict or None for the
        defaults. Returns an :class:`Accept` or the rejection.

        For a filter that declares state, ``state`` is the object's state as
        the filter left it: a dict, ``{}`` (or None) for none. The call goes
        as in the component (the dict is stored as JSON and read back), and
        when it succeeds ``state`` is updated in place to the state the host
        would keep, so one dict passed with each alert of an object in turn
        follows that object. When the call fails, ``state`` is unchanged.
        """
        if state is not None and not isinstance(state, dict):
            raise TypeError(f"evaluate(state=...) takes the object's state as a dict, got {type(state).__name__}")
        if state is not None and self.state is None:
            raise TypeError(f"{self.name} declares no state; pass state= only to a filter that declares one")
        raw = _state.encode(state) if state else None
        decision = self.decide(values, params, raw)
        if state is not None and decision.state != _state.KEEP:
            state.clear()
            if decision.state != _state.FORGET:
                state.update(json.loads(decision.state))
        return decision.verdict

    def decide(self, values, params=None, state=None):
        """As :meth:`evaluate`, with the state as the host keeps it: bytes.

        ``state`` is the bytes stored for the object, or None. Returns a
        :class:`Decision`: the verdict, and ``"keep"``, ``"forget"`` or the
        new bytes, exactly what the component would answer.
        """
        if not isinstance(params, Params):
            params = self.configure(params or ())
        args = [values.get(a, values.get(p)) for a, p in zip(self.arguments, self.paths)]
        if self.state is None:
            if state is not None:
                raise TypeError(f"{self.name} declares no state; pass state= only to a filter that declares one")
            extras = {"params": params}
        else:
            current = _state.load(state, self.state)
            extras = {"params": params, "state": current}
        args.extend(extras[e] for e in self.extras)
        verdict = verdict_of(self.function(*args), self.function, self.where)
        if self.state is None:
            return Decision(verdict, _state.KEEP)
        return Decision(verdict, _state.change(state, current, self.state))


def _where(function):
    """``name (file.py, line N)``: the filter function in error messages.

    N is the line of its ``def`` when the source can be read here (natively,
    and while a component is built), else of its first decorator.
    """
    code = function.__code__
    line = code.co_firstlineno
    try:
        lines = linecache.getlines(code.co_filename)
        for n in range(line, min(line + 50, len(lines) + 1)):
            if lines[n - 1].lstrip().startswith(("def ", "async def ")):
                line = n
                break
    except Exception:  # noqa: BLE001, S110 - the decorator's line will do
        pass
    return f"{function.__name__} ({os.path.basename(code.co_filename)}, line {line})"


def returned_none(where):
    """The error for a filter function that returned None (a forgotten ``return``)."""
    return f"{where} returned None; return bandpass.accept(...) or bandpass.reject() on every path"


def verdict_of(result, function=None, where=None):
    """A filter function's return value as a verdict (Accept or REJECT).

    None is an error, not a rejection: it is what a forgotten ``return``
    gives, and would silently reject every alert.
    """
    if type(result) is Accept or result is REJECT:
        return result
    if result is False:
        return REJECT
    if result is True:
        return accept()
    if result is None:
        raise FilterError(returned_none(where or (_where(function) if function is not None else "the filter")))
    name = getattr(function, "__name__", "the filter")
    raise TypeError(
        f"{name}() returned {type(result).__name__} {result!r:.80}; "
        f"return bandpass.accept(...) or bandpass.reject() (or True / False)"
    )


def filter(  # noqa: A001
    *, name, version, survey, description, fields, params=None, check_params=None, state=None, crossmatches=None
):
    """Declares a function as a bandpass filter.

    name: short name, lowercase letters, digits and dashes.
    version: the filter's own version, e.g. "0.1.0".
    survey: "ztf", "rubin" or "any": the host passes only that survey's alerts.
    description: one sentence on what the filter selects.
    fields: {argument name: alert path}. Each alert, the function receives
        these fields as plain values: float, int, str, bytes, bool; a path
        through an array (prv_candidates.magpsf) as a list with None for
        null entries; None where the alert has no value. A path ending in
        '?' is optional: None where the alert's schema lacks it.
    params: {name: default} for the operator's parameters; each is typed
        from its default (18.5 a number, 2 an integer, True a boolean,
        "r" a text; the type float, int, bool or str for None unless
        given). The function then takes a last argument `params` and reads
        params.max_mag. Unknown keys refuse the deployment.
    check_params: optional function(params) run once per deployment; raise
        ValueError("...") to refuse the parameters with that message.
    state: optional bandpass.State(format="my-filter/1", max_bytes=512) to
        keep a little state per object. The function then takes an
        argument `state` (after the fields, beside `params`): a dict, {}
        the first time, that it changes in place; the host keeps it, as
        JSON, for the object's next alert (see bandpass.State).
    crossmatches: optional list of bandpass.Crossmatch(name, catalog,
        radius_arcsec, max_rows): catalogue cones the host runs around each
        alert. Their rows arrive as fields the filter declares like any
        other, each a column (a list, nearest row first, [] for none):
        'xmatch.<name>.dist' (arcsec), 'xmatch.<name>.ra' and '.dec'
        (degrees), 'xmatch.<name>.<column>' for the catalogue's columns.
        A field 'xmatch.<name>...' needs a cross-match of that name.

    The function returns bandpass.accept(...) or bandpass.reject() (True
    and False do too); None (a forgotten `return`) is an error of the
    filter on that alert. The decorator returns it unchanged.
    """

    def register(function):
        spec = FilterSpec(
            function, name, version, survey, description, fields, params, check_params, state, crossmatches
        )
        function.bandpass = spec
        _registry.append(spec)
        return function

    return register


def find_filter(module_name):
    """The one filter declared in the module named ``module_name``.

    Raises LookupError saying what to do, its message to follow the
    module's name or file ("declares no filter: ...").
    """
    found = [s for s in _registry if s.function.__module__ == module_name]
    if len(found) == 1:
        return found[0]
    if not found:
        raise LookupError(
            "declares no filter: decorate its filter function with "
            "@bandpass.filter(name=..., version=..., survey=..., description=..., fields={...})"
        )
    names = ", ".join(f"{s.function.__name__}() ({s.name})" for s in found)
    raise LookupError(f"declares {len(found)} filters ({names}); a component holds one: put each in a module of its own")
