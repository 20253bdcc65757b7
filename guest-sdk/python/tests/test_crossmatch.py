"""Cross-matches (contract 0.4.0) in the Python SDK: the declaration, the
checks of `xmatch.*` fields, and the manifest and columns through the
component glue (against the stand-in bindings of test_sdk, bound to the
sample filter bright_star_veto.py).

    python3 -m unittest discover -s guest-sdk/python/tests
"""

import importlib
import math
import os
import struct
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SDK = os.path.dirname(HERE)
REPO = os.path.dirname(os.path.dirname(SDK))
sys.path[:0] = [os.path.join(SDK, "src"), HERE, os.path.join(REPO, "sample-filters", "python")]

import bandpass  # noqa: E402
import bright_star_veto  # noqa: E402
from test_sdk import fake_bindings, pack  # noqa: E402


def declare(function, **overrides):
    kwargs = dict(name="t", version="0.1.0", survey="ztf", description="A test.", fields={})
    kwargs.update(overrides)
    return bandpass.filter(**kwargs)(function)


STARS = bandpass.Crossmatch("stars", "gaia", radius_arcsec=10.0, max_rows=20)


class CrossmatchTest(unittest.TestCase):
    def test_a_crossmatch_declares_its_name_catalogue_radius_and_rows(self):
        c = bandpass.Crossmatch(name="stars", catalog="gaia", radius_arcsec=10, max_rows=20)
        self.assertEqual((c.name, c.catalog, c.radius_arcsec, c.max_rows), ("stars", "gaia", 10.0, 20))
        self.assertIs(type(c.radius_arcsec), float)
        self.assertEqual(c, STARS)
        self.assertEqual(hash(c), hash(STARS))
        self.assertEqual(repr(c), "Crossmatch(name='stars', catalog='gaia', radius_arcsec=10.0, max_rows=20)")
        bandpass.Crossmatch("x" * 32, "gaia", 1e-3, 1)
        bandpass.Crossmatch("2mass_j", "2mass", 60.0, 2**32 - 1)

    def test_a_name_is_1_to_32_characters_of_a_z_0_9_and_underscore(self):
        for bad in ["", "Stars", "bright-stars", "stars.near", "x" * 33, "é", "stars "]:
            with self.assertRaisesRegex(ValueError, r"1 to 32 characters of a-z, 0-9 and _"):
                bandpass.Crossmatch(bad, "gaia", 10.0, 20)
        with self.assertRaisesRegex(TypeError, r"Crossmatch\(name=...\) takes a string"):
            bandpass.Crossmatch(b"stars", "gaia", 10.0, 20)

    def test_a_catalogue_is_a_non_empty_string(self):
        for bad in ["", None, b"gaia"]:
            with self.assertRaisesRegex(TypeError, r"Crossmatch 'stars': catalog= takes the operator's name"):
                bandpass.Crossmatch("stars", bad, 10.0, 20)

    def test_the_radius_is_a_finite_number_above_zero(self):
        for bad in [0, 0.0, -1.0, math.nan, math.inf, -math.inf]:
            with self.assertRaisesRegex(ValueError, r"Crossmatch 'stars': radius_arcsec=.* must be a finite number"):
                bandpass.Crossmatch("stars", "gaia", bad, 20)
        for bad in [True, "10", None]:
            with self.assertRaisesRegex(TypeError, r"Crossmatch 'stars': radius_arcsec= takes a number"):
                bandpass.Crossmatch("stars", "gaia", bad, 20)

    def test_max_rows_is_an_integer_from_1_to_2_to_the_32_minus_1(self):
        for bad in [0, -1, 2**32]:
            with self.assertRaisesRegex(ValueError, r"Crossmatch 'stars': max_rows=-?\d+ must be 1 to 4294967295"):
                bandpass.Crossmatch("stars", "gaia", 10.0, bad)
        for bad in [True, 20.0, "20", None]:
            with self.assertRaisesRegex(TypeError, r"Crossmatch 'stars': max_rows= takes an integer"):
                bandpass.Crossmatch("stars", "gaia", 10.0, bad)


class DeclarationTest(unittest.TestCase):
    def test_the_spec_keeps_the_crossmatches_in_order_and_none_is_empty(self):
        def f(dist, near):
            return False

        wide = bandpass.Crossmatch("wide", "gaia", 30.0, 5)
        declare(f, fields={"dist": "xmatch.stars.dist", "near": "xmatch.wide.source_id"}, crossmatches=[STARS, wide])
        self.assertEqual(f.bandpass.crossmatches, (STARS, wide))
        self.assertEqual(f.bandpass.paths, ["xmatch.stars.dist", "xmatch.wide.source_id"])

        def g(m):
            return False

        declare(g, fields={"m": "candidate.magpsf"})
        self.assertEqual(g.bandpass.crossmatches, ())
        declare(g, fields={"m": "candidate.magpsf"}, crossmatches=())
        self.assertEqual(g.bandpass.crossmatches, ())

    def test_crossmatches_is_a_list_of_crossmatch(self):
        def f(m):
            return False

        with self.assertRaisesRegex(TypeError, r"crossmatches= takes a list of bandpass.Crossmatch"):
            declare(f, fields={"m": "candidate.magpsf"}, crossmatches=STARS)
        with self.assertRaisesRegex(TypeError, r"crossmatches\[1\] must be a bandpass.Crossmatch"):
            declare(f, fields={"m": "candidate.magpsf"}, crossmatches=[STARS, {"name": "x"}])

    def test_two_crossmatches_of_one_name_are_refused(self):
        def f(m):
            return False

        other = bandpass.Crossmatch("stars", "ps1", 2.0, 1)
        with self.assertRaisesRegex(ValueError, r"two cross-matches are named 'stars'; give each its own name"):
            declare(f, fields={"m": "candidate.magpsf"}, crossmatches=[STARS, other])
        # One catalogue under two names is fine.
        declare(f, fields={"m": "candidate.magpsf"}, crossmatches=[STARS, bandpass.Crossmatch("near", "gaia", 2.0, 1)])

    def test_a_field_of_an_undeclared_crossmatch_is_refused_naming_it_and_the_declared_ones(self):
        def f(dist):
            return False

        near = bandpass.Crossmatch("near", "gaia", 2.0, 1)
        with self.assertRaises(ValueError) as e:
            declare(f, fields={"dist": "xmatch.star.dist"}, crossmatches=[STARS, near])
        self.assertIn("field 'dist' reads 'xmatch.star.dist', but no cross-match is named 'star'", str(e.exception))
        self.assertIn("the cross-matches declared are stars, near", str(e.exception))
        with self.assertRaisesRegex(ValueError, r"no cross-match is named 'stars'; none is declared: add crossmatches="):
            declare(f, fields={"dist": "xmatch.stars.dist"})
        with self.assertRaisesRegex(ValueError, r"a cross-match field is xmatch.<name>.<column>"):
            declare(f, fields={"dist": "xmatch.stars"}, crossmatches=[STARS])

    def test_a_crossmatch_name_may_start_with_a_digit_in_its_fields(self):
        def f(j, dist):
            return False

        twomass = bandpass.Crossmatch("2mass", "2mass", 2.0, 1)
        declare(f, fields={"j": "xmatch.2mass.j_m", "dist": "xmatch.2mass.dist?"}, crossmatches=[twomass])
        self.assertEqual(f.bandpass.paths, ["xmatch.2mass.j_m", "xmatch.2mass.dist?"])

    def test_the_columns_arrive_natively_as_lists(self):
        seen = []

        def f(dist, ids, params):
            seen.append((dist, ids))
            return bandpass.accept(tags=[str(len(dist))])

        declare(f, fields={"dist": "xmatch.stars.dist", "ids": "xmatch.stars.source_id"}, crossmatches=[STARS])
        self.assertEqual(f.bandpass.evaluate({"dist": [0.5, 3.0], "ids": [7, None]}).tags, ["2"])
        self.assertEqual(f.bandpass.evaluate({"xmatch.stars.dist": [], "xmatch.stars.source_id": []}).tags, ["0"])
        self.assertEqual(seen, [([0.5, 3.0], [7, None]), ([], [])])


class CrossmatchGlueTest(unittest.TestCase):
    """The component glue bound to bright_star_veto.py."""

    @classmethod
    def setUpClass(cls):
        cls.wit, cls.log, cls.Err = fake_bindings()
        cls.glue = importlib.import_module("bandpass._component")
        cls.Filter = cls.glue.bind("bright_star_veto")
        cls.filter = cls.Filter()

    @classmethod
    def tearDownClass(cls):
        bandpass.log._sink = bandpass.log._to_stderr

    def setUp(self):
        self.filter.init([])

    def reals(self, *values):
        """A real column as the host sends it; None for a null entry."""
        w = self.wit
        packed = struct.pack(f"<{len(values)}d", *(0.0 if v is None else v for v in values))
        present = bytes(0 if v is None else 1 for v in values)
        return w.Value_Reals(w.RealColumn(packed, present))

    def verdict(self, isdiffpos, dist, mag):
        w = self.wit
        answer = self.filter.evaluate(*pack((5, isdiffpos), (4, dist), (4, mag)), None)
        if answer is None:  # reject, state unchanged
            return w.Verdict_Reject()
        decision = answer.value
        self.assertEqual(decision.state, w.StateChange_Keep())
        return decision.verdict

    def accepted(self, tag):
        return self.wit.Verdict_Accept(self.wit.Accepted(None, [tag], []))

    def test_the_manifest_asks_for_the_crossmatch_and_lists_its_fields(self):
        m = self.filter.describe()
        self.assertEqual(m.crossmatches, [self.wit.Crossmatch("stars", "gaia", 10.0, 20)])
        self.assertEqual(m.fields, ["candidate.isdiffpos", "xmatch.stars.dist", "xmatch.stars.mag"])
        self.assertIsNone(m.state)

    def test_empty_columns_are_empty_lists(self):
        self.assertEqual(self.verdict("t", self.reals(), self.reals()), self.accepted("clear"))

    def test_the_columns_carry_each_row(self):
        self.assertEqual(self.verdict("1", self.reals(1.0, 4.0), self.reals(17.0, None)), self.accepted("faint-neighbour"))
        self.assertEqual(self.verdict("t", self.reals(1.0, 4.0), self.reals(17.0, 12.0)), self.wit.Verdict_Reject())
        self.filter.init([("max_star_mag", "11.5")])
        self.assertEqual(self.verdict("t", self.reals(1.0, 4.0), self.reals(17.0, 12.0)), self.accepted("faint-neighbour"))


if __name__ == "__main__":
    unittest.main()
