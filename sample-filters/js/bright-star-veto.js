// bright-star-veto: positive ZTF detections with no bright Gaia star nearby.
//
// A bright star makes ghosts, diffraction spikes and bad subtractions
// around it, which pass as positive detections. The filter asks the host
// for the Gaia rows within 10 arcseconds of each alert (a cross-match,
// contract 0.4.0) and vetoes the alert when any of them is brighter than
// `max_star_mag`. The rows arrive as columns, one entry per star, nearest
// first; none at all is an empty array.
//
// The JavaScript twin of sample-filters/bright-star-veto (Rust): same
// name, parameter, cross-match, cut and verdicts; the science is in that
// crate's README.md.
//
// Build and try, from the repository's root:
//   scripts/build-js-filters.sh
//   bandpass test sample-filters/target/js/bright-star-veto.wasm ../shared/data/ztf/alerts
// (the host needs a `gaia` catalogue configured).

import { defineFilter, accept, reject } from '@bandpass/filter';

export default defineFilter({
  name: 'bright-star-veto',
  version: '0.1.0',
  survey: 'ztf',
  description:
    'Positive ZTF detections with no Gaia star brighter than max_star_mag within 10 arcseconds (ghosts and bright-star artifacts vetoed).',

  // The Gaia stars within 10 arcsec, nearest first, at most 20.
  crossmatches: [{ name: 'stars', catalog: 'gaia', radiusArcsec: 10.0, maxRows: 20 }],

  fields: {
    isdiffpos: 'candidate.isdiffpos', // 't' or '1' for a positive difference
    dist: 'xmatch.stars.dist', // each Gaia star's distance from the alert, arcsec
    mag: 'xmatch.stars.mag', // each Gaia star's magnitude (G)
  },

  params: {
    max_star_mag: 15.0, // a star brighter than this vetoes
  },

  evaluate(c, params) {
    if (c.isdiffpos !== 't' && c.isdiffpos !== '1') return reject();
    // No position (the columns are absent, not empty): no search was run,
    // so nothing says the field is clear.
    if (c.dist === null) return reject();
    const mags = c.mag ?? [];
    for (let i = 0; i < mags.length; i++) {
      // A star without a magnitude (null, NaN) never vetoes: NaN < x is false.
      const m = mags[i];
      if (m !== null && m < params.max_star_mag) return reject();
    }
    return accept({ tags: [c.dist.length === 0 ? 'clear' : 'faint-neighbour'] });
  },
});
