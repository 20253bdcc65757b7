// Cross-matches (contract 0.4.0) in the JavaScript SDK: the declaration,
// the checks of `xmatch.*` fields, the described manifest and the columns
// a filter reads. `node --test test/`.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { accept, defineFilter, reject } from '../src/index.js';
import { compileCrossmatches } from '../src/crossmatch.js';
import { exportFilter } from '../src/runtime.js';
import { load } from '../testing/index.js';
import { fieldValues, integers, reals } from '../testing/field-values.js';

const STARS = { name: 'stars', catalog: 'gaia', radiusArcsec: 10, maxRows: 20 };

/** `defineFilter` with what a test does not care about filled in. */
function define(definition) {
  return defineFilter({ name: 'd', version: '1', survey: 'ztf', description: 'd', fields: {}, evaluate: () => reject(), ...definition });
}

describe('crossmatches', () => {
  it('takes a list of { name, catalog, radiusArcsec, maxRows }, and none is an empty list', () => {
    assert.deepEqual(compileCrossmatches([STARS]), [STARS]);
    assert.ok(Object.isFrozen(compileCrossmatches([STARS])[0]));
    assert.deepEqual(compileCrossmatches(undefined), []);
    assert.deepEqual(compileCrossmatches(null), []);
    assert.deepEqual(compileCrossmatches([]), []);
    const edges = [
      { name: 'x'.repeat(32), catalog: 'gaia', radiusArcsec: 1e-3, maxRows: 1 },
      { name: '2mass_j', catalog: '2mass', radiusArcsec: 60, maxRows: 4294967295 },
    ];
    assert.deepEqual(compileCrossmatches(edges), edges);
  });

  it('refuses a bad name, a duplicate name, and unknown options', () => {
    for (const name of ['', 'Stars', 'bright-stars', 'stars.near', 'x'.repeat(33), 'é', 7, undefined]) {
      assert.throws(
        () => compileCrossmatches([{ ...STARS, name }]),
        /defineFilter: crossmatches\[0\]\.name must be 1 to 32 characters of a-z, 0-9 and _/,
        String(name),
      );
    }
    assert.throws(
      () => compileCrossmatches([STARS, { ...STARS, catalog: 'ps1' }]),
      /defineFilter: cross-match 'stars' is declared twice; give each cross-match its own name/,
    );
    // One catalogue under two names is fine.
    assert.equal(compileCrossmatches([STARS, { ...STARS, name: 'near', radiusArcsec: 2 }]).length, 2);
    assert.throws(
      () => compileCrossmatches([{ ...STARS, radius_arcsec: 10 }]),
      /crossmatches\[0\]: unknown option "radius_arcsec"; the options are name, catalog, radiusArcsec, maxRows/,
    );
    assert.throws(() => compileCrossmatches(STARS), /`crossmatches` must be an array like \[\{ name: 'stars'/);
    assert.throws(() => compileCrossmatches(['stars']), /crossmatches\[0\] must be an object like/);
  });

  it('refuses a catalogue that is not a non-empty string', () => {
    for (const catalog of ['', undefined, 3]) {
      assert.throws(() => compileCrossmatches([{ ...STARS, catalog }]), /cross-match 'stars': catalog must be the operator's name/);
    }
  });

  it('refuses a radius that is not a finite number above 0', () => {
    for (const radiusArcsec of [0, -1, NaN, Infinity, -Infinity, '10', 10n, null, undefined]) {
      assert.throws(
        () => compileCrossmatches([{ ...STARS, radiusArcsec }]),
        /cross-match 'stars': radiusArcsec must be a finite number of arcseconds above 0/,
        String(radiusArcsec),
      );
    }
  });

  it('refuses maxRows that is not an integer from 1 to 2^32 - 1', () => {
    for (const maxRows of [0, -1, 2.5, 4294967296, NaN, '20', 20n, undefined]) {
      assert.throws(
        () => compileCrossmatches([{ ...STARS, maxRows }]),
        /cross-match 'stars': maxRows must be an integer from 1 to 4294967295/,
        String(maxRows),
      );
    }
  });

  it('refuses a field of a cross-match nobody declared, naming the field and the declared ones', () => {
    assert.throws(
      () => define({ crossmatches: [STARS, { ...STARS, name: 'near' }], fields: { d: 'xmatch.star.dist' } }),
      (e) =>
        e instanceof TypeError &&
        e.message === 'defineFilter: field d ("xmatch.star.dist"): no cross-match is named "star"; the cross-matches declared are stars, near',
    );
    assert.throws(
      () => define({ fields: { d: 'xmatch.stars.dist' } }),
      /field d \("xmatch\.stars\.dist"\): no cross-match is named "stars"; none is declared: add crossmatches: \[\{ name: 'stars'/,
    );
    assert.throws(() => define({ crossmatches: [STARS], fields: { d: 'xmatch.stars' } }), /a cross-match field is xmatch\.<name>\.<column>/);
    assert.throws(() => define({ crossmatches: [STARS], fields: { d: 'xmatch.stars.' } }), /a cross-match field is xmatch\.<name>\.<column>/);
    // Declared: any column (the host knows the catalogue's), optional or not.
    define({ crossmatches: [STARS], fields: { d: 'xmatch.stars.dist', id: 'xmatch.stars.source_id', p: 'xmatch.stars.pmra?' } });
    // Another root that merely starts like it is no cross-match field.
    define({ fields: { x: 'xmatches.stars.dist' } });
  });

  it('describes the cross-matches in the manifest as jco maps the record (camelCase)', () => {
    const wide = { name: 'wide', catalog: 'gaia', radiusArcsec: 30.5, maxRows: 5 };
    const f = exportFilter(define({ crossmatches: [STARS, wide], fields: { d: 'xmatch.stars.dist' } }), () => {}, 'd.js');
    const described = f.describe();
    assert.deepEqual(described.crossmatches, [STARS, wide]);
    assert.deepEqual(described.fields, ['xmatch.stars.dist']);
    // A fresh copy each time: the host's binding may keep or change it.
    assert.notEqual(f.describe().crossmatches, described.crossmatches);
    assert.deepEqual(exportFilter(define({}), () => {}, 'd.js').describe().crossmatches, []);
    assert.equal(load(define({ crossmatches: [STARS] })).manifest.crossmatches[0].radiusArcsec, 10);
  });

  it('hands over each cross-match column as an array, an empty one when no row matched', () => {
    const seen = [];
    const f = exportFilter(
      define({
        crossmatches: [STARS],
        fields: { dist: 'xmatch.stars.dist', id: 'xmatch.stars.source_id', mag: 'xmatch.stars.mag' },
        evaluate(alert) {
          seen.push({ dist: alert.dist, id: alert.id, mag: alert.mag });
          return accept({ tags: [String(alert.dist.length)] });
        },
      }),
      () => {},
      'd.js',
    );
    f.init([]);
    const rows = fieldValues([
      ['other', reals([0.4, 6.1])],
      ['other', integers([4295806720n, 2695378462115010012n])],
      ['other', reals([13.2, null])],
    ]);
    assert.deepEqual(f.evaluate(...rows).val.verdict.val.tags, ['2']);
    const none = fieldValues([['other', reals([])], ['other', integers([])], ['other', reals([])]]);
    assert.deepEqual(f.evaluate(...none).val.verdict.val.tags, ['0']);
    assert.deepEqual(seen, [
      { dist: [0.4, 6.1], id: [4295806720, 2695378462115010012n], mag: [13.2, null] },
      { dist: [], id: [], mag: [] },
    ]);
  });
});
