// `fixed`: a real number as note text, exactly as the Rust SDK's
// `Verdict::note_real` (Rust's `format!("{x:.d$}")`) writes it.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';

import { fixed } from '../src/index.js';

// Rust's output for many doubles, made by running Rust; the Rust SDK's
// own tests check that `note_real` still writes every row.
const TABLE = new URL('../../testdata/note-real.txt', import.meta.url);

function fromBits(hex) {
  const view = new DataView(new ArrayBuffer(8));
  view.setBigUint64(0, BigInt(`0x${hex}`));
  return view.getFloat64(0);
}

describe('fixed', () => {
  it('rounds an exact half to the even digit and anything else to the nearest', () => {
    for (const [value, decimals, expected] of [
      [18.234, 2, '18.23'],
      [0.125, 2, '0.12'],
      [0.375, 2, '0.38'],
      [0.015, 2, '0.01'],
      [2.675, 2, '2.67'],
      [-0.125, 2, '-0.12'],
      [0.5, 0, '0'],
      [1.5, 0, '2'],
      [2.5, 0, '2'],
      [-0.5, 0, '-0'],
      [19.999, 2, '20.00'],
      [7, 1, '7.0'],
    ]) {
      assert.equal(fixed(value, decimals), expected, `${value} to ${decimals}`);
    }
  });

  it('writes signs, big values and non-finite values as Rust does', () => {
    assert.equal(fixed(-0.001, 2), '-0.00');
    assert.equal(fixed(-0, 1), '-0.0');
    assert.equal(fixed(1e21, 2), '1000000000000000000000.00');
    assert.equal(fixed(-1.5e22, 0), '-15000000000000000000000');
    assert.equal(fixed(NaN, 2), 'NaN');
    assert.equal(fixed(Infinity, 2), 'inf');
    assert.equal(fixed(-Infinity, 0), '-inf');
  });

  it('writes at most 17 decimals', () => {
    assert.equal(fixed(0.1, 17), '0.10000000000000001');
    assert.equal(fixed(0.1, 100), '0.10000000000000001');
  });

  it('refuses a wrong argument', () => {
    for (const value of ['1.5', null, 1n, undefined]) {
      assert.throws(() => fixed(value, 2), TypeError);
    }
    for (const decimals of [-1, 1.5, '2', undefined]) {
      assert.throws(() => fixed(1.5, decimals), RangeError);
    }
  });

  it('writes every row of the Rust table', () => {
    let rows = 0;
    for (const line of readFileSync(TABLE, 'utf8').split('\n')) {
      if (line === '' || line.startsWith('#')) continue;
      const [bits, decimals, text] = line.split(' ');
      const value = fromBits(bits);
      assert.equal(fixed(value, Number(decimals)), text, `${bits} (${value}) to ${decimals}`);
      rows += 1;
    }
    assert.ok(rows > 5000, `${rows} rows`);
  });
});
