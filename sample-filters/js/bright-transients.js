// bright-transients: bright, real, positive ZTF transients, confirmed by at
// least a second detection and not a known solar-system object.
//
// The JavaScript twin of sample-filters/bright-transients (Rust): same
// name, parameters, cuts, score, tags and notes; the science and the cuts
// are in that crate's README.md.
//
// Build and try, from the repository's root:
//   scripts/build-js-filters.sh
//   bandpass test sample-filters/target/js/bright-transients.wasm ../shared/data/ztf/alerts

import { defineFilter, accept, fixed, reject } from '@bandpass/filter';

/** A known solar-system object within this distance (arcsec) vetoes. */
const SSO_RADIUS_ARCSEC = 5;
/** Tagged `new` when first detected at most this many days ago. */
const NEW_DAYS = 5;
/** The band tag for each ZTF filter id. */
const BANDS = { 1: 'ztf-g', 2: 'ztf-r', 3: 'ztf-i' };

export default defineFilter({
  name: 'bright-transients',
  version: '0.1.0',
  survey: 'ztf',
  description:
    'Bright (magpsf <= 18.5), real, positive ZTF transients seen at least twice, not known asteroids.',

  fields: {
    magpsf: 'candidate.magpsf', // difference-image PSF magnitude
    isdiffpos: 'candidate.isdiffpos', // 't' or '1' for a positive difference
    drb: 'candidate.drb?', // deep real-bogus score (schema v3.3 and later)
    rb: 'candidate.rb', // random-forest real-bogus score (every schema)
    ndethist: 'candidate.ndethist', // detections at this position so far
    ssdistnr: 'candidate.ssdistnr', // nearest known solar-system object, arcsec (-999: none)
    jd: 'candidate.jd', // observation date (JD)
    jdstarthist: 'candidate.jdstarthist', // date of the first detection here (JD)
    fid: 'candidate.fid', // filter: 1 = g, 2 = r, 3 = i
    sgscore1: 'candidate.sgscore1', // star/galaxy score of the nearest PS1 source (1 = star)
    distpsnr1: 'candidate.distpsnr1', // distance to that source, arcsec
  },

  params: {
    max_mag: 18.5,
    min_real: 0.65,
    min_ndethist: { type: 'integer', default: 2 },
    // No age limit unless the operator gives one.
    max_age_days: { type: 'number', default: null },
  },

  evaluate(c, params) {
    const positive = c.isdiffpos === 't' || c.isdiffpos === '1';
    // Deep real-bogus where the schema has it, else the older score.
    const real = c.drb ?? c.rb;
    if (real === null || c.magpsf === null || c.ndethist === null) return reject();
    const nearSso = c.ssdistnr !== null && c.ssdistnr >= 0 && c.ssdistnr <= SSO_RADIUS_ARCSEC;
    const age = c.jd !== null && c.jdstarthist !== null ? c.jd - c.jdstarthist : null;
    const youngEnough = params.max_age_days === null || (age !== null && age <= params.max_age_days);
    if (
      !positive ||
      c.magpsf > params.max_mag ||
      real < params.min_real ||
      c.ndethist < params.min_ndethist ||
      nearSso ||
      !youngEnough
    ) {
      return reject();
    }

    const tags = ['bright'];
    const band = BANDS[c.fid];
    if (band !== undefined) tags.push(band);
    if (age !== null && age <= NEW_DAYS) tags.push('new');
    const stellar =
      c.sgscore1 !== null && c.sgscore1 > 0.5 && c.distpsnr1 !== null && c.distpsnr1 >= 0 && c.distpsnr1 <= 1.5;
    if (stellar) tags.push('stellar-counterpart');
    return accept({ score: real, tags, notes: { magpsf: fixed(c.magpsf, 2) } });
  },
});
