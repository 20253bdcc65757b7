// Unit tests of the SDK's guest side, in plain Node: `node --test test/`.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { inspect } from 'node:util';

import { accept, defineFilter, reject } from '../src/index.js';
import { compileDecoder, integerFromHalves, textAt, textColumn, utf8ToUtf16Offsets } from '../src/fields.js';
import { compileParams, parseParams } from '../src/params.js';
import { exportFilter, failure } from '../src/runtime.js';
import { call, random, randomUUID, randomValues } from '../src/random.js';
import { compileState, nextFormat, utf8Decode, utf8Encode } from '../src/state.js';
import { decodeMappings, lineTable } from '../build/sourcemap.js';
import { CONTRACT } from '../build/build.js';
import { fieldValues, integers, reals, recordingLog, texts } from '../testing/field-values.js';

const CANDID = 2695378462115010012n;

/** The decision in an answer of `evaluate`, `{ tag: 'decided', val }`; any other answer fails the test. */
function decided(answer) {
  assert.equal(answer?.tag, 'decided', `the answer is ${inspect(answer)}`);
  return answer.val;
}

/**
 * Checks that an answer of `evaluate` is the filter's error, `{ tag:
 * 'failed', val: message }` (returned, not thrown), its message matching
 * `expected`, a RegExp or a predicate.
 */
function assertFailed(answer, expected, message) {
  assert.equal(answer?.tag, 'failed', `the answer is ${inspect(answer)}`);
  assert.deepEqual(Object.keys(answer), ['tag', 'val']);
  assert.equal(typeof answer.val, 'string');
  if (expected instanceof RegExp) assert.match(answer.val, expected, message);
  else assert.ok(expected(answer.val), message ?? `the message is ${JSON.stringify(answer.val)}`);
}

describe('fields', () => {
  const decode = compileDecoder(['mag', 'candid', 'fid', 'flag', 'sign', 'jds', 'fids', 'signs', 'drb', 'later']);

  it('decodes every kind into plain values by position', () => {
    const alert = decode(
      ...fieldValues([
        ['real', 18.25],
        ['integer', CANDID],
        ['integer', 2],
        ['boolean', true],
        ['text', 't'],
        ['other', reals([2458000.5, null, 2458001])],
        ['other', integers([1, null, -3])],
        ['other', texts(['t', null, '1'])],
        ['absent'],
        [9],
      ]),
    );
    assert.deepEqual({ ...alert }, {
      mag: 18.25,
      candid: CANDID,
      fid: 2,
      flag: true,
      sign: 't',
      jds: [2458000.5, null, 2458001],
      fids: [1, null, -3],
      signs: ['t', null, '1'],
      drb: null,
      later: null,
    });
  });

  it('gives integers as Numbers up to 2^53 and as BigInts beyond', () => {
    const d = compileDecoder(['a', 'b', 'c', 'd', 'e']);
    const max = 2n ** 53n - 1n;
    const alert = d(
      ...fieldValues([
        ['integer', max],
        ['integer', -max],
        ['integer', max + 1n],
        ['integer', -(max + 1n)],
        ['integer', -1],
      ]),
    );
    assert.deepEqual({ ...alert }, { a: Number(max), b: -Number(max), c: max + 1n, d: -(max + 1n), e: -1 });
    assert.equal(integerFromHalves(-1, -1), -1);
    assert.equal(integerFromHalves(0, 0x200000), 2n ** 53n);
  });

  it('reads a boolean from its 64-bit integer', () => {
    const d = compileDecoder(['yes', 'no']);
    assert.deepEqual({ ...d(...fieldValues([['boolean', true], ['boolean', false]])) }, { yes: true, no: false });
  });

  it('maps UTF-8 offsets of a text column onto the string', () => {
    assert.deepEqual(textColumn(texts(['é', null, 'a𝄞b', '']).val), ['é', null, 'a𝄞b', '']);
    assert.deepEqual(utf8ToUtf16Offsets('é'), [0, -1, 1]);
    // Offsets past the text or inside a character read as empty.
    assert.deepEqual(textColumn({ text: 'é', ends: [1, 9], present: Uint8Array.of(1, 1) }), ['', '']);
  });

  it('reads single texts (kind 5) by their byte offsets into `fields`, ASCII or not', () => {
    const d = compileDecoder(['sign', 'name', 'mag', 'band', 'empty', 'none']);
    const ascii = fieldValues([['text', 't'], ['text', 'ZTF21abc'], ['real', 18], ['text', 'r'], ['text', ''], ['absent']]);
    const utf8 = (list, from) => new TextDecoder().decode(list.subarray(from));
    assert.equal(utf8(ascii[0], 54), 'tZTF21abcr', 'after the 6 fields\' 9 bytes each, in field order');
    assert.deepEqual({ ...d(...ascii) }, { sign: 't', name: 'ZTF21abc', mag: 18, band: 'r', empty: '', none: null });
    // Past ASCII the offsets count UTF-8 bytes, not UTF-16 units: the texts
    // after a non-ASCII one start later in bytes than in characters.
    const wide = fieldValues([['text', 't'], ['text', 'Müller ✓'], ['real', 19], ['text', 'g𝄞'], ['text', ''], ['text', 'ok']]);
    assert.equal(utf8(wide[0], 54), 'tMüller ✓g𝄞ok');
    assert.deepEqual([...new Uint32Array(wide[0].buffer.slice(8, 16))], [55, 66], 'Müller ✓: 11 bytes, 8 characters');
    assert.deepEqual({ ...d(...wide) }, { sign: 't', name: 'Müller ✓', mag: 19, band: 'g𝄞', empty: '', none: 'ok' });
    // And back to ASCII on the next alert.
    assert.deepEqual({ ...d(...ascii) }, { sign: 't', name: 'ZTF21abc', mag: 18, band: 'r', empty: '', none: null });
  });

  it('reads offsets out of order, past the end or inside a character as an empty text, never throwing', () => {
    const d = compileDecoder(['a', 'b', 'c', 'd']);
    // 4 fields of kind 5, their texts from byte 36.
    const list = (text) => {
      const bytes = new TextEncoder().encode(text);
      const out = new Uint8Array(36 + bytes.length);
      out.set([5, 5, 5, 5], 32);
      out.set(bytes, 36);
      const view = new DataView(out.buffer);
      for (const [i, start, end] of [
        [0, 36, 37], // 'é' is bytes 36 to 38
        [1, 36, 38],
        [2, 38, 36],
        [3, 38, 99],
      ]) {
        view.setUint32(8 * i, start, true);
        view.setUint32(8 * i + 4, end, true);
      }
      return out;
    };
    assert.deepEqual({ ...d(list('éa'), []) }, { a: '', b: 'é', c: '', d: '' });
    // ASCII too: past the end reads empty, as any bad span.
    assert.deepEqual({ ...d(list('xya'), []) }, { a: 'x', b: 'xy', c: '', d: '' });
    assert.equal(textAt(new TextEncoder().encode('a✓'), 1, 4), '✓');
    assert.equal(textAt(new TextEncoder().encode('a✓'), 1, 3), '', 'inside a character');
    // A text longer than one String.fromCharCode call takes.
    const long = 'é'.repeat(10000) + 'x';
    assert.equal(textAt(new TextEncoder().encode(long), 0, 20001), long);
  });

  it('treats a kind above 5 as absent, as the contract reserves them', () => {
    const d = compileDecoder(['x', 'y']);
    assert.deepEqual({ ...d(...fieldValues([[6], [255]])) }, { x: null, y: null });
  });

  it('reads the other value cases', () => {
    // (0.5.0's host sends single values packed in `fields`; one in
    // `others` still reads.)
    const d = compileDecoder(['bytes', 'bools', 'real', 'int', 'none', 'text']);
    const alert = d(
      ...fieldValues([
        ['other', { tag: 'bytes', val: Uint8Array.of(1, 2) }],
        ['other', { tag: 'booleans', val: [true, undefined, false] }],
        ['other', { tag: 'real', val: 1.5 }],
        ['other', { tag: 'integer', val: 7n }],
        ['other', { tag: 'absent' }],
        ['other', { tag: 'text', val: 'é' }],
      ]),
    );
    assert.deepEqual({ ...alert }, { bytes: Uint8Array.of(1, 2), bools: [true, null, false], real: 1.5, int: 7, none: null, text: 'é' });
  });

  it('reads a column whose bytes are not 8-aligned', () => {
    const buffer = new Uint8Array(17);
    new DataView(buffer.buffer).setFloat64(1, 3.25, true);
    const column = { values: buffer.subarray(1), present: Uint8Array.of(1, 1) };
    const d = compileDecoder(['x']);
    assert.deepEqual(d(...fieldValues([['other', { tag: 'reals', val: column }]])).x, [3.25, 0]);
  });

  it('makes a column array only when its property is read, once per alert', () => {
    const d = compileDecoder(['mag', 'jds']);
    const first = d(...fieldValues([['real', 18], ['other', reals([1, null])]]));
    assert.equal(typeof Object.getOwnPropertyDescriptor(first, 'jds').get, 'function');
    const jds = first.jds;
    assert.deepEqual(jds, [1, null]);
    assert.equal(first.jds, jds, 'the same array on a second read');
    // The object is refilled for the next alert; an array already read stays as it was.
    const second = d(...fieldValues([['real', 19], ['absent']]));
    assert.equal(second, first);
    assert.equal(second.jds, null);
    assert.deepEqual(jds, [1, null]);
    const third = d(...fieldValues([['real', 20], ['other', reals([3])]]));
    assert.deepEqual(third.jds, [3]);
    assert.deepEqual(JSON.parse(JSON.stringify(third)), { mag: 20, jds: [3] });
  });

  it('throws on a property the filter did not declare, naming it, the nearest and the declared ones', () => {
    const d = compileDecoder(['magpsf', 'rb', 'jds']);
    const alert = d(...fieldValues([['real', 18.5], ['absent'], ['other', reals([1])]]));
    assert.throws(() => alert.magpfs, {
      name: 'ReferenceError',
      message:
        "alert.magpfs: the filter declared no field 'magpfs' (did you mean 'magpsf'?); its fields are magpsf, rb, jds. " +
        'Add it to `fields` to read it',
    });
    assert.throws(() => alert.drb ?? alert.rb, /alert\.drb: the filter declared no field 'drb' \(did you mean 'rb'\?\); its fields are magpsf, rb, jds/);
    assert.throws(() => alert.candid, /^ReferenceError: alert\.candid: the filter declared no field 'candid'; its fields/);
    // `in`, and writing a property of one's own, still work as on a plain object.
    assert.equal('magpfs' in alert, false);
    alert.note = 'kept';
    assert.equal(alert.note, 'kept');
  });

  it('leaves the alert object usable as a plain one: JSON, strings, symbols, Object.prototype', () => {
    const d = compileDecoder(['magpsf', 'sign']);
    const alert = d(...fieldValues([['real', 18.5], ['text', 't']]));
    assert.equal(JSON.stringify(alert), '{"magpsf":18.5,"sign":"t"}');
    assert.equal(`${alert}`, '[object Object]');
    assert.equal(String(alert), '[object Object]');
    assert.equal(alert + '', '[object Object]');
    assert.equal(alert.hasOwnProperty('magpsf'), true);
    assert.equal(Object.prototype.hasOwnProperty.call(alert, 'x'), false);
    assert.equal(alert.constructor, Object);
    assert.equal(alert instanceof Object, true);
    assert.equal(alert.valueOf(), alert);
    assert.equal(alert.toJSON, undefined);
    assert.equal(alert.then, undefined);
    assert.equal(alert[Symbol.iterator], undefined);
    assert.equal(alert[Symbol.toPrimitive], undefined);
    assert.deepEqual(Object.keys(alert), ['magpsf', 'sign']);
    assert.deepEqual({ ...alert }, { magpsf: 18.5, sign: 't' });
    const { magpsf, sign } = alert;
    assert.deepEqual([magpsf, sign], [18.5, 't']);
  });

  it('refuses lists whose lengths disagree with the declared fields', () => {
    assert.throws(() => decode(...fieldValues([['real', 1]])), /9 bytes of fields for 10 declared fields/);
    const d = compileDecoder(['a']);
    assert.throws(() => d(Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 0, 4), []), /fewer than the 1 fields of kind 4 so far/);
  });
});

describe('params', () => {
  const specs = compileParams({
    max_mag: 18.5,
    min_ndethist: { type: 'integer', default: 2 },
    max_age_days: { type: 'number', default: null },
    strict: false,
    band: 'r',
  });

  it('takes its types from the defaults and parses the given values', () => {
    assert.deepEqual(parseParams(specs, []), { max_mag: 18.5, min_ndethist: 2, max_age_days: null, strict: false, band: 'r' });
    assert.deepEqual(
      parseParams(specs, [
        ['max_mag', ' 17 '],
        ['min_ndethist', '3'],
        ['max_age_days', '1e1'],
        ['strict', 'Yes'],
        ['band', 'g'],
        ['max_mag', '16.5'],
      ]),
      { max_mag: 16.5, min_ndethist: 3, max_age_days: 10, strict: true, band: 'g' },
    );
  });

  it('refuses a value that does not parse, naming the key as the Rust SDK does', () => {
    assert.throws(() => parseParams(specs, [['max_mag', 'high']]), (e) => e === 'parameter max_mag: expected a finite number, got "high"');
    assert.throws(() => parseParams(specs, [['max_mag', '0x10']]), /expected a finite number/);
    assert.throws(() => parseParams(specs, [['max_mag', 'inf']]), /expected a finite number/);
    assert.throws(() => parseParams(specs, [['min_ndethist', '2.5']]), (e) => e === 'parameter min_ndethist: expected an integer, got "2.5"');
    assert.throws(() => parseParams(specs, [['strict', 'maybe']]), /expected true or false/);
  });

  it('refuses unknown keys by name', () => {
    assert.throws(
      () => parseParams(specs, [['max_mgg', '1']]),
      (e) => e === 'unknown parameter "max_mgg"; this filter knows: max_mag, min_ndethist, max_age_days, strict, band',
    );
    assert.throws(() => parseParams([], [['x', '1']]), (e) => e === 'unknown parameter "x"; this filter takes none');
  });

  it('refuses a declaration it cannot type', () => {
    assert.throws(() => compileParams({ a: null }), /parameter a: give a default/);
    assert.throws(() => compileParams({ a: { type: 'float', default: 1 } }), /`type` must be one of/);
    assert.throws(() => compileParams({ a: { type: 'integer', default: 1.5 } }), /not an integer/);
  });
});

describe('verdicts', () => {
  it('builds an accept in the shape the WIT binding takes', () => {
    const v = accept({ score: 0.9, tags: ['bright', 'ztf-r'], notes: { magpsf: '18.37', n: 3, skipped: null } });
    assert.deepEqual({ ...v }, {
      tag: 'accept',
      val: { score: 0.9, tags: ['bright', 'ztf-r'], annotations: [['magpsf', '18.37'], ['n', '3']] },
    });
    assert.deepEqual({ ...accept() }, { tag: 'accept', val: { score: undefined, tags: [], annotations: [] } });
    assert.equal(reject().tag, 'reject');
  });

  it('refuses options of the wrong type', () => {
    assert.throws(() => accept({ score: '1' }), /score must be a number; got the string "1"/);
    assert.throws(() => accept({ tags: 'bright' }), /tags must be an array of strings/);
    assert.throws(() => accept({ tags: [1] }), /tags\[0\] must be a string/);
    assert.throws(() => accept({ notes: [['k', 'v']] }), /notes must be an object/);
  });
});

describe('defineFilter', () => {
  const base = {
    name: 'demo',
    version: '0.1.0',
    survey: 'ztf',
    description: 'A demo.',
    fields: { mag: 'candidate.magpsf' },
    evaluate: () => reject(),
  };

  it('refuses a definition with a mistake, naming the option', () => {
    assert.throws(() => defineFilter({ ...base, feilds: {} }), /unknown option "feilds"/);
    assert.throws(() => defineFilter({ ...base, name: 'Demo Filter' }), /`name` must be a short name/);
    assert.throws(() => defineFilter({ ...base, survey: 'ZTF' }), /`survey` must be one of 'ztf', 'rubin', 'any'/);
    assert.throws(() => defineFilter({ ...base, fields: { mag: 3 } }), /field mag: the path must be a dotted path/);
    assert.throws(() => defineFilter({ ...base, evaluate: undefined }), /`evaluate\(alert, params\)` is missing/);
  });
});

describe('runtime', () => {
  function build(definition, log = recordingLog()) {
    return exportFilter(
      defineFilter({ name: 'demo', version: '0.1.0', survey: 'ztf', description: 'A demo.', ...definition }),
      log,
      'demo.js',
    );
  }

  it('describes the filter with its paths in declaration order', () => {
    const f = build({ fields: { a: 'candidate.magpsf', b: 'candidate.drb?' }, evaluate: () => reject() });
    assert.deepEqual(f.describe(), {
      name: 'demo',
      version: '0.1.0',
      survey: 'ztf',
      fields: ['candidate.magpsf', 'candidate.drb?'],
      description: 'A demo.',
      crossmatches: [],
    });
  });

  it('passes the parameters, or what init makes of them, to evaluate', () => {
    const f = build({
      fields: { mag: 'candidate.magpsf' },
      params: { max_mag: 18.5 },
      init: (p) => ({ limit: p.max_mag - 1 }),
      evaluate: (alert, config) => (alert.mag < config.limit ? accept({ score: config.limit }) : reject()),
    });
    f.init([['max_mag', '20']]);
    assert.equal(decided(f.evaluate(...fieldValues([['real', 18]]))).verdict.val.score, 19);
    assert.throws(() => f.init([['max_mgg', '20']]), (e) => e === 'unknown parameter "max_mgg"; this filter knows: max_mag');
  });

  it('runs with the defaults when the host skipped init', () => {
    const f = build({ fields: {}, params: { n: 2 }, evaluate: (_, p) => accept({ score: p.n }) });
    assert.equal(decided(f.evaluate(...fieldValues([]))).verdict.val.score, 2);
  });

  it('turns a thrown TypeError into a string naming it and its line, and logs the stack', () => {
    const log = recordingLog();
    const f = build(
      {
        fields: { mag: 'candidate.magpsf' },
        evaluate(alert) {
          return alert.mag.toFixed(1); // mag is null: TypeError
        },
      },
      log,
    );
    f.init([]);
    assertFailed(f.evaluate(...fieldValues([['absent']])), /^TypeError: Cannot read properties of null \(reading 'toFixed'\) \(at sdk\.test\.js:\d+\)$/);
    assert.equal(log.lines.length, 1);
    assert.equal(log.lines[0][0], 'error');
    assert.match(log.lines[0][1], /^TypeError: .*\n {4}at evaluate \(sdk\.test\.js:\d+:\d+\)/);
    // The next alert works.
    assertFailed(f.evaluate(...fieldValues([['real', 1]])), /evaluate returned the string "1.0"; return accept\(...\) or reject\(\)/);
  });

  it('refuses a Promise, as from an async evaluate', () => {
    const f = build({ fields: {}, evaluate: async () => reject() });
    assertFailed(f.evaluate(...fieldValues([])), /evaluate returned a Promise: a filter decides synchronously/);
  });

  it('passes a thrown string on as it is', () => {
    const f = build({ fields: {}, evaluate: () => { throw 'no light curve'; } });
    assert.deepEqual(f.evaluate(...fieldValues([])), { tag: 'failed', val: 'no light curve' });
    assert.equal(failure(42, () => {}), "the filter threw the number 42, not an Error; throw new Error('...') or a string");
  });

  it('answers a reject that keeps the state with none (undefined), and an accept or a state change with a decision', () => {
    const f = build({
      fields: { sign: 'candidate.isdiffpos' },
      evaluate: (alert) => (alert.sign === 't' ? accept({ tags: ['pos'] }) : reject()),
    });
    f.init([]);
    assert.equal(f.evaluate(...fieldValues([['text', 'f']]), undefined), undefined);
    assert.equal(f.evaluate(...fieldValues([['absent']]), null), undefined);
    assert.deepEqual(f.evaluate(...fieldValues([['text', 't']]), undefined), { tag: 'decided', val: { verdict: accept({ tags: ['pos'] }), state: { tag: 'keep' } } });
    // With state: a reject that sets or forgets says so in a decision.
    const counting = build({
      fields: { sign: 'candidate.isdiffpos' },
      state: { format: 'n/1', maxBytes: 16 },
      evaluate(alert, params, state) {
        if (alert.sign === 'reset') for (const key of Object.keys(state)) delete state[key];
        else if (alert.sign === 't') state.n = (state.n ?? 0) + 1;
        return reject();
      },
    });
    counting.init([]);
    const utf8 = (text) => new TextEncoder().encode(text);
    assert.equal(counting.evaluate(...fieldValues([['text', 'f']]), utf8('{"n":1}')), undefined);
    assert.deepEqual(counting.evaluate(...fieldValues([['text', 't']]), utf8('{"n":1}')), { tag: 'decided', val: { verdict: reject(), state: { tag: 'set', val: utf8('{"n":2}') } } });
    assert.deepEqual(counting.evaluate(...fieldValues([['text', 'reset']]), utf8('{"n":1}')), { tag: 'decided', val: { verdict: reject(), state: { tag: 'forget' } } });
  });

  it('refuses a default export that is not a filter', () => {
    assert.throws(() => exportFilter({ evaluate() {} }, () => {}, 'mine.js'), /mine\.js: the default export is an object \(evaluate\), not a filter/);
  });
});

describe('Math.random', () => {
  /** A filter whose verdict is three draws, run with the SDK's Math.random. */
  function dice(name) {
    return exportFilter(
      defineFilter({
        name,
        version: '1',
        survey: 'ztf',
        description: 'd',
        fields: { mag: 'candidate.magpsf', jds: 'prv_candidates.jd' },
        evaluate: () => accept({ score: Math.random(), notes: { more: `${Math.random()} ${Math.random()}` } }),
      }),
      () => {},
      'dice.js',
    );
  }
  const alert = (mag, jds) => fieldValues([['real', mag], ['other', reals(jds)]]);
  const A = () => alert(18.25, [1.5, null]);
  const B = () => alert(18.25, [1.5, 2]);

  function withSdkRandom(run) {
    const engine = Math.random;
    Math.random = random;
    try {
      return run();
    } finally {
      Math.random = engine;
    }
  }

  it('draws the same numbers for the same alert whatever came before, and others for another alert', () => {
    withSdkRandom(() => {
      const one = dice('dice');
      const first = decided(one.evaluate(...A())).verdict;
      assert.notEqual(first.val.score, Number(first.val.annotations[0][1].split(' ')[0]), 'draws differ within an alert');
      const b = decided(one.evaluate(...B())).verdict;
      assert.deepEqual(decided(one.evaluate(...A())).verdict, first, 'A again, after B');
      assert.notDeepEqual(b, first, 'B differs from A in a column value only');
      // Another instance, another order.
      const two = dice('dice');
      assert.deepEqual(decided(two.evaluate(...B())).verdict, b);
      assert.deepEqual(decided(two.evaluate(...A())).verdict, first);
      // Another filter draws other numbers on the same alert.
      assert.notDeepEqual(decided(dice('other-dice').evaluate(...A())).verdict, first);
      // The packed list is part of the alert: one bit of the magnitude
      // changed, other numbers.
      const [fields, others] = A();
      const other = fields.slice();
      other[0] ^= 1;
      assert.notDeepEqual(decided(one.evaluate(other, others)).verdict, first);
    });
  });

  it('gives crypto.getRandomValues and randomUUID from the same per-alert stream', () => {
    // What the runtime stores at the start of each evaluate.
    const at = ([fields, others]) => Object.assign(call, { fields, others });
    at(A());
    const words = randomValues(new Uint32Array(3));
    const uuid = randomUUID();
    assert.match(uuid, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    at(B());
    randomValues(new Uint8Array(5));
    at(A());
    assert.deepEqual(randomValues(new Uint32Array(3)), words);
    assert.equal(randomUUID(), uuid);
    assert.throws(() => randomValues(new Float64Array(1)), /integer typed array/);
  });

  it('gives numbers in [0, 1) spread over the interval', () => {
    withSdkRandom(() => {
      let sum = 0;
      let low = 1;
      let high = 0;
      for (let i = 0; i < 1000; i++) {
        const x = Math.random();
        assert.ok(x >= 0 && x < 1, String(x));
        sum += x;
        low = Math.min(low, x);
        high = Math.max(high, x);
      }
      assert.ok(sum > 450 && sum < 550 && low < 0.01 && high > 0.99, `${sum} ${low} ${high}`);
    });
  });
});

describe('source map', () => {
  it('decodes VLQ mappings and keeps a segment where the original line changes', () => {
    // Line 1: column 0 -> source 0 line 0; column 4 -> line 0 again.
    // Line 2: column 2 -> source 1 line 3 column 1; column 10 -> line 2 (a negative step).
    const lines = decodeMappings('AAAA,IAAA;ECGC,QADA');
    assert.deepEqual(lines, [
      [
        [0, 0, 0, 0],
        [4, 0, 0, 0],
      ],
      [
        [2, 1, 3, 1],
        [10, 1, 2, 1],
      ],
    ]);
    const table = lineTable(lines, [{ name: 'a.js', internal: false }, { name: 'b.js', internal: false }], 'x.js');
    assert.deepEqual(table.lines, [[0, 0, 0, 0], [2, 1, 3, 1, 10, 1, 2, 1]]);
  });
});

describe('state', () => {
  const utf8 = (text) => new TextEncoder().encode(text);
  const text = (bytes) => new TextDecoder().decode(bytes);

  /** A filter with state whose evaluate is `change(state, alert)`; it rejects. */
  function stateful(change, state = { format: 'demo/1', maxBytes: 64 }, log = recordingLog()) {
    const f = exportFilter(
      defineFilter({
        name: 'demo',
        version: '0.1.0',
        survey: 'ztf',
        description: 'A demo.',
        fields: { mag: 'candidate.magpsf' },
        state,
        evaluate(alert, params, s) {
          change(s, alert, params);
          return reject();
        },
      }),
      log,
      'demo.js',
    );
    f.init([]);
    return f;
  }
  const alert = (mag = 18) => fieldValues([['real', mag]]);

  it('checks the declaration: format printable ASCII without spaces, 1 to 64 bytes; maxBytes an integer 1 to 65536', () => {
    assert.deepEqual(compileState({ format: 'rise-once/1', maxBytes: 512 }), { format: 'rise-once/1', maxBytes: 512 });
    assert.equal(compileState(undefined), undefined);
    assert.deepEqual(compileState({ format: 'x'.repeat(64), maxBytes: 65536 }).maxBytes, 65536);
    assert.deepEqual(compileState({ format: '~!', maxBytes: 1 }).format, '~!');
    for (const format of ['', 'rise once', 'x'.repeat(65), 'é/1', 'tab\t', 'nl\n', 3, undefined]) {
      assert.throws(() => compileState({ format, maxBytes: 512 }), /state\.format must be 1 to 64 printable ASCII characters without spaces/, String(format));
    }
    for (const maxBytes of [0, -1, 1.5, 65537, '512', NaN, undefined, 512n]) {
      assert.throws(() => compileState({ format: 'f/1', maxBytes }), /state\.maxBytes must be an integer from 1 to 65536/, String(maxBytes));
    }
    assert.throws(() => compileState({ format: 'f/1', maxBytes: 8, max_bytes: 8 }), /state: unknown option "max_bytes"; the options are format, maxBytes/);
    assert.throws(() => compileState('f/1'), /`state` must be an object like \{ format: 'rise-once\/1', maxBytes: 512 \}/);
    assert.throws(
      () => defineFilter({ name: 'd', version: '1', survey: 'ztf', description: 'd', fields: {}, state: { format: 'a b', maxBytes: 8 }, evaluate: () => reject() }),
      /defineFilter: state\.format/,
    );
  });

  it('puts the declaration in the manifest, and nothing for a filter without state', () => {
    assert.deepEqual(stateful(() => {}).describe().state, { format: 'demo/1', maxBytes: 64 });
    const plain = exportFilter(
      defineFilter({ name: 'd', version: '1', survey: 'ztf', description: 'd', fields: {}, evaluate: () => reject() }),
      () => {},
      'd.js',
    );
    assert.equal('state' in plain.describe(), false);
  });

  it('hands the filter {} the first time and keeps nothing when it stays empty', () => {
    const seen = [];
    const f = stateful((s) => seen.push({ ...s, proto: Object.getPrototypeOf(s) === Object.prototype }));
    // A reject that keeps the state is the answer none (undefined).
    for (const none of [null, undefined]) {
      assert.equal(f.evaluate(...alert(), none), undefined);
    }
    assert.deepEqual(seen, [{ proto: true }, { proto: true }]);
  });

  it('sets canonical JSON (keys sorted at every level), gives it back as an object, keeps it when unchanged, forgets it when emptied', () => {
    const received = [];
    let step;
    const f = stateful((s) => {
      received.push(JSON.parse(JSON.stringify(s)));
      step(s);
    }, { format: 'demo/1', maxBytes: 512 });

    step = (s) => {
      s.zeta = 1;
      s.alpha = { b: [1, { y: true, x: null }], a: 'é' };
      s[10] = 'ten';
      s[2] = 'two';
    };
    const first = decided(f.evaluate(...alert(), null));
    assert.equal(first.state.tag, 'set');
    assert.ok(first.state.val instanceof Uint8Array);
    const json = '{"10":"ten","2":"two","alpha":{"a":"é","b":[1,{"x":null,"y":true}]},"zeta":1}';
    assert.equal(text(first.state.val), json);
    assert.deepEqual(first.state.val, utf8(json), 'UTF-8');

    step = () => {};
    assert.equal(f.evaluate(...alert(), first.state.val), undefined, 'kept');
    assert.deepEqual(received[1], JSON.parse(json));

    // The same content written another way (spaces, key order): nothing to store.
    assert.equal(f.evaluate(...alert(), utf8('{ "zeta": 1, "alpha": {"b": [1, {"y": true, "x": null}], "a": "\\u00e9"}, "2": "two", "10": "ten" }')), undefined);
    // Deleting and adding back the same key, in another order: the same bytes.
    step = (s) => {
      delete s.zeta;
      s.zeta = 1;
    };
    assert.equal(f.evaluate(...alert(), first.state.val), undefined);

    step = (s) => {
      s.alpha.b.push(2.5);
    };
    assert.equal(text(decided(f.evaluate(...alert(), first.state.val)).state.val), json.replace('"y":true}]', '"y":true},2.5]'));

    step = (s) => {
      for (const key of Object.keys(s)) delete s[key];
    };
    assert.deepEqual(decided(f.evaluate(...alert(), first.state.val)).state, { tag: 'forget' });
  });

  it('refuses incoming bytes that are not a JSON object, naming the format, and the next alert runs', () => {
    const f = stateful((s) => {
      s.n = (s.n ?? 0) + 1;
    });
    const refused = (bytes, why) =>
      assertFailed(
        f.evaluate(...alert(), bytes),
        (e) =>
          e.startsWith(`state: the ${bytes.length} bytes stored for this object are not a JSON object as format 'demo/1' keeps it: ${why}`) &&
          e.includes('give the new layout a format of its own'),
        why,
      );
    refused(Uint8Array.of(0x7b, 0xff, 0x7d), 'its bytes are not UTF-8');
    refused(Uint8Array.of(0xed, 0xa0, 0x80), 'its bytes are not UTF-8'); // an encoded surrogate
    refused(utf8('{"n": 1'), 'it is not JSON (');
    refused(new Uint8Array(0), 'it is not JSON (');
    refused(utf8('[1, 2]'), 'it is JSON of an array');
    refused(utf8('null'), 'it is JSON of null');
    refused(utf8('"x"'), 'it is JSON of a string');
    refused(utf8('5'), 'it is JSON of a number');
    assertFailed(f.evaluate(...alert(), utf8('[]')), /give the new layout a format of its own \('demo\/2'\) so that every object starts from none$/);
    assert.deepEqual(['rise-once/1', 'x', 'v9', 'a/b/10', 'y'.repeat(64)].map(nextFormat), ['rise-once/2', 'x/2', 'v10', 'a/b/11', 'y'.repeat(64)]);
    assert.equal(text(decided(f.evaluate(...alert(), utf8('{"n":1}'))).state.val), '{"n":2}');
    // A number JSON.parse cannot hold came in, and the filter replaced it: written.
    const replacing = stateful((s) => {
      s.n = 1;
    });
    assert.equal(text(decided(replacing.evaluate(...alert(), utf8('{"n":1e999}'))).state.val), '{"n":1}');
    assertFailed(f.evaluate(...alert(), utf8('{"n":1e999}')), (e) => e.startsWith('state.n is Infinity'));
  });

  it('reads bytes given as an array, and state longer than one chunk of the decoder', () => {
    assert.equal(utf8Decode([0x7b, 0x7d]), '{}');
    const long = `{"s":"${'é'.repeat(6000)}x"}`;
    assert.equal(utf8Decode(utf8(long)), long);
    assert.deepEqual(utf8Encode(long), utf8(long));
    assert.deepEqual(utf8Encode('a𝄞'), utf8('a𝄞'));
    assert.throws(() => utf8Encode('\ud800'), URIError);
    // The engines' built-in paths (Node 20 has no Uint8Array.fromBase64 or toBase64).
    const had = Object.hasOwn(Uint8Array, 'fromBase64');
    if (!had) {
      Uint8Array.fromBase64 = (b64) => new Uint8Array(Buffer.from(b64, 'base64'));
      Uint8Array.prototype.toBase64 = function toBase64() {
        return Buffer.from(this.buffer, this.byteOffset, this.byteLength).toString('base64');
      };
    }
    try {
      assert.deepEqual(utf8Encode(long), utf8(long));
      assert.deepEqual(utf8Encode('{"a":1}'), utf8('{"a":1}'));
      assert.equal(utf8Decode(utf8(long)), long);
      assert.equal(utf8Decode(utf8(long).subarray(3)), long.slice(3));
      assert.equal(utf8Decode(utf8('{"a":1}')), '{"a":1}');
      assert.equal(utf8Decode(utf8('{"é":"𝄞"}')), '{"é":"𝄞"}');
      assert.equal(utf8Decode(new Uint8Array(0)), '');
      assert.throws(() => utf8Decode(Uint8Array.of(0x7b, 0xc3)), URIError);
    } finally {
      if (!had) {
        delete Uint8Array.fromBase64;
        delete Uint8Array.prototype.toBase64;
      }
    }
  });

  it('writes non-ASCII keys and strings as UTF-8 whatever came before, and ASCII ones from its cache of keys', () => {
    const f = stateful((s, a) => {
      if (a.mag === 1) s['clé'] = 'v';
      if (a.mag === 2) s.k = 'ü';
      if (a.mag === 3) s.k = 'u';
    });
    for (const [mag, json] of [[3, '{"k":"u"}'], [1, '{"clé":"v"}'], [3, '{"k":"u"}'], [2, '{"k":"ü"}'], [1, '{"clé":"v"}']]) {
      assert.deepEqual(decided(f.evaluate(...alert(mag), null)).state.val, utf8(json), json);
    }
    // The old state written another way, then changed: the new text's own bytes.
    assert.deepEqual(decided(f.evaluate(...alert(1), utf8('{ "a": "é" }'))).state.val, utf8('{"a":"é","clé":"v"}'));
    assert.deepEqual(decided(f.evaluate(...alert(2), utf8('{ "a": 1 }'))).state.val, utf8('{"a":1,"k":"ü"}'));
  });

  it('refuses a state over maxBytes with its size, and takes one of exactly maxBytes', () => {
    let value;
    const f = stateful((s) => {
      s.v = value;
    }, { format: 'demo/1', maxBytes: 16 });
    value = 'x'.repeat(8); // {"v":"xxxxxxxx"}: 16 bytes
    assert.equal(decided(f.evaluate(...alert(), null)).state.val.length, 16);
    value = 'é'.repeat(4) + 'x'; // 9 characters, 17 bytes
    assertFailed(
      f.evaluate(...alert(), null),
      (e) => e.startsWith('state of 17 bytes exceeds maxBytes=16 declared in the filter'),
    );
  });

  it('refuses values JSON cannot hold faithfully, naming the key', () => {
    const cases = [
      [(s) => (s.mag = NaN), /^state\.mag is NaN, which the state's JSON cannot hold/],
      [(s) => (s.faintest = { 2: Infinity }), /^state\.faintest\["2"\] is Infinity/],
      [(s) => (s.x = { y: [1, -Infinity] }), /^state\.x\.y\[1\] is -Infinity/],
      [(s) => (s.since = undefined), /^state\.since is undefined, .*delete the key instead/],
      [(s) => (s.list = [1, , 3]), /^state\.list\[1\] is undefined/],
      [(s) => (s.f = () => 1), /^state\.f is a function/],
      [(s) => (s.id = 2695378462115010012n), /^state\.id is the BigInt 2695378462115010012n, .*store String\(id\)/],
      [(s) => (s.seen = new Set([1])), /^state\.seen is a Set/],
      [(s) => (s['first seen'] = new Date(0)), /^state\["first seen"\] is a Date/],
      [(s) => (s.self = s), /^state\.self is the object that holds it \(a cycle\)/],
      [(s) => (s.sym = Symbol('x')), /^state\.sym is a symbol/],
      [(s) => (s.list = [{ ok: 1 }, { bad: [NaN] }]), /^state\.list\[1\]\.bad\[0\] is NaN/],
      [
        (s) => {
          let deep = (s.deep = {});
          for (let i = 0; i < 120; i++) deep = deep.d = {};
        },
        /^state\.deep(\.d){99} is nested 100 levels deep/,
      ],
    ];
    for (const [change, message] of cases) {
      const f = stateful(change);
      assertFailed(f.evaluate(...alert(), null), message, String(message));
    }
    // The same object twice (not a cycle) is fine, as are null and -0.
    const shared = { a: 1 };
    const f = stateful((s) => {
      s.p = shared;
      s.q = shared;
      s.n = null;
      s.z = -0;
    });
    assert.equal(text(decided(f.evaluate(...alert(), null)).state.val), '{"n":null,"p":{"a":1},"q":{"a":1},"z":0}');
  });

  it('answers failed, not a decision, when evaluate throws (the host keeps the old state)', () => {
    const f = stateful((s, a) => {
      s.n = 1;
      if (a.mag > 20) throw 'too faint';
    });
    assert.deepEqual(f.evaluate(...alert(21), utf8('{"n":0}')), { tag: 'failed', val: 'too faint' });
  });

  it('gives a filter without state two arguments and always keeps', () => {
    const args = [];
    const f = exportFilter(
      defineFilter({
        name: 'd',
        version: '1',
        survey: 'ztf',
        description: 'd',
        fields: { mag: 'candidate.magpsf' },
        evaluate(...a) {
          args.push(a.length);
          return a[0].mag < 19 ? accept({ score: 1 }) : reject();
        },
      }),
      () => {},
      'd.js',
    );
    assert.deepEqual(f.evaluate(...alert(18), null), { tag: 'decided', val: { verdict: accept({ score: 1 }), state: { tag: 'keep' } } });
    // A reject is the answer none (undefined): it keeps.
    assert.equal(f.evaluate(...alert(20), undefined), undefined);
    // Bytes a host should not send are ignored, not parsed.
    assert.equal(f.evaluate(...alert(20), utf8('not json')), undefined);
    assert.deepEqual(args, [2, 2, 2]);
  });

  it('ships wit/filter.wit byte for byte, the contract it builds for', async () => {
    const { readFile } = await import('node:fs/promises');
    const shipped = await readFile(new URL('../wit/filter.wit', import.meta.url));
    const repository = await readFile(new URL('../../../wit/filter.wit', import.meta.url));
    assert.ok(shipped.equals(repository), 'copy wit/filter.wit over guest-sdk/js/wit/filter.wit');
    assert.match(shipped.toString(), new RegExp(`^package ${CONTRACT.replace('.', '\\.')};$`, 'm'));
    assert.equal(CONTRACT, 'bandpass:filter@0.5.0');
  });
});
