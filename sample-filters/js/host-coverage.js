// host-coverage: positive ZTF detections inside the Legacy Surveys
// footprint, where a host galaxy has a photometric redshift to look up.
//
// It reads no footprint itself: the host holds the operator's sky map
// `legacy` (a MOC) and says, in the field `map.legacy.inside`, whether
// each alert is inside it: true or false, or null for an alert without a
// usable position (which is never accepted).
//
// The JavaScript twin of sample-filters/host-coverage (Rust): same name,
// parameter, cut, verdicts and tag; the science and the map are in that
// crate's README.md.
//
// Build and try, from the repository's root:
//   scripts/build-js-filters.sh
//   bandpass test sample-filters/target/js/host-coverage.wasm \
//       --map legacy=../shared/data/sky/ls_footprint_moc.fits ../shared/data/ztf/alerts

import { defineFilter, accept, reject } from '@bandpass/filter';

export default defineFilter({
  name: 'host-coverage',
  version: '0.1.0',
  survey: 'ztf',
  description:
    'Positive ZTF detections inside the Legacy Surveys footprint (map legacy), where a host galaxy photometric redshift exists.',

  fields: {
    isdiffpos: 'candidate.isdiffpos', // 't' or '1' for a positive difference
    drb: 'candidate.drb?', // deep real-bogus score (schema 3.3 and later)
    inside: 'map.legacy.inside', // inside the footprint; null without a position
  },

  params: {
    min_drb: 0.65, // the least deep real-bogus score, where the schema has it
  },

  evaluate(a, params) {
    const positive = a.isdiffpos === 't' || a.isdiffpos === '1';
    // No drb (older schemas): not a cut.
    const real = a.drb === null || a.drb >= params.min_drb;
    if (positive && real && a.inside === true) return accept({ tags: ['legacy-footprint'] });
    return reject();
  },
});
