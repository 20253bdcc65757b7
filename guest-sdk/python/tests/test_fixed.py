"""`bandpass.fixed`: a real number as note text, exactly as the Rust SDK's
`Verdict::note_real` (Rust's `format!("{x:.d$}")`) writes it.

Run from the repository root:

    python3 -m unittest discover -s guest-sdk/python/tests
"""

import math
import os
import struct
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SDK = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(SDK, "src"))

import bandpass  # noqa: E402

#: Rust's output for many doubles, made by running Rust; the Rust SDK's own
#: tests check that `note_real` still writes every row.
TABLE = os.path.join(os.path.dirname(SDK), "testdata", "note-real.txt")


class FixedTest(unittest.TestCase):
    def test_exact_halves_go_to_the_even_digit_and_others_to_the_nearest(self):
        for value, decimals, expected in [
            (18.234, 2, "18.23"),
            (0.125, 2, "0.12"),
            (0.375, 2, "0.38"),
            (0.015, 2, "0.01"),
            (2.675, 2, "2.67"),
            (-0.125, 2, "-0.12"),
            (0.5, 0, "0"),
            (1.5, 0, "2"),
            (2.5, 0, "2"),
            (-0.5, 0, "-0"),
            (19.999, 2, "20.00"),
            (7, 1, "7.0"),
        ]:
            self.assertEqual(bandpass.fixed(value, decimals), expected, (value, decimals))

    def test_signs_big_values_and_non_finite_values_read_as_in_rust(self):
        self.assertEqual(bandpass.fixed(-0.001, 2), "-0.00")
        self.assertEqual(bandpass.fixed(-0.0, 1), "-0.0")
        self.assertEqual(bandpass.fixed(1e21, 2), "1000000000000000000000.00")
        self.assertEqual(bandpass.fixed(math.nan, 2), "NaN")
        self.assertEqual(bandpass.fixed(-math.nan, 2), "NaN")
        self.assertEqual(bandpass.fixed(math.inf, 2), "inf")
        self.assertEqual(bandpass.fixed(-math.inf, 0), "-inf")

    def test_at_most_17_decimals(self):
        self.assertEqual(bandpass.fixed(0.1, 17), "0.10000000000000001")
        self.assertEqual(bandpass.fixed(0.1, 200), "0.10000000000000001")

    def test_a_wrong_argument_is_refused(self):
        for value in ("1.5", None, True):
            with self.assertRaises(TypeError):
                bandpass.fixed(value, 2)
        for decimals in (-1, 2.0, None):
            with self.assertRaises(ValueError):
                bandpass.fixed(1.5, decimals)

    def test_every_row_of_the_rust_table(self):
        rows = 0
        with open(TABLE) as table:
            for line in table:
                if line.startswith("#"):
                    continue
                bits, decimals, text = line.split()
                (value,) = struct.unpack(">d", bytes.fromhex(bits))
                self.assertEqual(bandpass.fixed(value, int(decimals)), text, (bits, value, decimals))
                rows += 1
        self.assertGreater(rows, 5000)


if __name__ == "__main__":
    unittest.main()
