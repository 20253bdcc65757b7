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

/** `field-values` for the declared fields, from values by field name. */
function alertFor(filter, values) {
  const paths = filter.describe().fields;
  return fieldValues(
    paths.map((path) => {
      const value = values[path];
      if (value === undefined || value === null) return ['absent'];
      if (typeof value === 'number') return ['real', value];
      if (typeof value === 'bigint') return ['integer', value];
      if (typeof value === 'string') return ['other', { tag: 'text', val: value }];
      return ['other', value];
    }),
  );
}

/** A decision's verdict as 'reject' or the accepted value; a filter without state always keeps none. */
function plain(decision) {
  assert.equal(decision.state.tag, 'keep', 'a filter without state keeps none');
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
    assert.deepEqual(plain(f.evaluate(alertFor(f, candidate))), {
      score: 0.8,
      tags: ['bright', 'ztf-r', 'new'],
      annotations: [['magpsf', '18.00']],
    });
  });

  it('prefers drb over rb where the schema has it', async () => {
    const f = await sample('bright-transients');
    assert.equal(plain(f.evaluate(alertFor(f, { ...candidate, 'candidate.drb?': 0.1 }))), 'reject');
  });

  it('rejects negative, faint, single or asteroid detections', async () => {
    const f = await sample('bright-transients');
    for (const change of [
      { 'candidate.isdiffpos': 'f' },
      { 'candidate.magpsf': 19.0 },
      { 'candidate.ndethist': 1n },
      { 'candidate.ssdistnr': 1.0 },
    ]) {
      assert.equal(plain(f.evaluate(alertFor(f, { ...candidate, ...change }))), 'reject', Object.keys(change)[0]);
    }
  });

  it('takes its parameters and refuses a typo', async () => {
    const f = await sample('bright-transients', [['max_mag', '17.5']]);
    assert.equal(plain(f.evaluate(alertFor(f, candidate))), 'reject');
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
    assert.deepEqual(plain(f.evaluate(alertFor(f, alert))), {
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
    assert.equal(plain(f.evaluate(alertFor(f, slow))), 'reject');
  });

  it('ignores a light curve with a missing column', async () => {
    const f = await sample('fast-risers');
    assert.equal(plain(f.evaluate(alertFor(f, { ...alert, 'prv_candidates.magpsf?': null }))), 'reject');
  });

  it('prefers a detection rise when faster', async () => {
    const f = await sample('fast-risers');
    const v = plain(
      f.evaluate(
        alertFor(f, {
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
    assert.equal(plain(f.evaluate(alertFor(f, clean))).score, 0.9);
    assert.equal(plain(f.evaluate(alertFor(f, { ...clean, 'candidate.sgscore1': 0.9, 'candidate.distpsnr1': 0.5 }))).score, 0.45);
    assert.equal(plain(f.evaluate(alertFor(f, { ...clean, 'candidate.nbad': 1n }))), 'reject');
  });
});

