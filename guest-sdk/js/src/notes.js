// `fixed(value, decimals)`: a real number as note text, the same text the
// Rust SDK's `Verdict::note_real` and the Python SDK's `bandpass.fixed`
// write, so that a filter and its twins in other languages note the same
// thing.
//
// The text is the value's exact binary value rounded to `decimals` digits
// after the point, an exact half rounded to the even digit (as Rust's
// `format!("{:.2}", x)` and Python's `f"{x:.2f}"` do): 0.125 -> "0.12",
// 0.375 -> "0.38", 0.015 (just below 0.015 in binary) -> "0.01". A
// negative value keeps its sign even when it rounds to zero (-0.001 and
// -0 -> "-0.00"), values from 1e21 up are written in full, never with an
// exponent, and not-a-number and the infinities read "NaN", "inf",
// "-inf". `decimals` is at most 17; more counts as 17.
//
// `Number.prototype.toFixed` also rounds the exact binary value, but it
// takes the larger of two equally near results (0.125 -> "0.13"), writes
// -0 as "0.00", the infinities as "Infinity" and values from 1e21 up with
// an exponent; this mends those cases.

/** The most digits `fixed` writes after the point. */
export const MAX_DECIMALS = 17;

// Digits past `decimals` read to find an exact half. A double within
// 10^-(decimals+1) of an exact half at `decimals` (decimals <= 17) has at
// most ~113 bits after the point, so it cannot agree with that half on
// 60 more digits without being it (nor round to it there).
const EXTRA = 60;
const ZEROS = '0'.repeat(EXTRA - 1);

/**
 * `value` with `decimals` digits after the point, as the Rust SDK's
 * `note_real` writes it (see above).
 * @param {number} value
 * @param {number} decimals a whole number from 0 (at most 17 are written)
 * @returns {string}
 */
export function fixed(value, decimals) {
  if (typeof value !== 'number') {
    throw new TypeError(`fixed(value, ...) takes a number, got ${typeof value} ${String(value)}`);
  }
  if (!Number.isInteger(decimals) || decimals < 0) {
    throw new RangeError(`fixed(..., decimals) takes a whole number from 0 to ${MAX_DECIMALS}, got ${String(decimals)}`);
  }
  const d = decimals > MAX_DECIMALS ? MAX_DECIMALS : decimals;
  if (value !== value) return 'NaN';
  const sign = value < 0 || Object.is(value, -0) ? '-' : '';
  const a = sign ? -value : value;
  if (a === Infinity) return `${sign}inf`;
  if (a >= 1e21) {
    // A whole number (every double from 2^53 up is); BigInt writes it exactly.
    return `${sign}${BigInt(a)}${d > 0 ? `.${'0'.repeat(d)}` : ''}`;
  }
  // An exact half scales to exactly k + 0.5 (the product is exact below
  // 2^52, 10^d is exact); anything else is rounded right by toFixed.
  const scaled = a * 10 ** d;
  if (scaled < 2 ** 52 && scaled - Math.floor(scaled) !== 0.5) return sign + a.toFixed(d);
  const long = a.toFixed(d + EXTRA);
  const tail = long.slice(long.length - EXTRA);
  if (tail[0] !== '5' || tail.slice(1) !== ZEROS) return sign + a.toFixed(d);
  // An exact half: keep the digits if the last is even, else round up
  // (which toFixed does to a half, taking the larger result).
  const head = long.slice(0, d > 0 ? long.length - EXTRA : long.length - EXTRA - 1);
  return sign + ((head.charCodeAt(head.length - 1) & 1) === 0 ? head : a.toFixed(d));
}
