"""The decision on one alert: `accept(...)` or `reject()`.

Checked here, when the filter builds it (natively as in the component),
so that a wrong type fails at the author's own line with a clear
message instead of deep inside the component glue. An accept is built
on every accepted alert, so the common case (a float score, a list of
strings, a dict of strings) takes the fewest steps.
"""

__all__ = ["Accept", "Reject", "accept", "reject", "fixed"]


class Accept(tuple):
    """Forward the alert, with an optional score, tags and notes.

    Build it with :func:`accept`. ``score`` is a float or None, ``tags`` a
    list of strings and ``notes`` a list of ``(key, value)`` string pairs
    (``dict(verdict.notes)`` reads them as a dict). A tuple underneath, so
    that building one costs no Python call.
    """

    __slots__ = ()

    @property
    def score(self):
        return self[0]

    @property
    def tags(self):
        return self[1]

    @property
    def notes(self):
        return self[2]

    def __repr__(self):
        return f"accept(score={self[0]!r}, tags={self[1]!r}, notes={dict(self[2])!r})"


_new = tuple.__new__


class Reject:
    """Not interesting: nothing is forwarded. Use :func:`reject`."""

    __slots__ = ()

    def __repr__(self):
        return "reject()"


REJECT = Reject()


def reject():
    """The verdict that forwards nothing (returning False does the same; returning
    None is an error of the filter, so that a forgotten `return` is not a rejection)."""
    return REJECT


def accept(score=None, tags=None, notes=None):
    """The verdict that forwards the alert to the filter's output.

    score: a number, passed downstream to rank alerts (optional).
    tags: short labels, e.g. ``["bright", "ztf-r"]``.
    notes: small key/value notes, e.g. ``{"magpsf": bandpass.fixed(mag, 2)}``;
        a value that is not a string is written with ``str()``. Write a
        real number with :func:`fixed`, so that the note reads as the
        Rust and JavaScript SDKs write it.

    The host bounds what an accepted alert may carry (by default 32 tags of
    at most 64 bytes and 16 notes of at most 256 bytes); over the bounds
    the alert counts as an error of the filter.
    """
    if type(score) is not float and score is not None:
        if isinstance(score, bool) or not isinstance(score, (int, float)):
            raise TypeError(f"accept(score=...) takes a number or None, got {type(score).__name__} {score!r}")
        score = float(score)
    if tags is None:
        tags = []
    else:
        if type(tags) is not list:
            if isinstance(tags, (str, bytes)):
                raise TypeError(
                    f"accept(tags=...) takes a list of strings, got the single {type(tags).__name__} "
                    f"{tags!r}: write tags=[{tags!r}]"
                )
            tags = list(tags)
        for tag in tags:
            if type(tag) is not str:
                raise TypeError(f"accept(tags=...): every tag must be a string, got {type(tag).__name__} {tag!r}")
    if not notes:
        return _new(Accept, (score, tags, []))
    pairs = list(notes.items()) if type(notes) is dict else [tuple(p) for p in notes]
    for i, (key, value) in enumerate(pairs):
        if type(value) is not str or type(key) is not str:
            if type(key) is not str:
                raise TypeError(f"accept(notes=...): every key must be a string, got {type(key).__name__} {key!r}")
            pairs[i] = (key, str(value))
    return _new(Accept, (score, tags, pairs))


#: The most digits :func:`fixed` writes after the point.
MAX_DECIMALS = 17


def fixed(value, decimals):
    """A real number as note text with ``decimals`` digits after the point.

    The same text as the Rust SDK's ``Verdict::note_real`` and the
    JavaScript SDK's ``fixed``, so that a filter and its twins in other
    languages note the same thing: the value's exact binary value rounded
    to ``decimals`` digits, an exact half rounded to the even digit (as
    ``f"{value:.2f}"`` and Rust's ``format!("{:.2}", value)`` do), so
    ``fixed(0.125, 2)`` is ``"0.12"``, ``fixed(0.375, 2)`` ``"0.38"`` and
    ``fixed(0.015, 2)`` (just below 0.015 in binary) ``"0.01"``. A negative
    value keeps its sign even when it rounds to zero (``"-0.00"``), large
    values are written in full, never with an exponent, and not-a-number
    and the infinities read ``NaN``, ``inf``, ``-inf``. ``decimals`` is at
    most 17; more counts as 17.
    """
    if type(value) is not float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"fixed(value, ...) takes a number, got {type(value).__name__} {value!r}")
        value = float(value)
    if type(decimals) is not int or decimals < 0:
        raise ValueError(f"fixed(..., decimals) takes a whole number from 0 to {MAX_DECIMALS}, got {decimals!r}")
    text = f"{value:.{decimals if decimals <= MAX_DECIMALS else MAX_DECIMALS}f}"
    # Python writes not-a-number "nan" (or "-nan"); Rust writes "NaN".
    return "NaN" if text[-1] == "n" else text
