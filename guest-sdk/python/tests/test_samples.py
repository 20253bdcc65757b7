"""The Python sample filters (sample-filters/python), natively: the cases of
their Rust twins' unit tests. Parity with the Rust components on the real
alerts is the host's integration test (tests/all/python.rs).

    python3 -m unittest discover -s guest-sdk/python/tests
"""

import math
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path[:0] = [os.path.join(REPO, "guest-sdk", "python", "src"), os.path.join(REPO, "sample-filters", "python")]

import bandpass  # noqa: E402
from bright_star_veto import bright_star_veto  # noqa: E402
from bright_transients import bright_transients  # noqa: E402
from fast_risers import fast_risers  # noqa: E402
from hostile import hostile  # noqa: E402
from rise_once import rise_once  # noqa: E402

CANDIDATE = dict(
    magpsf=18.0, isdiffpos="t", drb=None, rb=0.8, ndethist=3, ssdistnr=-999.0,
    jd=2458226.76, jdstarthist=2458224.76, fid=2, sgscore1=0.1, distpsnr1=3.0,
)  # fmt: skip


def bright(params=None, **changes):
    return bright_transients.bandpass.evaluate({**CANDIDATE, **changes}, params)


# Now: r = 18.0 at JD 10. Before: an r limit of 20.0 at JD 8 (a rise of at
# least 1 mag/day), a g detection, and an r detection an hour ago.
ALERT = dict(
    jd=10.0, fid=2, magpsf=18.0, isdiffpos="t", drb=0.9, rb=None, ndethist=2, ssdistnr=-999.0,
    prv_jd=[8.0, 9.0, 9.96], prv_fid=[2, 1, 2], prv_magpsf=[None, 25.0, 19.0],
    prv_isdiffpos=[None, "t", "t"], prv_diffmaglim=[20.0, 20.5, 20.5],
)  # fmt: skip


def risers(**changes):
    return fast_risers.bandpass.evaluate({**ALERT, **changes})


class BrightTransientsTest(unittest.TestCase):
    def test_accepts_a_bright_real_positive_repeated_detection(self):
        v = bright()
        self.assertEqual((v.score, v.tags, v.notes), (0.8, ["bright", "ztf-r", "new"], [("magpsf", "18.00")]))

    def test_prefers_drb_over_rb_where_the_schema_has_it(self):
        self.assertIs(bright(drb=0.1), bandpass.reject())

    def test_rejects_negative_faint_single_or_asteroid_detections(self):
        for change in [dict(isdiffpos="f"), dict(magpsf=19.0), dict(ndethist=1), dict(ssdistnr=1.0)]:
            self.assertIs(bright(**change), bandpass.reject(), change)

    def test_parameters_override_the_defaults_and_typos_are_refused(self):
        self.assertIs(bright({"max_mag": "17.5"}), bandpass.reject())
        self.assertIs(bright({"max_age_days": "1"}), bandpass.reject())
        self.assertIsInstance(bright({"max_age_days": "3"}), bandpass.Accept)
        with self.assertRaisesRegex(ValueError, 'unknown parameter "max_mgg"'):
            bright({"max_mgg": "17.5"})


def veto(params=None, isdiffpos="t", dist=(), mag=()):
    values = {"isdiffpos": isdiffpos, "dist": list(dist), "mag": list(mag)}
    return bright_star_veto.bandpass.evaluate(values, params)


class BrightStarVetoTest(unittest.TestCase):
    def test_declares_the_gaia_cone_and_its_fields(self):
        spec = bright_star_veto.bandpass
        self.assertEqual((spec.name, spec.survey), ("bright-star-veto", "ztf"))
        self.assertEqual(spec.crossmatches, (bandpass.Crossmatch("stars", "gaia", 10.0, 20),))
        self.assertEqual(spec.paths, ["candidate.isdiffpos", "xmatch.stars.dist", "xmatch.stars.mag"])
        self.assertEqual(spec.defaults, bandpass.Params({"max_star_mag": 15.0}))

    def test_no_star_at_all_is_clear(self):
        v = veto()
        self.assertEqual((v.score, v.tags, v.notes), (None, ["clear"], []))
        self.assertEqual(veto(isdiffpos="1").tags, ["clear"])

    def test_only_faint_stars_nearby_is_a_faint_neighbour(self):
        v = veto(dist=[1.2, 7.5], mag=[15.0, 19.3])  # 15.0 is not brighter than 15.0
        self.assertEqual((v.score, v.tags, v.notes), (None, ["faint-neighbour"], []))

    def test_a_bright_star_anywhere_in_the_cone_vetoes(self):
        self.assertIs(veto(dist=[0.8, 9.9], mag=[18.0, 14.99]), bandpass.reject())
        self.assertIs(veto(dist=[0.8], mag=[4.0]), bandpass.reject())

    def test_a_star_without_a_magnitude_never_vetoes(self):
        self.assertEqual(veto(dist=[0.5, 2.0], mag=[None, math.nan]).tags, ["faint-neighbour"])
        self.assertIs(veto(dist=[0.5, 2.0], mag=[None, 3.0]), bandpass.reject())

    def test_rejects_what_is_not_a_positive_detection(self):
        for sign in ["f", "0", None, ""]:
            self.assertIs(veto(isdiffpos=sign), bandpass.reject(), sign)

    def test_the_limit_is_a_parameter_and_typos_are_refused(self):
        self.assertIs(veto({"max_star_mag": "20"}, dist=[1.0], mag=[19.3]), bandpass.reject())
        self.assertEqual(veto({"max_star_mag": 12}, dist=[1.0], mag=[14.0]).tags, ["faint-neighbour"])
        with self.assertRaisesRegex(ValueError, 'unknown parameter "max_mag"; this filter knows: max_star_mag'):
            veto({"max_mag": "12"})


class FastRisersTest(unittest.TestCase):
    def test_measures_the_rise_in_the_same_band_over_at_least_the_baseline(self):
        v = risers()
        self.assertEqual(v.score, 1.0)
        self.assertEqual(v.tags, ["fast-riser", "rise-from-limit", "ztf-r"])
        self.assertEqual(dict(v.notes), {"rise_mag_per_day": "1.000", "baseline_days": "2.000"})

    def test_rejects_a_slow_rise(self):
        self.assertIs(risers(prv_diffmaglim=[18.5, 20.5, 20.5]), bandpass.reject())

    def test_ignores_a_light_curve_with_a_missing_column(self):
        self.assertIs(risers(prv_magpsf=None), bandpass.reject())

    def test_a_detection_rise_is_preferred_when_faster(self):
        v = risers(prv_magpsf=[21.0, 25.0, 19.0], prv_isdiffpos=["1", "t", "t"])
        self.assertEqual((v.score, v.tags[1]), (1.5, "rise-from-detection"))

    def test_a_baseline_of_zero_days_is_refused(self):
        with self.assertRaisesRegex(ValueError, "parameter min_baseline_days: must be above 0"):
            fast_risers.bandpass.configure({"min_baseline_days": "0"})


def detection(jd, magpsf, fid=2, isdiffpos="t"):
    return dict(jd=jd, fid=fid, magpsf=magpsf, isdiffpos=isdiffpos)


class RiseOnceTest(unittest.TestCase):
    """One object's alerts in turn, one state dict carried from each to the next."""

    def run_object(self, alerts, params=None):
        state = {}
        verdicts = [rise_once.bandpass.evaluate(alert, params, state) for alert in alerts]
        return verdicts, state

    def test_an_object_that_rises_is_accepted_exactly_once(self):
        verdicts, state = self.run_object(
            [
                detection(100.0, 19.0),  # first seen: r = 19.0
                detection(100.5, 19.4),  # fainter: the faintest r is now 19.4
                detection(101.0, 18.95),  # 0.45 mag: not enough
                detection(101.2, 18.8),  # 0.6 mag over 1.2 days: accepted
                detection(102.0, 17.0),  # brighter still, but accepted already
                detection(103.0, 16.0),
            ]
        )
        accepted = [i for i, v in enumerate(verdicts) if v is not bandpass.reject()]
        self.assertEqual(accepted, [3])
        v = verdicts[3]
        self.assertAlmostEqual(v.score, 0.6, places=12)
        self.assertEqual(v.score, 19.4 - 18.8)
        self.assertEqual((v.tags, dict(v.notes)), (["rise-once"], {"rise": "0.60", "days": "1.20"}))
        self.assertEqual(state, {"since": 100.0, "faintest": {"2": 19.4}, "done": True})

    def test_a_rise_sooner_than_min_days_waits(self):
        verdicts, state = self.run_object([detection(100.0, 19.5), detection(100.5, 18.0), detection(101.0, 18.9)])
        self.assertEqual([v is bandpass.reject() for v in verdicts], [True, True, False])
        self.assertEqual(dict(verdicts[2].notes), {"rise": "0.60", "days": "1.00"})

    def test_each_band_is_measured_against_its_own_faintest(self):
        verdicts, state = self.run_object([detection(100.0, 20.0, fid=1), detection(102.0, 19.0, fid=2)])
        self.assertTrue(all(v is bandpass.reject() for v in verdicts))
        self.assertEqual(state, {"since": 100.0, "faintest": {"1": 20.0, "2": 19.0}})

    def test_negative_or_incomplete_detections_leave_the_state_as_it_was(self):
        state = {"since": 100.0, "faintest": {"2": 19.0}}
        for alert in [detection(102.0, 18.0, isdiffpos="f"), detection(None, 18.0), detection(102.0, None)]:
            self.assertIs(rise_once.bandpass.evaluate(alert, None, state), bandpass.reject())
            self.assertEqual(state, {"since": 100.0, "faintest": {"2": 19.0}})
        self.assertEqual(rise_once.bandpass.decide(detection(102.0, 18.0, isdiffpos="0"), None, None).state, "keep")

    def test_parameters_and_the_state_as_the_host_keeps_it(self):
        stored = b'{"faintest":{"2":19.0},"since":100.0}'
        d = rise_once.bandpass.decide(detection(100.5, 18.0), {"min_days": "0.5"}, stored)
        self.assertEqual(dict(d.verdict.notes), {"rise": "1.00", "days": "0.50"})
        self.assertEqual(d.state, b'{"done":true,"faintest":{"2":19.0},"since":100.0}')
        self.assertEqual(rise_once.bandpass.decide(detection(101.0, 18.0), {"min_rise": "1.5"}, stored).verdict,
                         bandpass.reject())
        done = b'{"done":true,"faintest":{"2":19.0},"since":100.0}'
        self.assertEqual(rise_once.bandpass.decide(detection(105.0, 10.0), None, done), (bandpass.reject(), "keep"))
        with self.assertRaisesRegex(ValueError, 'unknown parameter "min_rse"; this filter knows: min_rise, min_days'):
            rise_once.bandpass.configure({"min_rse": "1"})

    def test_it_reads_and_writes_the_state_as_its_rust_twin_does(self):
        # The layout of sample-filters/rise-once/README.md: keys sorted, a key
        # left out for no date, no magnitude, not accepted.
        stored = b'{"faintest":{"1":19.2,"2":18.9},"since":2460000.5}'
        d = rise_once.bandpass.decide(detection(2460001.5, 18.6, fid=1), None, stored)
        self.assertEqual((d.verdict.tags, dict(d.verdict.notes)), (["rise-once"], {"rise": "0.60", "days": "1.00"}))
        self.assertEqual(d.state, b'{"done":true,"faintest":{"1":19.2,"2":18.9},"since":2460000.5}')
        # A faintest without a date: the date is this alert's, as in the crate.
        d = rise_once.bandpass.decide(detection(2460001.5, 18.0), {"min_days": "0"}, b'{"faintest":{"2":19.0}}')
        self.assertEqual(dict(d.verdict.notes), {"rise": "1.00", "days": "0.00"})

    def test_the_guide_shows_the_sample_as_it_is(self):
        with open(os.path.join(REPO, "docs", "filter-authors-python.md"), encoding="utf-8") as f:
            guide = f.read()
        with open(os.path.join(REPO, "sample-filters", "python", "rise_once.py"), encoding="utf-8") as f:
            sample = f.read()
        start = guide.index("def rise_once(")
        shown = guide[start : guide.index("```", start)].strip()
        self.assertEqual(shown, sample[sample.index("def rise_once(") :].strip())

    def test_it_declares_its_state(self):
        self.assertEqual(rise_once.bandpass.state, bandpass.State("rise-once/1", 512))
        self.assertEqual(
            rise_once.bandpass.paths, ["candidate.jd", "candidate.fid", "candidate.magpsf", "candidate.isdiffpos"]
        )


class HostileTest(unittest.TestCase):
    def test_an_unknown_mode_is_refused_naming_the_modes(self):
        with self.assertRaisesRegex(ValueError, "expected one of loop, memory, raise, open-file, socket"):
            hostile.bandpass.configure({"mode": "explode"})

    def test_it_misbehaves_only_up_to_its_magnitude(self):
        params = hostile.bandpass.configure({"mode": "raise", "max_mag": "18"})
        self.assertIs(hostile(18.5, params), bandpass.reject())
        with self.assertRaises(ZeroDivisionError):
            hostile(17.5, params)


if __name__ == "__main__":
    unittest.main()
