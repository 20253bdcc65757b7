// gw-counterpart: positive ZTF detections inside a gravitational-wave
// localisation's credible region whose brightness changes fast (a
// kilonova rises and fades within days; a slow supernova does not).
//
// It reads no sky map itself: the host holds the operator's map `gw` (a
// multi-order probability map) and gives each alert, in the fields
// `map.gw.credible` and `map.gw.prob`, the smallest credible level whose
// region holds it (0 at the peak) and the probability density there, per
// square degree; both null for an alert without a usable position.
//
// The JavaScript twin of sample-filters/gw-counterpart (Rust): same name,
// parameters, cut, verdicts, score, tags and notes; the science and the
// map are in that crate's README.md.
//
// Build and try, from the repository's root:
//   scripts/build-js-filters.sh
//   bandpass test sample-filters/target/js/gw-counterpart.wasm \
//       --map gw=../shared/data/sky/bayestar.multiorder.fits ../shared/data/ztf/alerts

import { defineFilter, accept, fixed, reject } from '@bandpass/filter';

export default defineFilter({
  name: 'gw-counterpart',
  version: '0.1.0',
  survey: 'ztf',
  description:
    "Positive ZTF detections inside the gravitational-wave map gw's max_credible region, rising or fading by at least min_rate mag/day since the last detection in the band.",

  fields: {
    // The current detection.
    isdiffpos: 'candidate.isdiffpos', // 't' or '1' for a positive difference
    jd: 'candidate.jd', // observation date (JD)
    fid: 'candidate.fid', // filter: 1 = g, 2 = r, 3 = i
    magpsf: 'candidate.magpsf', // difference-image PSF magnitude
    // The earlier epochs: one entry each, null where null.
    prv_jd: 'prv_candidates.jd',
    prv_fid: 'prv_candidates.fid',
    prv_magpsf: 'prv_candidates.magpsf?', // null for a non-detection
    // The map's answers; null without a position.
    credible: 'map.gw.credible', // the smallest credible level holding the alert
    prob: 'map.gw.prob', // the probability density there, per square degree
  },

  params: {
    max_credible: 0.9, // the credible region an alert must be in (0.9: the 90 % region)
    min_rate: 0.3, // the least change of brightness, mag/day, either way
  },

  evaluate(a, params) {
    const positive = a.isdiffpos === 't' || a.isdiffpos === '1';
    const { jd, fid, magpsf, credible, prob } = a;
    if (!positive || jd === null || fid === null || magpsf === null || credible === null || prob === null) {
      return reject();
    }
    if (credible > params.max_credible) return reject();

    const last = latestEarlier(a, jd, fid);
    if (last === null) return reject();
    // Positive: brightening.
    const rate = (last.mag - magpsf) / (jd - last.jd);
    if (Math.abs(rate) < params.min_rate) return reject();
    return accept({
      score: prob,
      tags: [rate > 0 ? 'rising' : 'fading'],
      notes: { rate: fixed(rate, 2), credible: fixed(credible, 3) },
    });
  },
});

/**
 * The latest earlier detection in band `fid` before `jd`: `{ jd, mag }`
 * (the first of them on a tie), or null when there is none.
 */
function latestEarlier(a, jd, fid) {
  // Each column read once: reading a column property makes its array.
  const jds = a.prv_jd ?? [];
  const fids = a.prv_fid ?? [];
  const mags = a.prv_magpsf ?? [];
  const n = Math.min(jds.length, fids.length, mags.length);
  let last = null;
  for (let i = 0; i < n; i++) {
    const t = jds[i];
    const f = fids[i];
    const m = mags[i];
    if (t === null || f === null || m === null) continue;
    if (f === fid && t < jd && (last === null || t > last.jd)) last = { jd: t, mag: m };
  }
  return last;
}
