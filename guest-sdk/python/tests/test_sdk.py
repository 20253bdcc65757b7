"""The Python SDK in plain CPython: the decorator, parameters, verdicts, and
the component glue run against stand-ins for componentize-py's generated
bindings (same names and shapes as `componentize-py bindings` makes of
wit/filter.wit), so that nothing here needs componentize-py.

Run from the repository root:

    python3 -m unittest discover -s guest-sdk/python/tests
"""

import enum
import importlib
import json
import os
import shutil
import struct
import sys
import types
import unittest
from dataclasses import dataclass
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
SDK = os.path.dirname(HERE)
REPO = os.path.dirname(os.path.dirname(SDK))
sys.path.insert(0, os.path.join(SDK, "src"))

import bandpass  # noqa: E402
from bandpass import _spec  # noqa: E402


def declare(function, **overrides):
    """Declares `function` with defaults for what a test does not care about."""
    kwargs = dict(name="t", version="0.1.0", survey="ztf", description="A test.", fields={})
    kwargs.update(overrides)
    return bandpass.filter(**kwargs)(function)


class DecoratorTest(unittest.TestCase):
    def test_the_function_is_returned_unchanged_with_its_fields_in_argument_order(self):
        def f(rb, magpsf):
            return None

        g = declare(f, fields={"magpsf": "candidate.magpsf", "rb": "candidate.rb"})
        self.assertIs(g, f)
        self.assertEqual(f.bandpass.paths, ["candidate.rb", "candidate.magpsf"])
        self.assertFalse(f.bandpass.takes_params)

    def test_an_argument_without_a_path_is_refused_naming_it(self):
        def f(magpsf, rbb):
            return None

        with self.assertRaisesRegex(ValueError, r"takes 'rbb' but fields= gives no alert path for it"):
            declare(f, fields={"magpsf": "candidate.magpsf"})

    def test_a_path_without_an_argument_is_refused_naming_it(self):
        def f(magpsf):
            return None

        with self.assertRaisesRegex(ValueError, r"fields= names 'rb', which is not an argument"):
            declare(f, fields={"magpsf": "candidate.magpsf", "rb": "candidate.rb"})

    def test_bad_names_paths_surveys_and_defaults_are_refused(self):
        def f(m, params):
            return None

        fields = {"m": "candidate.magpsf"}
        with self.assertRaisesRegex(ValueError, "lowercase letters, digits and dashes"):
            declare(f, name="Bright Ones", fields=fields)
        with self.assertRaisesRegex(ValueError, "survey='lsst' must be one of ztf, rubin, any"):
            declare(f, survey="lsst", fields=fields)
        with self.assertRaisesRegex(ValueError, "a path is dotted names"):
            declare(f, fields={"m": "candidate magpsf"})
        with self.assertRaisesRegex(TypeError, "parameter 'bands': the default"):
            declare(f, fields=fields, params={"bands": [1, 2]})

        def g(m):
            return None

        with self.assertRaisesRegex(TypeError, "must take a last argument named `params`"):
            declare(g, fields=fields, params={"max_mag": 18.5})

    def test_a_module_must_declare_exactly_one_filter(self):
        with self.assertRaisesRegex(LookupError, "^declares no filter: decorate its filter function with"):
            _spec.find_filter("no_such_module")


class ParamsTest(unittest.TestCase):
    def spec(self, check=None):
        def f(x, params):
            return None

        declare(
            f,
            fields={"x": "candidate.x"},
            params={"max_mag": 18.5, "n": 2, "flag": False, "band": "r", "max_age": float},
            check_params=check,
        )
        return f.bandpass

    def test_defaults_are_typed_and_a_type_means_none_unless_given(self):
        p = self.spec().configure([])
        self.assertEqual((p.max_mag, p.n, p.flag, p.band, p.max_age), (18.5, 2, False, "r", None))
        self.assertEqual(p["max_mag"], 18.5)

    def test_given_texts_are_converted_to_the_type_of_the_default(self):
        p = self.spec().configure(
            [("max_mag", "19"), ("n", " 3 "), ("flag", "Yes"), ("band", "g"), ("max_age", "2.5")]
        )
        self.assertEqual((p.max_mag, p.n, p.flag, p.band, p.max_age), (19.0, 3, True, "g", 2.5))
        self.assertIs(type(p.max_mag), float)

    def test_the_last_value_of_a_repeated_key_wins(self):
        self.assertEqual(self.spec().configure([("n", "1"), ("n", "4")]).n, 4)

    def test_unknown_keys_are_refused_naming_the_known_ones(self):
        with self.assertRaises(bandpass.ParamError) as e:
            self.spec().configure([("max_mgg", "17")])
        self.assertEqual(
            str(e.exception), 'unknown parameter "max_mgg"; this filter knows: max_mag, n, flag, band, max_age'
        )

        def g(x):
            return None

        declare(g, fields={"x": "candidate.x"})
        with self.assertRaisesRegex(bandpass.ParamError, 'unknown parameter "a"; this filter takes none'):
            g.bandpass.configure({"a": "1"})

    def test_values_that_do_not_parse_are_refused_naming_the_key(self):
        spec = self.spec()
        for given, message in [
            (("max_mag", "high"), "parameter max_mag: expected a finite number, got 'high'"),
            (("max_mag", "nan"), "parameter max_mag: expected a finite number, got 'nan'"),
            (("n", "2.5"), "parameter n: expected an integer, got '2.5' (the filter declares an integer"),
            (("flag", "maybe"), "parameter flag: expected true or false, got 'maybe'"),
        ]:
            with self.assertRaises(bandpass.ParamError) as e:
                spec.configure([given])
            self.assertTrue(str(e.exception).startswith(message), str(e.exception))

    def test_check_params_refuses_with_its_message(self):
        def check(p):
            if p.n < 1:
                raise ValueError("parameter n: must be at least 1")

        with self.assertRaisesRegex(ValueError, "parameter n: must be at least 1"):
            self.spec(check).configure([("n", "0")])


class VerdictTest(unittest.TestCase):
    def test_accept_normalises_score_tags_and_notes(self):
        v = bandpass.accept(score=1, tags=("a", "b"), notes={"mag": 18.25, "band": "r"})
        self.assertEqual((v.score, v.tags, v.notes), (1.0, ["a", "b"], [("mag", "18.25"), ("band", "r")]))
        self.assertIs(type(v.score), float)
        self.assertEqual(tuple(bandpass.accept()), (None, [], []))
        self.assertEqual(dict(bandpass.accept(notes=[("a", 1)]).notes), {"a": "1"})

    def test_accept_refuses_what_the_host_could_not_carry(self):
        with self.assertRaisesRegex(TypeError, r"write tags=\['bright'\]"):
            bandpass.accept(tags="bright")
        with self.assertRaisesRegex(TypeError, "every tag must be a string"):
            bandpass.accept(tags=["a", 2])
        with self.assertRaisesRegex(TypeError, "takes a number or None"):
            bandpass.accept(score="high")
        with self.assertRaisesRegex(TypeError, "every key must be a string"):
            bandpass.accept(notes={1: "a"})

    def test_true_and_false_are_verdicts_and_anything_else_is_an_error(self):
        self.assertEqual(_spec.verdict_of(True), bandpass.accept())
        self.assertIs(_spec.verdict_of(False), bandpass.reject())
        with self.assertRaisesRegex(TypeError, r"returned int 1; return bandpass.accept\(...\)"):
            _spec.verdict_of(1)

    def test_none_a_forgotten_return_is_an_error_naming_the_function_file_and_def_line(self):
        def forgets(magpsf):
            if magpsf < 18:
                bandpass.accept()

        declare(forgets, fields={"magpsf": "candidate.magpsf"})
        line = forgets.__code__.co_firstlineno
        with self.assertRaises(bandpass.FilterError) as e:
            forgets.bandpass.evaluate({"magpsf": 17.0})
        self.assertEqual(
            str(e.exception),
            f"forgets (test_sdk.py, line {line}) returned None; "
            "return bandpass.accept(...) or bandpass.reject() on every path",
        )


# --- stand-ins for componentize-py's generated bindings ----------------------


def fake_bindings():
    """Installs modules shaped like `componentize-py bindings` output.

    Once per process: `bandpass._component` keeps the classes it found at
    import, so every test module shares the same stand-ins.
    """
    installed = sys.modules.get("wit_world.imports.types")
    if installed is not None and hasattr(installed, "Decision"):
        return installed, sys.modules["wit_world.imports.log"], sys.modules["componentize_py_types"].Err
    t = types.ModuleType("wit_world.imports.types")

    def case(name, *fields):
        cls = dataclass(type(name, (), {"__annotations__": {f: Any for f in fields}}))
        setattr(t, name, cls)
        return cls

    case("RealColumn", "values", "present")
    case("IntegerColumn", "values", "present")
    case("TextColumn", "text", "ends", "present")
    case("Value_Absent")
    for name in ("Boolean", "Integer", "Real", "Text", "Bytes", "Booleans", "Integers", "Reals", "Texts"):
        case("Value_" + name, "value")
    case("Accepted", "score", "tags", "annotations")
    case("Verdict_Reject")
    case("Verdict_Accept", "value")
    case("StateSpec", "format", "max_bytes")
    case("Crossmatch", "name", "catalog", "radius_arcsec", "max_rows")
    case("Manifest", "name", "version", "survey", "fields", "description", "state", "crossmatches")
    case("StateChange_Keep")
    case("StateChange_Set", "value")
    case("StateChange_Forget")
    case("Decision", "verdict", "state")
    case("Answer_Decided", "value")
    case("Answer_Failed", "value")

    log = types.ModuleType("wit_world.imports.log")
    log.Level = enum.Enum("Level", {"DEBUG": 0, "INFO": 1, "WARN": 2, "ERROR": 3})
    log.lines = []
    log.log = lambda level, message: log.lines.append((level.name, message))

    class Err(Exception):
        def __init__(self, value):
            super().__init__(value)
            self.value = value

    cpt = types.ModuleType("componentize_py_types")
    cpt.Err = Err
    world = types.ModuleType("wit_world")
    exports = types.ModuleType("wit_world.exports")
    exports.Filter = type("Filter", (), {})
    imports = types.ModuleType("wit_world.imports")
    imports.types, imports.log = t, log
    world.exports, world.imports = exports, imports
    sys.modules.update(
        {
            "wit_world": world,
            "wit_world.exports": exports,
            "wit_world.imports": imports,
            "wit_world.imports.types": t,
            "wit_world.imports.log": log,
            "componentize_py_types": cpt,
        }
    )
    return t, log, Err


def pack(*fields):
    """`evaluate`'s fields and others for (kind, value) pairs, as the host
    packs them: 8 bytes a field, a kind byte a field, then the texts, a
    text (kind 5) as its first and past-its-last byte in the list."""
    kinds, numbers, texts, others = bytearray(), bytearray(), bytearray(), []
    start_of_texts = 9 * len(fields)
    for kind, value in fields:
        kinds.append(kind)
        if kind == 1:
            numbers += struct.pack("<d", value)
        elif kind in (2, 3):
            numbers += struct.pack("<q", int(value))
        elif kind == 5:
            start = start_of_texts + len(texts)
            texts += value.encode()
            numbers += struct.pack("<II", start, start_of_texts + len(texts))
        else:
            numbers += bytes(8)
            if kind == 4:
                others.append(value)
    # `others` is none when no field is of kind 4.
    return bytes(numbers + kinds + texts), others or None


def helper_that_fails(x):
    return x / 0  # the line the error message must name


def probe(magpsf, n, flag, isdiffpos, missing, jds, fids, signs, params):
    PROBE.append((magpsf, n, flag, isdiffpos, missing, jds, fids, signs, params))
    if magpsf is None:
        return bandpass.reject()
    if magpsf == 1:
        return None  # a forgotten return
    if magpsf < 0:
        return helper_that_fails(magpsf)
    if magpsf > 100:
        raise bandpass.FilterError("magnitude out of range")
    if magpsf == 77:
        return json.loads("{")  # raises inside the standard library
    if magpsf > 50:
        return 42
    return bandpass.accept(score=magpsf, tags=["t"], notes={"n": n})


PROBE = []
declare(
    probe,
    name="probe",
    fields={
        "magpsf": "candidate.magpsf",
        "n": "candidate.ndethist",
        "flag": "candidate.flag",
        "isdiffpos": "candidate.isdiffpos",
        "missing": "candidate.drb?",
        "jds": "prv_candidates.jd",
        "fids": "prv_candidates.fid",
        "signs": "prv_candidates.isdiffpos",
    },
    params={"max_mag": 18.5},
)


class ComponentGlueTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.wit, cls.log, cls.Err = fake_bindings()
        cls.glue = importlib.import_module("bandpass._component")
        cls.Filter = cls.glue.bind(__name__)
        cls.filter = cls.Filter()

    @classmethod
    def tearDownClass(cls):
        bandpass.log._sink = bandpass.log._to_stderr

    def fields(self, magpsf=(1, 18.2), isdiffpos="t"):
        w = self.wit
        return pack(
            magpsf,
            (2, 7),
            (3, 1),
            (5, isdiffpos),
            (0, None),
            (4, w.Value_Reals(w.RealColumn(struct.pack("<3d", 1.5, 0.0, 2.5), b"\x01\x00\x01"))),
            (4, w.Value_Integers(w.IntegerColumn(struct.pack("<2q", 1, 2), b"\x01\x01"))),
            (4, w.Value_Texts(w.TextColumn("téx", [1, 1, 4], b"\x01\x00\x01"))),
        )

    def evaluate(self, state=None, **kw):
        """The verdict on an alert; a filter without state always keeps none
        (a rejection comes back as None, "reject, state unchanged")."""
        PROBE.clear()
        answer = self.filter.evaluate(*self.fields(**kw), state)
        if answer is None:
            return self.wit.Verdict_Reject()
        if isinstance(answer, self.wit.Answer_Failed):
            raise self.Err(answer.value)  # as the tests read a failure
        decision = answer.value
        self.assertEqual(decision.state, self.wit.StateChange_Keep())
        self.assertNotEqual(decision.verdict, self.wit.Verdict_Reject(), "a plain rejection is None")
        return decision.verdict

    def test_the_manifest_lists_the_paths_in_argument_order(self):
        m = self.filter.describe()
        self.assertEqual((m.name, m.survey), ("probe", "ztf"))
        self.assertEqual(m.fields[:3], ["candidate.magpsf", "candidate.ndethist", "candidate.flag"])
        self.assertIsNone(m.state, "a filter that declares no state says so in its manifest")
        self.assertEqual(m.crossmatches, [], "a filter that declares no cross-match asks for none")

    def test_a_filter_without_state_keeps_none_whatever_comes(self):
        reject = self.wit.Verdict_Reject()
        self.assertEqual(self.evaluate(magpsf=(0, None)), reject)
        # The host sends none to such a filter; were it to, nothing changes.
        self.assertEqual(self.evaluate(state=b'{"n":1}', magpsf=(0, None)), reject)
        self.assertEqual(self.evaluate(state=b"\xff"), self.wit.Verdict_Accept(self.wit.Accepted(18.2, ["t"], [("n", "7")])))

    def test_each_kind_arrives_as_a_plain_python_value(self):
        self.filter.init([])
        v = self.evaluate()
        magpsf, n, flag, isdiffpos, missing, jds, fids, signs, params = PROBE[0]
        self.assertEqual((magpsf, n, flag, isdiffpos, missing), (18.2, 7, True, "t", None))
        self.assertIs(type(n), int)
        self.assertIs(flag, True)
        self.assertEqual(jds, [1.5, None, 2.5])
        self.assertEqual(fids, [1, 2])
        self.assertEqual(signs, ["t", None, "éx"])
        self.assertEqual(params.max_mag, 18.5)
        self.assertEqual(v, self.wit.Verdict_Accept(self.wit.Accepted(18.2, ["t"], [("n", "7")])))
        # A second alert of the same shape takes the cached plan.
        self.assertEqual(self.evaluate(), v)

    def test_a_rejection_that_keeps_the_state_is_answered_none(self):
        self.assertIsNone(self.filter.evaluate(*self.fields(magpsf=(0, None)), None))

    def test_a_failure_is_answered_failed_not_raised(self):
        # Raised, it would reach componentize-py as an `err`, which 0.5.0's
        # `evaluate` does not return: its failures are an `answer`.
        answer = self.filter.evaluate(*self.fields(magpsf=(1, 150.0)), None)
        self.assertEqual(answer, self.wit.Answer_Failed("magnitude out of range"))
        accepted = self.filter.evaluate(*self.fields(), None)
        self.assertIsInstance(accepted, self.wit.Answer_Decided)

    def test_texts_are_read_by_their_byte_spans_ascii_or_not(self):
        for text in ("t", "Müller ✓", ""):
            self.evaluate(isdiffpos=text)
            self.assertEqual(PROBE[0][3], text)
        # The texts follow the 8 fields' numbers and kinds; spans count
        # bytes of the list.
        fields, others = self.fields(isdiffpos="é")
        self.assertEqual(struct.unpack_from("<II", fields, 24), (72, 74))
        self.assertEqual(fields[72:], "é".encode())

    def test_an_absent_field_is_none(self):
        self.assertEqual(self.evaluate(magpsf=(0, None)), self.wit.Verdict_Reject())
        self.assertIsNone(PROBE[0][0])

    def test_returning_none_is_an_err_naming_the_function_its_file_and_its_def_line(self):
        self.log.lines.clear()
        with self.assertRaises(self.Err) as e:
            self.evaluate(magpsf=(1, 1.0))
        with open(__file__) as f:
            line = next(i for i, l in enumerate(f, 1) if l.startswith("def probe("))
        self.assertEqual(
            e.exception.value,
            f"probe (test_sdk.py, line {line}) returned None; "
            "return bandpass.accept(...) or bandpass.reject() on every path",
        )
        self.assertEqual(self.log.lines, [], "a missing return is no exception: no traceback to log")

    def test_an_exception_is_an_err_naming_the_line_and_its_traceback_is_logged(self):
        self.log.lines.clear()
        with self.assertRaises(self.Err) as e:
            self.evaluate(magpsf=(1, -1.0))
        line = helper_that_fails.__code__.co_firstlineno + 1
        self.assertEqual(
            e.exception.value,
            f"ZeroDivisionError: float division by zero (at test_sdk.py:{line} in helper_that_fails)",
        )
        logged = "\n".join(m for _, m in self.log.lines)
        self.assertIn("Traceback (most recent call last):", logged)
        self.assertIn(f"line {line}, in helper_that_fails", logged)
        self.assertNotIn("_component.py", logged)
        self.assertEqual({level for level, _ in self.log.lines}, {"ERROR"})

    def test_an_error_inside_the_standard_library_is_located_at_the_authors_call(self):
        with self.assertRaises(self.Err) as e:
            self.evaluate(magpsf=(1, 77.0))
        with open(__file__) as f:
            line = next(i for i, l in enumerate(f, 1) if "raises inside the standard library" in l)
        self.assertTrue(e.exception.value.startswith("JSONDecodeError: "), e.exception.value)
        self.assertTrue(e.exception.value.endswith(f"(at test_sdk.py:{line} in probe)"), e.exception.value)

    def test_a_filter_error_is_reported_with_its_message_alone(self):
        with self.assertRaises(self.Err) as e:
            self.evaluate(magpsf=(1, 150.0))
        self.assertEqual(e.exception.value, "magnitude out of range")

    def test_a_return_value_that_is_no_verdict_is_an_err_saying_what_to_return(self):
        with self.assertRaises(self.Err) as e:
            self.evaluate(magpsf=(1, 60.0))
        self.assertIn("probe() returned int 42; return bandpass.accept(...)", e.exception.value)

    def test_memory_error_is_not_turned_into_an_err(self):
        def hungry(*_):
            raise MemoryError()

        try:
            self.glue._function = hungry
            self.glue._callers.clear()
            with self.assertRaises(MemoryError):
                self.evaluate()
        finally:
            self.glue._function = probe
            self.glue._callers.clear()

    def test_init_refuses_bad_parameters_with_their_message(self):
        with self.assertRaises(self.Err) as e:
            self.filter.init([("max_mgg", "1")])
        self.assertEqual(e.exception.value, 'unknown parameter "max_mgg"; this filter knows: max_mag')
        self.filter.init([("max_mag", "19")])
        self.evaluate()
        self.assertEqual(PROBE[0][-1].max_mag, 19.0)
        self.filter.init([])

    def test_each_alert_reseeds_random_from_os_urandom_when_the_filter_imported_it(self):
        import random

        self.assertIsNotNone(self.glue._reseed, "`random` was imported when the filter was bound")
        # The host's wasi:random: a stream fixed by the alert; here by magpsf.
        alert_bytes = {}

        def urandom(n):
            return alert_bytes["current"][:n]

        drawn = []

        def dice(*_):
            drawn.append((random.random(), random.gauss(0, 1), random.randint(0, 10**9)))
            return bandpass.reject()

        try:
            self.glue._urandom = urandom
            self.glue._function = dice
            self.glue._callers.clear()
            for magpsf in (18.0, 19.0, 18.0):
                alert_bytes["current"] = struct.pack("<d", magpsf) * 2
                random.random()  # draws between alerts change nothing
                self.evaluate(magpsf=(1, magpsf))
        finally:
            self.glue._urandom = os.urandom
            self.glue._function = probe
            self.glue._callers.clear()
        self.assertEqual(drawn[0], drawn[2], "the same alert draws the same numbers, gauss's cache included")
        self.assertNotEqual(drawn[0], drawn[1])

    def test_a_filter_without_random_is_not_reseeded(self):
        saved = sys.modules.pop("random")
        try:
            self.glue.bind(__name__)
            self.assertIsNone(self.glue._reseed)
        finally:
            sys.modules["random"] = saved
            self.glue.bind(__name__)
        self.assertIsNotNone(self.glue._reseed)

    def test_log_lines_go_to_the_host_log(self):
        self.log.lines.clear()
        bandpass.log.warn("careful")
        self.assertEqual(self.log.lines, [("WARN", "careful")])


class BuildCommandTest(unittest.TestCase):
    """`bandpass-py build` refuses, in plain words, what it cannot build (before componentize-py)."""

    def setUp(self):
        import tempfile

        from bandpass import _build

        self.build = _build
        self.dir = tempfile.mkdtemp(prefix="bandpass-py-test-")
        self.addCleanup(shutil.rmtree, self.dir, ignore_errors=True)

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def refused(self, path):
        with self.assertRaises(self.build.BuildError) as e:
            self.build.check(path)
        return str(e.exception)

    def test_a_missing_file_is_named(self):
        path = os.path.join(self.dir, "nope.py")
        self.assertEqual(self.refused(path), f"{path}: no such file; give the path of the filter's .py file")

    def test_a_module_without_a_filter_says_to_decorate_one(self):
        path = self.write("plain_module_t1.py", "def f(magpsf):\n    return True\n")
        self.assertEqual(
            self.refused(path),
            f"{path} declares no filter: decorate its filter function with "
            "@bandpass.filter(name=..., version=..., survey=..., description=..., fields={...})",
        )

    def test_a_mistake_in_the_declaration_is_reported_with_its_line(self):
        path = self.write(
            "typo_module_t2.py",
            "import bandpass\n\n@bandpass.filter(name='t', version='1', survey='ztf', description='d',\n"
            "    fields={'magpsf': 'candidate.magpsf'})\ndef f(magpsf, rb):\n    return True\n",
        )
        message = self.refused(path)
        self.assertIn("importing it failed at typo_module_t2.py:3: ValueError:", message)
        self.assertIn("takes 'rb' but fields= gives no alert path for it", message)

    def test_a_syntax_error_names_its_line(self):
        path = self.write("broken_t4.py", "import bandpass\n\ndef f(:\n    pass\n")
        self.assertTrue(self.refused(path).startswith(f"{path}:3: SyntaxError:"), self.refused(path))

    def test_a_module_named_like_the_standard_library_is_refused(self):
        self.assertIn("taken by the standard library", self.refused(self.write("json.py", "")))

    def test_a_decorated_filter_is_located_at_its_def_line_not_its_decorator(self):
        path = self.write(
            "located_t5.py",
            "import bandpass\n\n@bandpass.filter(name='t', version='1', survey='ztf', description='d',\n"
            "    fields={'magpsf': 'candidate.magpsf'})\ndef located(magpsf):\n    pass\n",
        )
        _, spec = self.build.check(path)
        self.assertEqual(spec.where, "located (located_t5.py, line 5)")

    def test_a_package_with_native_code_is_found_with_the_line_importing_it(self):
        import shutil
        import sysconfig

        # A real extension module of this CPython, copied into a package
        # beside the filter: it imports here, as numpy does.
        dynload = sysconfig.get_config_var("DESTSHARED") or ""
        candidates = sorted(f for f in os.listdir(dynload) if f.startswith("_bisect.")) if os.path.isdir(dynload) else []
        if not candidates:
            self.skipTest("this CPython has no extension module files to copy")
        package = os.path.join(self.dir, "native_pkg_t6")
        os.mkdir(package)
        shutil.copy(os.path.join(dynload, candidates[0]), package)
        self.write("native_pkg_t6/__init__.py", "from . import _bisect  # noqa: F401\n")
        path = self.write(
            "uses_native_t6.py",
            "import bandpass\nimport native_pkg_t6\n\n"
            "@bandpass.filter(name='t', version='1', survey='ztf', description='d',\n"
            "    fields={'magpsf': 'candidate.magpsf'})\ndef uses_native(magpsf):\n    return False\n",
        )
        before = set(sys.modules)
        self.build.check(path)  # imports it natively, with its folder on the path
        found = self.build.native_imports(path, set(sys.modules) - before)
        self.assertEqual(found, [("native_pkg_t6", 2, f"native_pkg_t6/{candidates[0]}")])

    def test_a_failed_import_in_the_component_is_a_short_message_not_componentize_pys_traceback(self):
        # What componentize-py prints when numpy (installed here, native)
        # fails to import in the component: numpy's own advice, ~40 lines.
        advice = "\n".join(f"    advice line {i} about desktop installs" for i in range(30))
        output = (
            'Traceback (most recent call last):\n  File "<string>", line 1, in <module>\n'
            'AssertionError: Traceback (most recent call last):\n  File "/0/bandpass_entry.py", line 2, in <module>\n'
            '    import my_filter\n  File "/1/my_filter.py", line 3, in <module>\n    import numpy as np\n'
            '  File "/2/numpy/__init__.py", line 114, in <module>\n    raise ImportError(msg) from e\n'
            "ImportError: \n\nIMPORTANT: PLEASE READ THIS FOR ADVICE ON HOW TO SOLVE THIS ISSUE!\n"
            f"{advice}\n\nCaused by:\n    ImportError: Error importing numpy: you should not try to import numpy from\n"
        )
        native = [("numpy", 3, "numpy/_core/_multiarray_umath.cpython-311-x86_64-linux-gnu.so")]
        message = self.build.import_failure("my_filter.py", "my_filter", output, native)
        self.assertTrue(
            message.startswith(
                "my_filter.py:3: imports numpy, which has native code "
                "(numpy/_core/_multiarray_umath.cpython-311-x86_64-linux-gnu.so) that cannot run in a component: "
                "a component holds the standard library's pure-Python modules and the pure-Python packages "
                "installed beside the SDK, but no native code"
            ),
            message,
        )
        self.assertLessEqual(len(message.splitlines()), 2, message)
        self.assertNotIn("advice line", message)
        # A standard module that needs the system: the failing line and the rule.
        ssl = self.build.import_failure(
            "f.py",
            "f",
            '  File "/1/f.py", line 2, in <module>\n    import ssl\n  File "/python/ssl.py", line 100\n'
            "ModuleNotFoundError: No module named '_ssl'\n\nCaused by:\n    ModuleNotFoundError: No module named '_ssl'\n",
        )
        self.assertTrue(ssl.startswith("f.py:2: ModuleNotFoundError: No module named '_ssl'\nA component holds"), ssl)
        # A data file opened by a bare relative path at import.
        data = self.build.import_failure(
            "f.py", "f", "  File \"/1/f.py\", line 6, in <module>\nFileNotFoundError: [Errno 44] No such file or directory: 'known.txt'\n"
        )
        self.assertIn("f.py:6: FileNotFoundError: [Errno 44] No such file or directory: 'known.txt'", data)
        self.assertIn("os.path.join(os.path.dirname(__file__), 'data.txt')", data)
        self.assertIsNone(self.build.import_failure("f.py", "f", "error: something else entirely"))

    def test_imports_inside_functions_are_warned_about_with_their_line(self):
        path = self.write("late_t3.py", "import math\n\ndef f():\n    import json\n    from os import path\n")
        warnings = self.build.late_imports(path)
        self.assertEqual([w.split(": imports")[0] for w in warnings], [f"{path}:4", f"{path}:5"])
        self.assertIn("import it at the top of the module", warnings[0])


class ContractCopyTest(unittest.TestCase):
    def test_the_packaged_wit_is_the_repository_contract_byte_for_byte(self):
        repo_wit = os.path.join(REPO, "wit", "filter.wit")
        if not os.path.isfile(repo_wit):
            self.skipTest("not in a bandpass checkout")
        with open(repo_wit, "rb") as a, open(os.path.join(SDK, "src", "bandpass", "wit", "filter.wit"), "rb") as b:
            self.assertEqual(a.read(), b.read(), "copy wit/filter.wit to guest-sdk/python/src/bandpass/wit/")


if __name__ == "__main__":
    unittest.main()
