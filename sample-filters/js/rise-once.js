// rise-once: each ZTF object once, the first time it is seen brighter by
// `min_rise` mag than the faintest the filter remembers of it in the same
// band, at least `min_days` after the filter first saw it.
//
// The JavaScript twin of sample-filters/rise-once (Rust): same name,
// parameters, state format and layout, cuts, score, tags and notes, alert
// by alert; the science and the cut are in that crate's README.md.
//
// It keeps state per object (contract 0.3.0): the host hands back what
// the filter left for the object with the object's next alert, so the
// rise is measured across alerts, not only within one alert's light
// curve. `state` is a plain object, `{}` for an object seen the first
// time:
//
//   { since: <jd of the first positive detection>,
//     faintest: { "<fid>": <the faintest magpsf in that band so far> },
//     done: <true once accepted> }
//
// (an absent key means: no since, no faintest, not done). The SDK stores
// it as JSON after each alert, and only when it changed.
//
// Build and try, from the repository's root:
//   scripts/build-js-filters.sh
//   bandpass test sample-filters/target/js/rise-once.wasm ../shared/data/ztf/alerts

import { defineFilter, accept, fixed, reject } from '@bandpass/filter';

export default defineFilter({
  name: 'rise-once',
  version: '0.1.0',
  survey: 'ztf',
  description:
    'Each object once: the first time it is seen brighter by min_rise than the faintest remembered in its band, min_days after it was first seen.',

  fields: {
    jd: 'candidate.jd', // observation date (JD)
    fid: 'candidate.fid', // filter: 1 = g, 2 = r, 3 = i
    magpsf: 'candidate.magpsf', // difference-image PSF magnitude
    isdiffpos: 'candidate.isdiffpos', // 't' or '1' for a positive difference
  },

  params: {
    min_rise: 0.5, // mag brighter than the faintest in the same band
    min_days: 1.0, // days since the object was first seen
  },

  // What the filter keeps per object; a new layout needs a new format.
  state: { format: 'rise-once/1', maxBytes: 512 },

  evaluate(c, params, state) {
    const positive = c.isdiffpos === 't' || c.isdiffpos === '1';
    // Nothing to measure: the state stays as it was.
    if (c.jd === null || c.fid === null || c.magpsf === null || !positive) return reject();
    // Accepted once already: never again for this object.
    if (state.done) return reject();

    const band = String(c.fid);
    const since = state.since === undefined ? c.jd : state.since;
    const faintest = state.faintest === undefined ? undefined : state.faintest[band];
    if (faintest !== undefined) {
      const rise = faintest - c.magpsf;
      const days = c.jd - since;
      if (rise >= params.min_rise && days >= params.min_days) {
        state.done = true;
        return accept({
          score: rise,
          tags: ['rise-once'],
          notes: { rise: fixed(rise, 2), days: fixed(days, 2) },
        });
      }
    }

    // Not yet: remember the faintest in this band and the first date.
    if (state.faintest === undefined) state.faintest = {};
    state.faintest[band] = faintest === undefined ? c.magpsf : Math.max(faintest, c.magpsf);
    state.since = Math.min(since, c.jd);
    return reject();
  },
});
