"""Cross-matches (contract 0.4.0): the catalogue cones a filter asks for.

A filter that declares
``crossmatches=[bandpass.Crossmatch("stars", "gaia", radius_arcsec=10.0, max_rows=20)]``
has the host look up, for each alert, the rows of the operator's ``gaia``
catalogue within 10 arcseconds of the alert's position, nearest first, at
most 20. It reads them as declared fields, each a column (a list, one entry
per row, ``[]`` when nothing is that near):

- ``xmatch.stars.dist``: the distance from the alert, arcseconds;
- ``xmatch.stars.ra``, ``xmatch.stars.dec``: the row's position, degrees;
- ``xmatch.stars.<column>``: the catalogue's own columns (for Gaia:
  ``source_id``, ``mag``, ``pmra``, ``pmdec``).

This module checks the declaration when the module is imported (for a
component: at build time); the caps on the radius and the rows, and which
catalogues and columns exist, are the operator's, checked by the host when
it loads the filter.
"""

import math
import re

__all__ = ["Crossmatch", "PREFIX", "PATH", "check_declared", "check_fields"]

#: The first segment of every field a cross-match gives.
PREFIX = "xmatch"

MAX_NAME_CHARS = 32
MAX_ROWS = 2**32 - 1  # the contract's u32
_NAME = re.compile(r"[a-z0-9_]{1,%d}\Z" % MAX_NAME_CHARS)
# A cross-match's field: its name may start with a digit ("2mass"), which a
# path's other segments may not.
PATH = re.compile(r"xmatch\.[A-Za-z0-9_]+(\.[A-Za-z_][A-Za-z0-9_]*)+\??\Z")
_EXAMPLE = "bandpass.Crossmatch('stars', 'gaia', radius_arcsec=10.0, max_rows=20)"


class Crossmatch:
    """A cone of one catalogue around each alert: ``bandpass.Crossmatch("stars", "gaia", 10.0, 20)``.

    name: what the fields call it (``xmatch.stars.dist``): 1 to 32
        characters of a-z, 0-9 and _, distinct within the filter. One
        catalogue may be asked twice under two names (a 2 and a 30
        arcsecond cone).
    catalog: the operator's name for the catalogue, e.g. ``"gaia"``.
    radius_arcsec: the cone's radius in arcseconds, above 0 (the host
        refuses one above its operator's cap, 60 by default).
    max_rows: the most rows given, nearest first, from 1 (the host refuses
        more than its operator's cap, 20 by default).
    """

    __slots__ = ("name", "catalog", "radius_arcsec", "max_rows")

    def __init__(self, name, catalog, radius_arcsec, max_rows):
        if not isinstance(name, str):
            raise TypeError(f"Crossmatch(name=...) takes a string such as 'stars', got {type(name).__name__} {name!r}")
        if not _NAME.match(name):
            raise ValueError(
                f"Crossmatch(name={name!r}): a cross-match's name is 1 to {MAX_NAME_CHARS} characters of "
                f"a-z, 0-9 and _ (its fields are xmatch.<name>.<column>), e.g. 'stars'"
            )
        if not isinstance(catalog, str) or not catalog:
            raise TypeError(
                f"Crossmatch {name!r}: catalog= takes the operator's name for the catalogue, a non-empty "
                f"string such as 'gaia', got {catalog!r}"
            )
        if isinstance(radius_arcsec, bool) or not isinstance(radius_arcsec, (int, float)):
            raise TypeError(
                f"Crossmatch {name!r}: radius_arcsec= takes a number of arcseconds such as 10.0, "
                f"got {type(radius_arcsec).__name__} {radius_arcsec!r}"
            )
        radius = float(radius_arcsec)
        if not math.isfinite(radius) or radius <= 0.0:
            raise ValueError(
                f"Crossmatch {name!r}: radius_arcsec={radius_arcsec!r} must be a finite number of arcseconds "
                f"above 0 (the host allows up to 60 unless its operator says otherwise)"
            )
        if type(max_rows) is not int:
            raise TypeError(
                f"Crossmatch {name!r}: max_rows= takes an integer such as 20, "
                f"got {type(max_rows).__name__} {max_rows!r}"
            )
        if not 1 <= max_rows <= MAX_ROWS:
            raise ValueError(
                f"Crossmatch {name!r}: max_rows={max_rows} must be 1 to {MAX_ROWS} (the host allows up to 20 "
                f"unless its operator says otherwise)"
            )
        self.name = name
        self.catalog = catalog
        self.radius_arcsec = radius
        self.max_rows = max_rows

    def _key(self):
        return (self.name, self.catalog, self.radius_arcsec, self.max_rows)

    def __eq__(self, other):
        return type(other) is Crossmatch and self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    def __repr__(self):
        return (
            f"Crossmatch(name={self.name!r}, catalog={self.catalog!r}, "
            f"radius_arcsec={self.radius_arcsec!r}, max_rows={self.max_rows})"
        )


def check_declared(crossmatches, where):
    """The declared cross-matches as a tuple, or TypeError/ValueError naming what is wrong."""
    if crossmatches is None:
        return ()
    if isinstance(crossmatches, Crossmatch) or not isinstance(crossmatches, (list, tuple)):
        raise TypeError(
            f"{where}: crossmatches= takes a list of bandpass.Crossmatch, e.g. [{_EXAMPLE}], "
            f"got {type(crossmatches).__name__} {crossmatches!r:.60}"
        )
    seen = set()
    for i, c in enumerate(crossmatches):
        if type(c) is not Crossmatch:
            raise TypeError(
                f"{where}: crossmatches[{i}] must be a bandpass.Crossmatch, e.g. {_EXAMPLE}, "
                f"got {type(c).__name__} {c!r:.60}"
            )
        if c.name in seen:
            raise ValueError(
                f"{where}: two cross-matches are named {c.name!r}; give each its own name "
                f"(its fields are xmatch.<name>.<column>)"
            )
        seen.add(c.name)
    return tuple(crossmatches)


def check_fields(fields, crossmatches, where):
    """Refuses a field ``xmatch.<name>...`` whose <name> no cross-match declares.

    ``fields`` is {argument: path}. The column itself is the host's to check
    (it knows the catalogue's columns).
    """
    names = [c.name for c in crossmatches]
    for key, path in fields.items():
        parts = path.rstrip("?").split(".")
        if parts[0] != PREFIX:
            continue
        if len(parts) < 3:
            raise ValueError(
                f"{where}: the path for {key!r} is {path!r}; a cross-match field is xmatch.<name>.<column>, "
                f"e.g. 'xmatch.stars.dist'"
            )
        if parts[1] not in names:
            declared = (
                f"the cross-matches declared are {', '.join(names)}"
                if names
                else f"none is declared: add crossmatches=[{_EXAMPLE.replace('stars', parts[1], 1)}]"
            )
            raise ValueError(
                f"{where}: field {key!r} reads {path!r}, but no cross-match is named {parts[1]!r}; {declared}"
            )
