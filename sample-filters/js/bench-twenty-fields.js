// bench-twenty-fields: the benchmark cut over twenty ZTF fields, the same
// logic as sample-filters/bench-twenty-fields/src/cut.rs. It measures what
// a JavaScript filter costs per alert against the Rust one (see
// docs/filter-authors-js.md, "Limits and fuel").

import { defineFilter, accept, reject } from '@bandpass/filter';

export default defineFilter({
  name: 'bench-twenty-fields',
  version: '0.1.0',
  survey: 'ztf',
  description: 'Benchmark: a quality cut over twenty ZTF fields.',

  fields: {
    magpsf: 'candidate.magpsf', // PSF magnitude
    sigmapsf: 'candidate.sigmapsf', // its uncertainty
    diffmaglim: 'candidate.diffmaglim', // limiting magnitude of the difference image
    rb: 'candidate.rb', // random-forest real-bogus score
    drb: 'candidate.drb?', // deep real-bogus score (schema 3.3 and later)
    isdiffpos: 'candidate.isdiffpos', // sign of the difference
    ssdistnr: 'candidate.ssdistnr', // distance to the nearest known asteroid
    ssmagnr: 'candidate.ssmagnr', // its magnitude
    sgscore1: 'candidate.sgscore1', // star/galaxy score of the nearest PS1 source
    distpsnr1: 'candidate.distpsnr1', // distance to it
    distnr: 'candidate.distnr', // distance to the nearest reference source
    magnr: 'candidate.magnr', // its magnitude
    ndethist: 'candidate.ndethist', // detections here so far
    ncovhist: 'candidate.ncovhist', // times covered so far
    jd: 'candidate.jd', // observation date
    jdstarthist: 'candidate.jdstarthist', // first detection date
    fid: 'candidate.fid', // band
    fwhm: 'candidate.fwhm', // seeing
    elong: 'candidate.elong', // elongation
    nbad: 'candidate.nbad', // bad pixels nearby
  },

  // Accept only scores at or above this. The end-to-end benchmark sets it
  // above 1 to read and judge every alert without producing any.
  params: { min_score: 0 },

  evaluate(t, params) {
    const score = decide(t);
    return score !== null && score >= params.min_score ? accept({ score }) : reject();
  },
});

/**
 * A clean, significant, positive detection away from asteroids and not on
 * a bright reference source; the score is the real-bogus probability,
 * halved next to a star and for sources older than 30 days. Null rejects.
 */
function decide(t) {
  const real = t.drb ?? t.rb;
  if (real === null || t.sigmapsf === null || t.diffmaglim === null || t.magpsf === null) return null;
  if (t.ndethist === null || t.ncovhist === null || t.jd === null || t.fid === null) return null;
  const positive = t.isdiffpos === 't' || t.isdiffpos === '1';
  const snr = 1.0857 / Math.max(t.sigmapsf, 1e-3);
  const depth = t.diffmaglim - t.magpsf;
  const clean = t.fwhm !== null && t.fwhm < 5 && t.elong !== null && t.elong < 1.6 && t.nbad === 0;
  const nearSso = t.ssdistnr !== null && t.ssdistnr >= 0 && t.ssdistnr < 5 && t.ssmagnr !== null && t.ssmagnr > 0;
  const star = t.sgscore1 !== null && t.sgscore1 > 0.8 && t.distpsnr1 !== null && t.distpsnr1 < 2;
  const onReference = t.distnr !== null && t.distnr < 1 && t.magnr !== null && t.magnr < 16;
  const history = t.ndethist >= 1 && t.ncovhist >= t.ndethist;
  const age = t.jd - (t.jdstarthist ?? t.jd);
  const band = t.fid >= 1 && t.fid <= 3;
  const accepted =
    real > 0.5 && positive && snr > 5 && depth > 0 && clean && !nearSso && !onReference && history && band;
  const penalty = (star ? 0.5 : 1) * (age > 30 ? 0.5 : 1);
  return accepted ? real * penalty : null;
}
