// @bandpass/filter: write a bandpass alert filter in JavaScript.
//
//   import { defineFilter, accept, reject, log } from '@bandpass/filter';
//   export default defineFilter({ name, version, survey, description, fields, params, evaluate });
//
// A filter that keeps a plain object per astronomical object declares
// `state: { format, maxBytes }` and receives it as `evaluate`'s third
// argument (see state.js). A filter that reads catalogue rows near each
// alert declares `crossmatches: [{ name, catalog, radiusArcsec, maxRows }]`
// and fields `xmatch.<name>.<column>` (see crossmatch.js).
// `fixed(value, decimals)` writes a real number for a note as the Rust and
// Python SDKs do (exact binary value, a half to the even digit; notes.js).
// `@bandpass/filter/testing` runs a filter in Node for unit tests.
//
// Build it into a WebAssembly component with `npx bandpass-js build
// my_filter.js`; see docs/filter-authors-js.md in the bandpass repository.

export { defineFilter, accept, reject } from './filter.js';
export { log } from './log.js';
export { fixed } from './notes.js';
