// The JavaScript sample filters (sample-filters/js) on hand-made alerts,
// the cases of the Rust samples' unit tests, in plain Node. Their parity
// with the Rust components on real alerts is tested in
// tests/all/javascript.rs.

import assert from 'node:assert/strict';
import { register } from 'node:module';
import { describe, it } from 'node:test';

import { exportFilter } from '../src/runtime.js';
import { fieldValues, integers, reals, texts } from '../testing/field-values.js';

register(new URL('../build/resolve-hooks.js', import.meta.url), {
  data: { index: new URL('../src/index.js', import.meta.url).href },
});

const SAMPLES = new URL('../../../sample-filters/js/', import.meta.url);

async function sample(name, params = []) {
  const module = await import(new URL(`${name}.js`, SAMPLES).href);
  const filter = exportFilter(module.default, () => {}, `${name}.js`);
  filter.init(params);
  return filter;
}

/** `evaluate`'s field arguments for the declared fields, from values by field name. */
function alertFor(filter, values) {
  const paths = filter.describe().fields;
  return fieldValues(
    paths.map((path) => {
      const value = values[path];
      if (value === undefined || value === null) return ['absent'];
      if (typeof value === 'number') return ['real', value];
      if (typeof value === 'bigint') return ['integer', value];
      if (typeof value === 'string') return ['text', value];
      return ['other', value];
    }),
  );
}

/** An answer's verdict as 'reject' or the accepted value; a filter without state always keeps none. */
function plain(answer) {
  // A reject comes as none (undefined), never as a decision.
  if (answer === undefined) return 'reject';
  assert.equal(answer.tag, 'decided', `the filter failed: ${answer.val}`);
  const decision = answer.val;
  assert.equal(decision.state.tag, 'keep', 'a filter without state keeps none');
  assert.notEqual(decision.verdict.tag, 'reject', 'a reject that keeps is none');
  const verdict = decision.verdict;
  return verdict.tag === 'reject' ? 'reject' : { ...verdict.val };
}

describe('bright-transients', () => {
  const candidate = {
    'candidate.magpsf': 18.0,
    'candidate.isdiffpos': 't',
    'candidate.rb': 0.8,
    'candidate.ndethist': 3n,
    'candidate.ssdistnr': -999.0,
    'candidate.jd': 2458226.76,
    'candidate.jdstarthist': 2458224.76,
    'candidate.fid': 2n,
    'candidate.sgscore1': 0.1,
    'candidate.distpsnr1': 3.0,
  };

  it('accepts a bright real positive repeated detection', async () => {
    const f = await sample('bright-transients');
    assert.deepEqual(plain(f.evaluate(...alertFor(f, candidate))), {
      score: 0.8,
      tags: ['bright', 'ztf-r', 'new'],
      annotations: [['magpsf', '18.00']],
    });
  });

  it('prefers drb over rb where the schema has it', async () => {
    const f = await sample('bright-transients');
    assert.equal(plain(f.evaluate(...alertFor(f, { ...candidate, 'candidate.drb?': 0.1 }))), 'reject');
  });

  it('rejects negative, faint, single or asteroid detections', async () => {
    const f = await sample('bright-transients');
    for (const change of [
      { 'candidate.isdiffpos': 'f' },
      { 'candidate.magpsf': 19.0 },
      { 'candidate.ndethist': 1n },
      { 'candidate.ssdistnr': 1.0 },
    ]) {
      assert.equal(plain(f.evaluate(...alertFor(f, { ...candidate, ...change }))), 'reject', Object.keys(change)[0]);
    }
  });

  it('takes its parameters and refuses a typo', async () => {
    const f = await sample('bright-transients', [['max_mag', '17.5']]);
    assert.equal(plain(f.evaluate(...alertFor(f, candidate))), 'reject');
    await assert.rejects(sample('bright-transients', [['max_mgg', '17.5']]), /unknown parameter "max_mgg"/);
    await assert.rejects(sample('bright-transients', [['min_ndethist', '2.5']]), /expected an integer/);
  });
});

describe('fast-risers', () => {
  // Now: r = 18.0 at JD 10. Before: an r limit of 20.0 at JD 8 (a rise of
  // at least 1 mag/day), a g detection, and an r detection an hour ago.
  const alert = {
    'candidate.jd': 10.0,
    'candidate.fid': 2n,
    'candidate.magpsf': 18.0,
    'candidate.isdiffpos': 't',
    'candidate.drb?': 0.9,
    'candidate.ndethist': 2n,
    'candidate.ssdistnr': -999.0,
    'prv_candidates.jd': reals([8.0, 9.0, 9.96]),
    'prv_candidates.fid': integers([2, 1, 2]),
    'prv_candidates.magpsf?': reals([null, 25.0, 19.0]),
    'prv_candidates.isdiffpos?': texts([null, 't', 't']),
    'prv_candidates.diffmaglim': reals([20.0, 20.5, 20.5]),
  };

  it('measures the rise in the same band over at least the baseline', async () => {
    const f = await sample('fast-risers');
    assert.deepEqual(plain(f.evaluate(...alertFor(f, alert))), {
      score: 1.0,
      tags: ['fast-riser', 'rise-from-limit', 'ztf-r'],
      annotations: [
        ['rise_mag_per_day', '1.000'],
        ['baseline_days', '2.000'],
      ],
    });
  });

  it('rejects a slow rise', async () => {
    const f = await sample('fast-risers');
    const slow = { ...alert, 'prv_candidates.diffmaglim': reals([18.5, 20.5, 20.5]) };
    assert.equal(plain(f.evaluate(...alertFor(f, slow))), 'reject');
  });

  it('ignores a light curve with a missing column', async () => {
    const f = await sample('fast-risers');
    assert.equal(plain(f.evaluate(...alertFor(f, { ...alert, 'prv_candidates.magpsf?': null }))), 'reject');
  });

  it('prefers a detection rise when faster', async () => {
    const f = await sample('fast-risers');
    const v = plain(
      f.evaluate(
        ...alertFor(f, {
          ...alert,
          'prv_candidates.magpsf?': reals([21.0, 25.0, 19.0]),
          'prv_candidates.isdiffpos?': texts(['1', 't', 't']),
        }),
      ),
    );
    assert.equal(v.score, 1.5);
    assert.equal(v.tags[1], 'rise-from-detection');
  });

  it('refuses a baseline that is not above 0', async () => {
    await assert.rejects(sample('fast-risers', [['min_baseline_days', '0']]), /min_baseline_days: must be above 0/);
  });
});

describe('bench-twenty-fields', () => {
  it('accepts a clean detection with its real-bogus score, halved next to a star', async () => {
    const f = await sample('bench-twenty-fields');
    const clean = {
      'candidate.magpsf': 18.0,
      'candidate.sigmapsf': 0.05,
      'candidate.diffmaglim': 20.0,
      'candidate.rb': 0.9,
      'candidate.isdiffpos': 't',
      'candidate.ssdistnr': -999.0,
      'candidate.ssmagnr': -999.0,
      'candidate.sgscore1': 0.1,
      'candidate.distpsnr1': 5.0,
      'candidate.distnr': 3.0,
      'candidate.magnr': 17.0,
      'candidate.ndethist': 3n,
      'candidate.ncovhist': 10n,
      'candidate.jd': 2458226.76,
      'candidate.jdstarthist': 2458224.76,
      'candidate.fid': 1n,
      'candidate.fwhm': 2.0,
      'candidate.elong': 1.1,
      'candidate.nbad': 0n,
    };
    assert.equal(plain(f.evaluate(...alertFor(f, clean))).score, 0.9);
    assert.equal(plain(f.evaluate(...alertFor(f, { ...clean, 'candidate.sgscore1': 0.9, 'candidate.distpsnr1': 0.5 }))).score, 0.45);
    assert.equal(plain(f.evaluate(...alertFor(f, { ...clean, 'candidate.nbad': 1n }))), 'reject');
  });
});


describe('rise-once (state per object)', async () => {
  const { load } = await import('../testing/index.js');
  const riseOnce = (await import(new URL('rise-once.js', SAMPLES).href)).default;
  /** A positive r-band detection of magnitude `mag` at `jd`. */
  const r = (jd, magpsf, more = {}) => ({ jd, fid: 2, magpsf, isdiffpos: 't', ...more });

  it('declares its state', () => {
    assert.deepEqual(load(riseOnce).manifest.state, { format: 'rise-once/1', maxBytes: 512 });
  });

  it('accepts one object exactly once, on the first alert that shows the rise', () => {
    const star = load(riseOnce).object();
    const night = [
      r(2460000.5, 19.0), // first seen: remembered
      r(2460000.6, 19.6), // fainter: the faintest now
      r(2460000.9, 18.9), // 0.7 brighter, but 0.4 days after the first
      { jd: 2460001.0, fid: 2, magpsf: 17.0, isdiffpos: 'f' }, // a negative difference: ignored
      r(2460001.4, 19.2), // 0.9 days: not yet, nothing new either
      r(2460001.55, 19.0), // 1.05 days, 0.6 brighter than the faintest: accepted
      r(2460002.5, 17.0), // brighter still: already accepted
      r(2460003.5, 16.5),
    ];
    const outcomes = night.map((alert) => star.evaluate(alert));
    assert.deepEqual(
      outcomes.map((o) => [o.verdict === 'reject' ? 'reject' : 'accept', o.change]),
      [
        ['reject', 'set'],
        ['reject', 'set'],
        ['reject', 'keep'],
        ['reject', 'keep'],
        ['reject', 'keep'],
        ['accept', 'set'],
        ['reject', 'keep'],
        ['reject', 'keep'],
      ],
    );
    const accepted = outcomes[5].verdict;
    assert.ok(Math.abs(accepted.score - 0.6) < 1e-9, String(accepted.score));
    assert.deepEqual({ ...accepted, score: 0 }, { score: 0, tags: ['rise-once'], notes: { rise: '0.60', days: '1.05' } });
    assert.deepEqual(star.state, { done: true, faintest: { 2: 19.6 }, since: 2460000.5 });
    assert.equal(new TextDecoder().decode(star.bytes), '{"done":true,"faintest":{"2":19.6},"since":2460000.5}');
  });

  it('measures each band against its own faintest, from the first date in any band', () => {
    const f = load(riseOnce);
    const g = (jd, magpsf) => ({ jd, fid: 1, magpsf, isdiffpos: '1' });
    const one = f.evaluate(r(10, 19.0));
    const two = f.evaluate(g(11, 20.0), one.state);
    assert.deepEqual(two.state, { faintest: { 1: 20.0, 2: 19.0 }, since: 10 });
    // 0.5 brighter in r than r's faintest: accepted, score 0.5, 1.5 days.
    const three = f.evaluate(r(11.5, 18.5), two.state);
    assert.deepEqual(three.verdict, { score: 0.5, tags: ['rise-once'], notes: { rise: '0.50', days: '1.50' } });
    // 0.4 brighter in g than g's faintest (though 1.5 brighter than r's): not yet.
    const four = f.evaluate(g(12, 19.6), two.state);
    assert.equal(four.verdict, 'reject');
    assert.equal(four.change, 'keep');
  });

  it('rejects without touching the state an alert it cannot measure, and a done object', () => {
    const f = load(riseOnce);
    const before = { faintest: { 2: 20 }, since: 1 };
    for (const alert of [
      r(5, 18, { jd: null }),
      r(5, 18, { fid: null }),
      r(5, null),
      r(5, 18, { isdiffpos: 'f' }),
      r(5, 18, { isdiffpos: '0' }),
      r(5, 18, { isdiffpos: null }),
    ]) {
      const { verdict, change, state } = f.evaluate(alert, before);
      assert.deepEqual([verdict, change, state], ['reject', 'keep', before], JSON.stringify(alert));
    }
    assert.equal(f.evaluate(r(5, 18), { ...before, done: true }).change, 'keep');
    assert.equal(f.evaluate(r(5, 18), { ...before, done: true }).verdict, 'reject');
    // Without done, the same alert is accepted.
    assert.equal(f.evaluate(r(5, 18), before).verdict.score, 2);
  });

  it('takes min_rise and min_days, and refuses an unknown parameter', () => {
    const state = { faintest: { 2: 19.0 }, since: 10 };
    assert.equal(load(riseOnce).evaluate(r(10.9, 18.0), state).verdict, 'reject'); // 0.9 days
    assert.equal(load(riseOnce, { min_days: 0.5 }).evaluate(r(10.9, 18.0), state).verdict.score, 1);
    assert.equal(load(riseOnce, { min_rise: 1.5 }).evaluate(r(12, 18.0), state).verdict, 'reject');
    assert.throws(() => load(riseOnce, { min_rize: 1 }), /unknown parameter "min_rize"; this filter knows: min_rise, min_days/);
  });
});

describe('bright-star-veto (a cross-match)', () => {
  /** An alert with the Gaia rows given as [dist, mag] pairs, nearest first. */
  function near(rows = [], isdiffpos = 't') {
    return {
      'candidate.isdiffpos': isdiffpos,
      'xmatch.stars.dist': reals(rows.map(([dist]) => dist)),
      'xmatch.stars.mag': reals(rows.map(([, mag]) => mag)),
    };
  }

  async function verdict(rows, isdiffpos, params) {
    const f = await sample('bright-star-veto', params);
    return plain(f.evaluate(...alertFor(f, near(rows, isdiffpos))));
  }

  it('asks for the Gaia stars within 10 arcsec and reads their distances and magnitudes', async () => {
    const described = (await sample('bright-star-veto')).describe();
    assert.equal(described.name, 'bright-star-veto');
    assert.equal(described.survey, 'ztf');
    assert.deepEqual(described.crossmatches, [{ name: 'stars', catalog: 'gaia', radiusArcsec: 10, maxRows: 20 }]);
    assert.deepEqual(described.fields, ['candidate.isdiffpos', 'xmatch.stars.dist', 'xmatch.stars.mag']);
    assert.equal('state' in described, false);
  });

  it('accepts as clear a positive detection with no star at all', async () => {
    assert.deepEqual(await verdict([]), { score: undefined, tags: ['clear'], annotations: [] });
    assert.deepEqual(await verdict([], '1'), { score: undefined, tags: ['clear'], annotations: [] });
  });

  it('accepts as a faint neighbour one with only faint stars nearby', async () => {
    // 15.0 is not brighter than 15.0.
    assert.deepEqual(await verdict([[1.2, 15.0], [7.5, 19.3]]), { score: undefined, tags: ['faint-neighbour'], annotations: [] });
  });

  it('vetoes a bright star anywhere in the cone', async () => {
    assert.equal(await verdict([[0.8, 18.0], [9.9, 14.99]]), 'reject');
    assert.equal(await verdict([[0.8, 4.0]]), 'reject');
  });

  it('never vetoes for a star without a magnitude', async () => {
    assert.deepEqual((await verdict([[0.5, null], [2.0, NaN]])).tags, ['faint-neighbour']);
    assert.equal(await verdict([[0.5, null], [2.0, 3.0]]), 'reject');
  });

  it('rejects what is not a positive detection', async () => {
    for (const sign of ['f', '0', null, '']) assert.equal(await verdict([], sign), 'reject', String(sign));
  });

  it('takes max_star_mag, and refuses an unknown parameter', async () => {
    assert.equal(await verdict([[1.0, 19.3]], 't', [['max_star_mag', '20']]), 'reject');
    assert.deepEqual((await verdict([[1.0, 14.0]], 't', [['max_star_mag', '12']])).tags, ['faint-neighbour']);
    await assert.rejects(() => sample('bright-star-veto', [['max_mag', '12']]), /unknown parameter "max_mag"; this filter knows: max_star_mag/);
  });
});
