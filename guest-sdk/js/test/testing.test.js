// Tests of `@bandpass/filter/testing`, the helper that runs a filter in
// Node for an author's unit tests: `node --test test/`.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { accept, defineFilter, reject } from '../src/index.js';
import { FilterError, load } from '../testing/index.js';

const counter = defineFilter({
  name: 'counter',
  version: '0.1.0',
  survey: 'ztf',
  description: 'Counts positive detections per object; accepts the third.',
  fields: { mag: 'candidate.magpsf', sign: 'candidate.isdiffpos', jds: 'prv_candidates.jd', bands: 'prv_candidates.fid' },
  params: { accept_at: { type: 'integer', default: 3 } },
  state: { format: 'counter/1', maxBytes: 32 },
  evaluate(alert, params, state) {
    if (alert.sign !== 't') return reject();
    if (alert.mag === 0) throw new Error('zero magnitude');
    if (alert.mag > 25) {
      for (const key of Object.keys(state)) delete state[key];
      return reject();
    }
    state.n = (state.n ?? 0) + 1;
    if (alert.mag > 24) state.pad = 'x'.repeat(40);
    return state.n === params.accept_at
      ? accept({ score: state.n, tags: ['third'], notes: { prv: alert.jds?.length ?? 'none', bands: String(alert.bands) } })
      : reject();
  },
});

const plain = defineFilter({
  name: 'plain',
  version: '0.1.0',
  survey: 'any',
  description: 'No state.',
  fields: { mag: 'candidate.magpsf' },
  evaluate: (alert) => (alert.mag < 19 ? accept() : reject()),
});

describe('load', () => {
  it('runs an object\'s alerts in turn, carrying its state as the host does', () => {
    const f = load(counter);
    assert.deepEqual(f.manifest.state, { format: 'counter/1', maxBytes: 32 });
    const star = f.object();
    const detection = { mag: 18, sign: 't', jds: [1.5, 2.5], bands: [1, 2] };
    assert.deepEqual(star.evaluate(detection), { verdict: 'reject', change: 'set', state: { n: 1 }, bytes: new TextEncoder().encode('{"n":1}') });
    assert.equal(star.evaluate({ ...detection, sign: 'f' }).change, 'keep');
    star.evaluate(detection);
    assert.deepEqual(star.evaluate(detection).verdict, { score: 3, tags: ['third'], notes: { prv: '2', bands: '1,2' } });
    assert.deepEqual(star.state, { n: 3 });
    // An alert that fails leaves the state as it was.
    assert.throws(() => star.evaluate({ ...detection, mag: 0 }), (e) => e instanceof FilterError && /^Error: zero magnitude \(at testing\.test\.js:\d+\)$/.test(e.message));
    assert.throws(() => star.evaluate({ ...detection, mag: 24.5 }), (e) => e instanceof FilterError && e.message.startsWith('state of 56 bytes exceeds maxBytes=32 declared in the filter'));
    assert.deepEqual(star.state, { n: 3 });
    assert.deepEqual(star.evaluate({ ...detection, mag: 26 }), { verdict: 'reject', change: 'forget', state: null, bytes: null });
    assert.equal(star.state, null);
  });

  it('takes a state as an object, its bytes or its JSON text, and the parameters by name', () => {
    const f = load(counter, { accept_at: 5 });
    const alert = { mag: 18, sign: 't' };
    assert.equal(f.evaluate(alert, { n: 4 }).verdict.score, 5);
    assert.equal(f.evaluate(alert, new TextEncoder().encode('{"n":4}')).verdict.score, 5);
    assert.equal(f.evaluate(alert, '{"n": 4}').verdict.score, 5);
    assert.equal(f.object({ n: 4 }).evaluate(alert).verdict.score, 5);
    assert.throws(() => f.evaluate(alert, '[4]'), (e) => e instanceof FilterError && /not a JSON object as format 'counter\/1'/.test(e.message));
    assert.throws(() => f.evaluate(alert, { n: NaN }), /the state given: state\.n is NaN/);
    assert.throws(() => load(counter, { accept_at: 2.5 }), (e) => e instanceof FilterError && e.message === 'parameter accept_at: expected an integer, got "2.5"');
    assert.equal(load(counter, [['accept_at', '1']]).evaluate(alert).verdict.score, 1);
  });

  it('runs a filter without state as before: nothing kept', () => {
    const f = load(plain);
    assert.equal('state' in f.manifest, false);
    assert.deepEqual(f.evaluate({ mag: 18 }), { verdict: { score: undefined, tags: [], notes: {} }, change: 'keep', state: null, bytes: null });
    assert.equal(f.evaluate({ mag: 20 }).verdict, 'reject');
  });

  it('makes field values of every kind from plain values, and refuses a field the filter lacks', () => {
    const seen = [];
    const f = load(
      defineFilter({
        name: 'kinds',
        version: '1',
        survey: 'any',
        description: 'd',
        fields: { a: 'a', b: 'b', c: 'c', d: 'd', e: 'e', f: 'f', g: 'g', h: 'h', i: 'i', j: 'j', k: 'k' },
        evaluate(alert) {
          seen.push({ ...alert });
          return reject();
        },
      }),
    );
    f.evaluate({ a: 1.5, b: 2695378462115010012n, c: true, d: 'Müller ✓', e: Uint8Array.of(1), f: [1.5, null], g: [1, 2n, null], h: ['x', null], i: [true, null], j: [], k: 't' });
    assert.deepEqual(seen[0], { a: 1.5, b: 2695378462115010012n, c: true, d: 'Müller ✓', e: Uint8Array.of(1), f: [1.5, null], g: [1, 2, null], h: ['x', null], i: [true, null], j: [], k: 't' });
    assert.throws(() => f.evaluate({ magpfs: 1 }), /the alert has "magpfs", which is none of the filter's fields: a, b, c/);
    assert.throws(() => f.evaluate({ a: {} }), /field a: give a number, BigInt, boolean, string, Uint8Array, array or null/);
    assert.throws(() => f.evaluate({ f: [1, 'x'] }), /field f: a column holds numbers, strings or booleans/);
    assert.throws(() => load({ evaluate() {} }), /load takes a filter made by defineFilter/);
  });

  it('keeps what the filter logged', () => {
    const f = load(
      defineFilter({ name: 'l', version: '1', survey: 'any', description: 'd', fields: {}, evaluate: () => { throw new TypeError('boom'); } }),
    );
    assert.throws(() => f.evaluate({}), FilterError);
    assert.equal(f.log[0][0], 'error');
    assert.match(f.log[0][1], /^TypeError: boom/);
  });
});
