// fast-risers: ZTF sources brightening faster than a threshold, in
// mag/day, in the band of the current detection, measured against the
// light curve the alert carries (`prv_candidates`).
//
// The JavaScript twin of sample-filters/fast-risers (Rust): same name,
// parameters, cuts, score, tags and notes; the science and the cuts are in
// that crate's README.md.
//
// A path through an array (`prv_candidates.jd`) is a column: a JS array
// with one entry per earlier epoch, `null` where the value is null, or
// `null` instead of the array where the alert has none. The array is made
// when the property is read, so a column costs nothing on the alerts the
// cheap cuts reject first.

import { defineFilter, accept, fixed, reject } from '@bandpass/filter';

/** A known solar-system object within this distance (arcsec) vetoes. */
const SSO_RADIUS_ARCSEC = 5;
/** The band tag for each ZTF filter id. */
const BANDS = { 1: 'ztf-g', 2: 'ztf-r', 3: 'ztf-i' };

export default defineFilter({
  name: 'fast-risers',
  version: '0.1.0',
  survey: 'ztf',
  description: 'Real ZTF sources brightening by at least 0.5 mag/day in the current band.',

  fields: {
    // The current detection.
    jd: 'candidate.jd',
    fid: 'candidate.fid',
    magpsf: 'candidate.magpsf',
    isdiffpos: 'candidate.isdiffpos',
    drb: 'candidate.drb?',
    rb: 'candidate.rb',
    ndethist: 'candidate.ndethist',
    ssdistnr: 'candidate.ssdistnr',
    // The earlier epochs, one entry each.
    prv_jd: 'prv_candidates.jd',
    prv_fid: 'prv_candidates.fid',
    // Null for a non-detection. Optional: some schemas' previous
    // candidates are forced photometry without it.
    prv_magpsf: 'prv_candidates.magpsf?',
    prv_isdiffpos: 'prv_candidates.isdiffpos?',
    prv_diffmaglim: 'prv_candidates.diffmaglim', // 5-sigma limiting magnitude
  },

  params: {
    min_rise: 0.5,
    min_baseline_days: 0.5,
    min_real: 0.65,
  },

  init(params) {
    if (params.min_baseline_days <= 0) throw 'parameter min_baseline_days: must be above 0';
  },

  evaluate(a, params) {
    const positive = a.isdiffpos === 't' || a.isdiffpos === '1';
    const real = a.drb ?? a.rb;
    // A moving object appears from nowhere: demand an earlier detection
    // here, and no known solar-system object nearby.
    const repeated = a.ndethist !== null && a.ndethist >= 2;
    const nearSso = a.ssdistnr !== null && a.ssdistnr >= 0 && a.ssdistnr <= SSO_RADIUS_ARCSEC;
    if (a.jd === null || a.fid === null || a.magpsf === null) return reject();
    if (!positive || real === null || real < params.min_real || !repeated || nearSso) return reject();

    const rise = fastestRise(a, params.min_baseline_days);
    if (rise === null || rise.rate < params.min_rise) return reject();

    const tags = ['fast-riser', rise.fromLimit ? 'rise-from-limit' : 'rise-from-detection'];
    const band = BANDS[a.fid];
    if (band !== undefined) tags.push(band);
    return accept({
      score: rise.rate,
      tags,
      notes: {
        rise_mag_per_day: fixed(rise.rate, 3),
        baseline_days: fixed(rise.baseline, 3),
      },
    });
  },
});

/**
 * The fastest rise of the current detection over the earlier epochs in its
 * band: `{ rate, baseline, fromLimit }` (mag/day, days, whether that epoch
 * was a non-detection, making the rate a lower bound), or null when no
 * epoch is usable.
 */
function fastestRise(a, minBaseline) {
  // Each column read once: reading a column property makes its array.
  const { prv_jd: jds, prv_fid: fids, prv_magpsf: mags, prv_isdiffpos: signs, prv_diffmaglim: limits } = a;
  const n = length(jds);
  // A schema whose previous candidates lack a column has no usable light
  // curve (its forced-photometry rows are not detections).
  if (length(fids) !== n || length(mags) !== n || length(signs) !== n || length(limits) !== n) {
    return null;
  }
  let best = null;
  for (let i = 0; i < n; i++) {
    const then = jds[i];
    const band = fids[i];
    if (then === null || band === null) continue;
    const baseline = a.jd - then;
    if (band !== a.fid || baseline < minBaseline) continue;
    let reference;
    let fromLimit;
    if (mags[i] !== null) {
      // A detection: its magnitude if positive; a negative one says
      // nothing about a rise.
      if (signs[i] !== 't' && signs[i] !== '1') continue;
      reference = mags[i];
      fromLimit = false;
    } else if (limits[i] !== null) {
      // A non-detection: the source was fainter than the limit.
      reference = limits[i];
      fromLimit = true;
    } else {
      continue;
    }
    const rate = (reference - a.magpsf) / baseline;
    if (best === null || rate > best.rate) best = { rate, baseline, fromLimit };
  }
  return best;
}

/** Entries in a column; 0 where the alert has none. */
function length(column) {
  return column === null ? 0 : column.length;
}
