"""The decision on one alert: `accept(...)` or `reject()`.

Checked here, when the filter builds it (natively as in the component),
so that a wrong type fails at the author's own line with a clear
message instead of deep inside the component glue. An accept is built
on every accepted alert, so the common case (a float score, a list of
strings, a dict of strings) takes the fewest steps.
"""

__all__ = ["Accept", "Reject", "accept", "reject"]


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
    """The verdict that forwards nothing (returning False or None does the same)."""
    return REJECT


def accept(score=None, tags=None, notes=None):
    """The verdict that forwards the alert to the filter's output.

    score: a number, passed downstream to rank alerts (optional).
    tags: short labels, e.g. ``["bright", "ztf-r"]``.
    notes: small key/value notes, e.g. ``{"magpsf": f"{mag:.2f}"}``; a value
        that is not a string is written with ``str()``.

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
