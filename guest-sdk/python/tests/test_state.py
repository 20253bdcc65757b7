"""State per object (contract 0.3.0) in the Python SDK: the declaration, the
dict a filter receives and how it becomes keep / set / forget, natively and
through the component glue (against the stand-in bindings of test_sdk).

    python3 -m unittest discover -s guest-sdk/python/tests
"""

import contextlib
import importlib
import io
import os
import re
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SDK = os.path.dirname(HERE)
REPO = os.path.dirname(os.path.dirname(SDK))
sys.path[:0] = [os.path.join(SDK, "src"), HERE]

import bandpass  # noqa: E402
import stateful_probe  # noqa: E402
from bandpass import _state  # noqa: E402
from stateful_probe import SEEN  # noqa: E402
from test_sdk import fake_bindings, pack  # noqa: E402

PROBE = stateful_probe.stateful_probe.bandpass


def line_of(marker):
    """The line of stateful_probe.py that holds ``# line: marker``."""
    with open(stateful_probe.__file__) as f:
        return next(i for i, text in enumerate(f, 1) if text.rstrip().endswith(f"# line: {marker}"))


def declare(function, **overrides):
    kwargs = dict(name="t", version="0.1.0", survey="ztf", description="A test.", fields={})
    kwargs.update(overrides)
    return bandpass.filter(**kwargs)(function)


class ContractTest(unittest.TestCase):
    def test_the_sdk_names_the_contract_its_wit_declares(self):
        with open(os.path.join(SDK, "src", "bandpass", "wit", "filter.wit")) as f:
            package = re.search(r"^package (\S+);", f.read(), re.MULTILINE).group(1)
        self.assertEqual(bandpass.CONTRACT, package)
        self.assertEqual(bandpass.CONTRACT, "bandpass:filter@0.5.0")


class DeclarationTest(unittest.TestCase):
    def test_a_state_declares_its_format_and_size(self):
        s = bandpass.State(format="rise-once/1", max_bytes=512)
        self.assertEqual((s.format, s.max_bytes), ("rise-once/1", 512))
        self.assertEqual(s, bandpass.State("rise-once/1", 512))
        bandpass.State("x" * 64, 1)
        bandpass.State("~!", 65536)

    def test_a_format_is_printable_ascii_without_spaces_of_1_to_64_bytes(self):
        for bad in ["", "rise once", "rise-once/1\n", "é/1", "x" * 65, "tab\there"]:
            with self.assertRaisesRegex(ValueError, "1 to 64 printable ASCII characters without spaces"):
                bandpass.State(bad, 512)
        with self.assertRaisesRegex(TypeError, r"State\(format=...\) takes a string"):
            bandpass.State(b"rise-once/1", 512)

    def test_max_bytes_is_an_integer_from_1_to_65536(self):
        for bad in [0, -1, 65537]:
            with self.assertRaisesRegex(ValueError, "must be 1 to 65536"):
                bandpass.State("f/1", bad)
        for bad in [True, 512.0, "512", None]:
            with self.assertRaisesRegex(TypeError, r"State\(max_bytes=...\) takes an integer"):
                bandpass.State("f/1", bad)

    def test_the_function_takes_state_after_the_fields_beside_params_in_either_order(self):
        def f(magpsf, state, params):
            return False

        def g(magpsf, params, state):
            return False

        def h(magpsf, state):
            return False

        fields = {"magpsf": "candidate.magpsf"}
        spec = bandpass.State("t/1", 100)
        self.assertEqual(declare(f, fields=fields, state=spec, params={"a": 1}).bandpass.extras, ["state", "params"])
        self.assertEqual(declare(g, fields=fields, state=spec, params={"a": 1}).bandpass.extras, ["params", "state"])
        self.assertEqual(declare(h, fields=fields, state=spec).bandpass.extras, ["state"])
        self.assertEqual(h.bandpass.paths, ["candidate.magpsf"])
        self.assertIs(h.bandpass.state, spec)

    def test_a_declared_state_needs_the_argument_and_the_argument_needs_the_declaration(self):
        def no_arg(magpsf):
            return False

        must = "state= is declared, so the function must take an argument named `state`"
        with self.assertRaisesRegex(TypeError, must):
            declare(no_arg, fields={"magpsf": "candidate.magpsf"}, state=bandpass.State("t/1", 100))

        def undeclared(magpsf, state):
            return False

        with self.assertRaisesRegex(ValueError, r"takes 'state' but fields= .* declare state=bandpass.State\("):
            declare(undeclared, fields={"magpsf": "candidate.magpsf"})

        def early(state, magpsf):
            return False

        with self.assertRaisesRegex(ValueError, "put `state` after the fields"):
            declare(early, fields={"magpsf": "candidate.magpsf"}, state=bandpass.State("t/1", 100))

    def test_state_takes_a_state_object_and_a_field_named_state_still_works_without_one(self):
        def f(magpsf, state):
            return False

        with self.assertRaisesRegex(TypeError, r"state= takes bandpass.State\(format='my-filter/1', max_bytes=512\)"):
            declare(f, fields={"magpsf": "candidate.magpsf"}, state={"format": "t/1", "max_bytes": 100})
        # Without state=, `state` is an ordinary field (a path of that name).
        declare(f, fields={"magpsf": "candidate.magpsf", "state": "candidate.state"})
        self.assertEqual(f.bandpass.paths, ["candidate.magpsf", "candidate.state"])
        self.assertIsNone(f.bandpass.state)


class NativeStateTest(unittest.TestCase):
    """`function.bandpass.evaluate(values, state=d)`: the state as the component sees it."""

    def setUp(self):
        SEEN.clear()

    def test_one_dict_follows_an_object_from_alert_to_alert(self):
        state = {}
        self.assertEqual(dict(PROBE.evaluate({"op": "count"}, state=state).notes), {"n": "1"})
        self.assertEqual(state, {"n": 1})
        PROBE.evaluate({"op": "count"}, state=state)
        self.assertEqual(state, {"n": 2})
        PROBE.evaluate({"op": "read"}, state=state)
        self.assertEqual(state, {"n": 2})
        PROBE.evaluate({"op": "forget"}, state=state)
        self.assertEqual(state, {})
        PROBE.evaluate({"op": "count"}, state=state)
        self.assertEqual(SEEN, [{}, {"n": 1}, {"n": 2}, {"n": 2}, {}])
        self.assertEqual(state, {"n": 1})

    def test_the_state_comes_back_as_json_gives_it_back(self):
        state = {}
        PROBE.evaluate({"op": "tuple"}, state=state)
        self.assertEqual(state, {"pair": [1, 2]}, "a tuple is kept as a JSON list, and comes back a list")

    def test_decide_answers_with_the_bytes_the_host_keeps(self):
        d = PROBE.decide({"op": "count"})
        self.assertEqual(d, bandpass.Decision(bandpass.accept(notes={"n": 1}), b'{"n":1}'))
        self.assertEqual(PROBE.decide({"op": "count"}, state=b'{"n":1}').state, b'{"n":2}')
        self.assertEqual(PROBE.decide({"op": "read"}, state=b'{"n":2}').state, "keep")
        self.assertEqual(PROBE.decide({"op": "read"}).state, "keep")
        self.assertEqual(PROBE.decide({"op": "forget"}, state=b'{"n":2}').state, "forget")
        self.assertEqual(PROBE.decide({"op": "forget"}).state, "keep", "nothing to forget")
        # Keys sorted, no spaces: a state written otherwise is rewritten once.
        self.assertEqual(PROBE.decide({"op": "read"}, state=b'{ "z": 1, "n": 2 }').state, b'{"n":2,"z":1}')
        # The state changes whatever the verdict.
        d = PROBE.decide({"op": "count"}, {"accept": "false"}, b'{"n":4}')
        self.assertEqual(d, bandpass.Decision(bandpass.reject(), b'{"n":5}'))

    def test_a_failed_call_leaves_the_state_as_it_was(self):
        state = {"n": 3}
        with self.assertRaisesRegex(bandpass.FilterError, "failed after changing the state"):
            PROBE.evaluate({"op": "raise"}, state=state)
        with self.assertRaisesRegex(bandpass.FilterError, "returned None"):
            PROBE.evaluate({"op": "none"}, state=state)
        with self.assertRaisesRegex(ValueError, r"state\['x'\] is nan"):
            PROBE.evaluate({"op": "nan"}, state=state)
        self.assertEqual(state, {"n": 3})

    def test_what_json_cannot_hold_fails_naming_the_key(self):
        cases = [
            ("nan", ValueError, "state['x'] is nan: the state is kept as JSON, which has no NaN or infinity"),
            ("set", TypeError, "state['tags'] is a set ({"),
            ("update-inf", bandpass.StateError, "state['x'] is inf: the state is kept as JSON"),
            ("object", bandpass.StateError, "state['x'][1]['when'] is an object (<object object at"),
            ("int-key", bandpass.StateError,
             "state['by_band'] has the key 2 (int): state keys must be strings (JSON would store it as \"2\""),
        ]  # fmt: skip
        for op, error, message in cases:
            with self.assertRaises(error, msg=op) as e:
                PROBE.evaluate({"op": op}, state={})
            self.assertTrue(str(e.exception).startswith(message), str(e.exception))
        self.assertIn("store sorted(...) as a list", str(self.failure("set")))
        # A dict that came with the state checks keys as they are stored.
        with self.assertRaisesRegex(TypeError, r"^state\[...\] has the key 2 \(int\)"):
            PROBE.evaluate({"op": "nested-int-key"}, state={"by_band": {"1": 19.0}})

    def failure(self, op):
        try:
            PROBE.evaluate({"op": op}, state={})
        except Exception as e:  # noqa: BLE001
            return e
        self.fail(f"{op} did not fail")

    def test_a_state_over_max_bytes_fails_saying_how_large(self):
        PROBE.evaluate({"op": "big", "size": 51}, state={})  # {"blob":"x...x"}: 11 + 51 = 62 bytes
        PROBE.evaluate({"op": "big", "size": 53}, state={})  # 64: just fits
        with self.assertRaises(bandpass.StateError) as e:
            PROBE.evaluate({"op": "big", "size": 54}, state={})
        self.assertTrue(
            str(e.exception).startswith("state of 65 bytes exceeds max_bytes=64 declared in the filter"),
            str(e.exception),
        )

    def test_stored_bytes_that_are_not_a_json_object_fail_naming_the_format(self):
        for raw, why in [
            (b"[1,2]", "JSON but a list, not an object"),
            (b"\xff\x00", "not UTF-8 text (invalid start byte at byte 0)"),
            (b"\x01\x02\x03", "not JSON (Expecting value: line 1 column 1 (char 0))"),
            (b'{"x":NaN}', "not JSON (NaN is not JSON)"),
            (b"", "not JSON"),
        ]:
            with self.assertRaises(bandpass.StateError) as e:
                PROBE.decide({"op": "count"}, state=raw)
            message = str(e.exception)
            self.assertTrue(
                message.startswith(f"the state stored for this object ({len(raw)} bytes, format 'probe/1') is {why}"),
                message,
            )
            self.assertIn("give this layout a format of its own (e.g. 'probe/2')", message)
        self.assertEqual(SEEN, [], "the filter is not called with a state it cannot read")

    def test_a_filter_without_state_takes_none(self):
        def plain(magpsf):
            return True

        declare(plain, fields={"magpsf": "candidate.magpsf"})
        self.assertEqual(plain.bandpass.decide({"magpsf": 1.0}), bandpass.Decision(bandpass.accept(), "keep"))
        with self.assertRaisesRegex(TypeError, "t declares no state"):
            plain.bandpass.evaluate({"magpsf": 1.0}, state={})

    def test_the_same_state_is_the_same_bytes(self):
        a = _state.encode({"b": 1.5, "a": {"y": [1, None, True], "x": "é"}})
        # UTF-8, not \u escapes: the bytes the Rust and JavaScript SDKs write.
        self.assertEqual(a, '{"a":{"x":"é","y":[1,null,true]},"b":1.5}'.encode())

    def test_the_bytes_are_those_of_json_dumps_compact_sorted_without_nan(self):
        import json

        for value in [
            {},
            {"since": 2460449.8784606, "faintest": {"2": 19.4, "1": 20.0}, "done": True},
            {"z": [1, 2.5, -0.0, 1e300, 5e-324, None, False], "a": "tab\t\"quote\" ü \U0001F600", "n": 2**70},
            {"nested": {"b": {"c": [[], {}]}, "a": []}},
        ]:
            expected = json.dumps(
                value, separators=(",", ":"), sort_keys=True, allow_nan=False, ensure_ascii=False
            ).encode()
            self.assertEqual(_state.encode(value), expected)

    def test_a_state_that_contains_itself_is_named(self):
        state = {}

        def cycle(op, size, state, params):
            inner = {}
            state["inner"] = inner
            inner["back"] = state
            return False

        declare(cycle, name="cycle", fields={"op": "candidate.op", "size": "candidate.size"},
                state=bandpass.State("c/1", 64), params={"accept": True})
        with self.assertRaisesRegex(bandpass.StateError, r"^state\['inner'\]\['back'\] contains itself"):
            cycle.bandpass.evaluate({}, state=state)
        self.assertEqual(state, {})


class StatefulComponentTest(unittest.TestCase):
    """The component glue serving a filter that keeps state."""

    @classmethod
    def setUpClass(cls):
        cls.wit, cls.log, cls.Err = fake_bindings()
        cls.glue = importlib.import_module("bandpass._component")
        cls.filter = cls.glue.bind("stateful_probe")()

    @classmethod
    def tearDownClass(cls):
        bandpass.log._sink = bandpass.log._to_stderr

    def setUp(self):
        SEEN.clear()
        self.filter.init([])

    def evaluate(self, op, state=None, size=None):
        fields = pack((5, op), (0, None) if size is None else (2, size))
        answer = self.filter.evaluate(*fields, state)
        if isinstance(answer, self.wit.Answer_Failed):
            raise self.Err(answer.value)  # as the tests read a failure
        return None if answer is None else answer.value

    def err(self, op, state=None, size=None):
        with self.assertRaises(self.Err) as e:
            self.evaluate(op, state, size)
        return e.exception.value

    def accepted(self, n):
        return self.wit.Verdict_Accept(self.wit.Accepted(None, [], [("n", str(n))]))

    def test_the_manifest_declares_the_state(self):
        m = self.filter.describe()
        self.assertEqual(m.state, self.wit.StateSpec(format="probe/1", max_bytes=64))
        self.assertEqual(m.fields, ["candidate.op", "candidate.size?"])

    def test_keep_set_and_forget(self):
        w = self.wit
        self.assertEqual(self.evaluate("count"), w.Decision(self.accepted(1), w.StateChange_Set(b'{"n":1}')))
        self.assertEqual(
            self.evaluate("count", b'{"n":1}'), w.Decision(self.accepted(2), w.StateChange_Set(b'{"n":2}'))
        )
        self.assertEqual(self.evaluate("read", b'{"n":2}'), w.Decision(self.accepted(2), w.StateChange_Keep()))
        self.assertEqual(self.evaluate("read"), w.Decision(self.accepted(0), w.StateChange_Keep()))
        self.assertEqual(self.evaluate("forget", b'{"n":2}'), w.Decision(self.accepted(0), w.StateChange_Forget()))
        self.assertEqual(self.evaluate("forget"), w.Decision(self.accepted(0), w.StateChange_Keep()))
        self.assertEqual(SEEN, [{}, {"n": 1}, {"n": 2}, {}, {"n": 2}, {}])

    def test_a_rejection_changes_the_state_too(self):
        self.filter.init([("accept", "false")])
        w = self.wit
        self.assertEqual(
            self.evaluate("count", b'{"n":7}'), w.Decision(w.Verdict_Reject(), w.StateChange_Set(b'{"n":8}'))
        )

    def test_the_authors_mistakes_are_errs_at_the_authors_line(self):
        self.assertEqual(
            self.err("nan"),
            "ValueError: state['x'] is nan: the state is kept as JSON, which has no NaN or infinity; "
            f"store None, or leave the key out (at stateful_probe.py:{line_of('nan')} in stateful_probe)",
        )
        message = self.err("set")
        self.assertTrue(message.startswith("TypeError: state['tags'] is a set ("), message)
        self.assertTrue(message.endswith(f"(at stateful_probe.py:{line_of('set')} in stateful_probe)"), message)
        message = self.err("nested-int-key", b'{"by_band":{"1":19.0}}')
        self.assertTrue(message.startswith("TypeError: state[...] has the key 2 (int)"), message)
        self.assertTrue(message.endswith(f"(at stateful_probe.py:{line_of('nested int key')} in stateful_probe)"))

    def test_what_is_found_after_the_call_is_an_err_naming_the_key(self):
        self.assertEqual(
            self.err("update-inf"),
            "state['x'] is inf: the state is kept as JSON, which has no NaN or infinity; "
            "store None, or leave the key out",
        )
        self.assertTrue(self.err("int-key").startswith("state['by_band'] has the key 2 (int)"))

    def test_too_large_a_state_is_an_err(self):
        just_fits = b'{"blob":"' + b"x" * 53 + b'"}'
        self.assertEqual(self.evaluate("big", size=53).state, self.wit.StateChange_Set(just_fits))
        self.assertTrue(
            self.err("big", size=200).startswith("state of 211 bytes exceeds max_bytes=64 declared in the filter")
        )

    def test_bytes_the_sdk_cannot_read_are_an_err_naming_the_format(self):
        message = self.err("count", b"\x00\x01 rust bytes")
        self.assertTrue(message.startswith("the state stored for this object (13 bytes, format 'probe/1') is not JSON"))
        self.assertEqual(SEEN, [])

    def test_a_failure_of_the_filter_is_an_err(self):
        self.assertEqual(self.err("raise", b'{"n":1}'), "failed after changing the state")
        self.assertTrue(self.err("none", b'{"n":1}').endswith("returned None; return bandpass.accept(...) or "
                                                              "bandpass.reject() on every path"))

    def test_a_tuple_is_kept_as_a_list(self):
        self.assertEqual(self.evaluate("tuple").state, self.wit.StateChange_Set(b'{"pair":[1,2]}'))


class CheckCommandTest(unittest.TestCase):
    def test_check_shows_the_state(self):
        from bandpass import _build

        with tempfile.TemporaryDirectory(prefix="bandpass-py-state-") as folder:
            path = os.path.join(folder, "keeps_state_t1.py")
            with open(path, "w") as f:
                f.write(
                    "import bandpass\n\n@bandpass.filter(name='t', version='1', survey='ztf', description='d',\n"
                    "    fields={'magpsf': 'candidate.magpsf'}, state=bandpass.State('t/1', 300))\n"
                    "def keeps_state(magpsf, state):\n    return False\n"
                )
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                self.assertEqual(_build.main(["check", path]), 0)
        self.assertIn("  state format t/1, at most 300 bytes per object\n", out.getvalue())


if __name__ == "__main__":
    unittest.main()
