// {{name}}: bright, real, positive ZTF detections. A starting point:
// change the fields, the cut and the description, then build and test it
// (README.md has the commands).

import { defineFilter, accept, reject } from '@bandpass/filter';

export default defineFilter({
  name: '{{name}}',
  version: '0.1.0',
  survey: 'ztf',
  description: 'Bright, real, positive ZTF detections.',

  // The alert fields `evaluate` receives, by name (list them all with
  // `bandpass fields ALERT.avro`). A trailing `?` means the field may be
  // missing from older schemas: it then arrives as null.
  fields: {
    magpsf: 'candidate.magpsf', // difference-image PSF magnitude
    drb: 'candidate.drb?', // deep real-bogus score (schema 3.3 and later)
    rb: 'candidate.rb', // random-forest real-bogus score (every schema)
    isdiffpos: 'candidate.isdiffpos', // 't' or '1': brighter than the reference
  },

  // Parameters an operator may set (`--param max_mag=19`), with defaults.
  params: { max_mag: 18.5, min_real: 0.65 },

  evaluate(c, params) {
    const real = c.drb ?? c.rb;
    const positive = c.isdiffpos === 't' || c.isdiffpos === '1';
    if (c.magpsf === null || real === null || !positive) return reject();
    if (c.magpsf > params.max_mag || real < params.min_real) return reject();
    return accept({ score: real, tags: ['bright'], notes: { magpsf: c.magpsf.toFixed(2) } });
  },
});
