// `defineFilter`, `accept` and `reject`: what a filter author writes.
//
// `defineFilter` checks the whole definition when the module is evaluated,
// which `bandpass-js build` does at build time: a mistake in it fails the
// build with a message naming it, instead of every alert failing later.

import { checkCrossmatchFields, compileCrossmatches } from './crossmatch.js';
import { compileDecoder } from './fields.js';
import { compileParams } from './params.js';
import { compileState } from './state.js';

const NAME = /^[a-z0-9-]+$/;
const SURVEYS = ['ztf', 'rubin', 'any'];
const OPTIONS = ['name', 'version', 'survey', 'description', 'fields', 'params', 'state', 'crossmatches', 'init', 'evaluate'];

/** Where a defined filter keeps what the runtime needs; not for authors. */
export const DEFINITION = Symbol('bandpass filter definition');

/**
 * Defines a filter. Export the result as the module's default export:
 *
 * ```js
 * export default defineFilter({
 *   name: 'bright', version: '0.1.0', survey: 'ztf',
 *   description: 'Bright, real ZTF detections.',
 *   fields: { magpsf: 'candidate.magpsf', drb: 'candidate.drb?' },
 *   params: { max_mag: 18.5 },
 *   evaluate(alert, params) {
 *     return alert.magpsf !== null && alert.magpsf <= params.max_mag ? accept() : reject();
 *   },
 * });
 * ```
 *
 * - `name`: `[a-z0-9-]`, used in logs, metrics and headers.
 * - `version`: the filter's own version (semver recommended).
 * - `survey`: `'ztf'`, `'rubin'` or `'any'`; the host passes only that
 *   survey's alerts.
 * - `description`: one sentence on what the filter selects.
 * - `fields`: property name to dotted path; a path ending in `?` is
 *   optional (its property is `null` where the alert's schema lacks it).
 * - `params`: parameter name to default (see `params.js`).
 * - `state`: optional, `{ format, maxBytes }`: the filter keeps a plain
 *   object for each astronomical object (a ZTF objectId, a Rubin
 *   diaObject), stored as JSON (see `state.js`). `format` names its layout
 *   (`'rise-once/1'`: printable ASCII, no spaces, at most 64 bytes);
 *   `maxBytes` (1 to 65536) bounds its JSON.
 * - `crossmatches`: optional, `[{ name, catalog, radiusArcsec, maxRows }]`:
 *   catalogue cones the host runs around each alert (see `crossmatch.js`).
 *   Their rows arrive as fields the filter declares like any other, each a
 *   column (an array, nearest row first, `[]` for none):
 *   `'xmatch.<name>.dist'` (arcsec), `'xmatch.<name>.ra'` and `.dec`
 *   (degrees), `'xmatch.<name>.<column>'` for the catalogue's columns.
 * - `init(params)`: optional, called once per deployment after the
 *   parameters are parsed; throw to refuse the deployment; what it returns,
 *   if not `undefined`, is what `evaluate` receives as its second argument.
 * - `evaluate(alert, params)`, or `evaluate(alert, params, state)` for a
 *   filter that declares `state`: returns `accept(...)` or `reject()`, and
 *   changes `state` in place.
 *
 * @throws {TypeError} naming the option that is wrong
 */
export function defineFilter(definition) {
  if (definition === null || typeof definition !== 'object') {
    throw new TypeError('defineFilter takes one object: { name, version, survey, description, fields, params, state, crossmatches, evaluate }');
  }
  for (const key of Object.keys(definition)) {
    if (!OPTIONS.includes(key)) {
      throw new TypeError(`defineFilter: unknown option ${JSON.stringify(key)}; the options are ${OPTIONS.join(', ')}`);
    }
  }
  const { name, version, survey, description, fields, params, state, crossmatches, init, evaluate } = definition;
  if (typeof name !== 'string' || !NAME.test(name)) {
    throw new TypeError(`defineFilter: \`name\` must be a short name of a-z, 0-9 and '-', like 'bright-transients'; got ${JSON.stringify(name)}`);
  }
  text('version', version);
  if (!SURVEYS.includes(survey)) {
    throw new TypeError(`defineFilter: \`survey\` must be one of ${SURVEYS.map((s) => `'${s}'`).join(', ')}; got ${JSON.stringify(survey)}`);
  }
  text('description', description);
  if (fields === null || typeof fields !== 'object' || Array.isArray(fields)) {
    throw new TypeError("defineFilter: `fields` must be an object of property name to path, like { magpsf: 'candidate.magpsf' }");
  }
  const names = Object.keys(fields);
  const paths = names.map((key) => {
    const path = fields[key];
    if (key === '__proto__') throw new TypeError('defineFilter: a field cannot be called __proto__');
    if (typeof path !== 'string' || path.length === 0 || /\s/.test(path)) {
      throw new TypeError(`defineFilter: field ${key}: the path must be a dotted path like 'candidate.magpsf'; got ${JSON.stringify(path)}`);
    }
    return path;
  });
  if (typeof evaluate !== 'function') {
    throw new TypeError('defineFilter: `evaluate(alert, params)` is missing; it returns accept(...) or reject()');
  }
  if (init !== undefined && typeof init !== 'function') {
    throw new TypeError('defineFilter: `init` must be a function of the parameters, or left out');
  }
  const stateSpec = compileState(state);
  const cones = compileCrossmatches(crossmatches);
  checkCrossmatchFields(names, paths, cones);
  const filter = {};
  Object.defineProperty(filter, DEFINITION, {
    value: Object.freeze({
      manifest: Object.freeze({ name, version, survey, fields: paths, description, state: stateSpec, crossmatches: cones }),
      params: compileParams(params),
      names: Object.freeze(names),
      decode: compileDecoder(names),
      init,
      evaluate,
    }),
  });
  return Object.freeze(filter);
}

function text(option, value) {
  if (typeof value !== 'string' || value.length === 0) {
    throw new TypeError(`defineFilter: \`${option}\` must be a non-empty string; got ${JSON.stringify(value)}`);
  }
}

/** The verdict `reject()` returns: always the same object. */
export const REJECT = Object.freeze({ tag: 'reject' });

/** An accepted verdict, in the shape the WIT binding takes. */
export class Accept {
  constructor(score, tags, annotations) {
    this.tag = 'accept';
    this.val = { score, tags, annotations };
  }
}

/**
 * Not interesting: nothing is forwarded.
 */
export function reject() {
  return REJECT;
}

/**
 * Forward the alert, with an optional score, tags and notes:
 *
 * ```js
 * return accept({ score: drb, tags: ['bright', 'ztf-r'], notes: { magpsf: mag.toFixed(2) } });
 * ```
 *
 * - `score`: a number (a BigInt is converted), passed downstream.
 * - `tags`: short strings.
 * - `notes`: key to value; values are turned into strings with `String()`
 *   (format numbers yourself: `x.toFixed(3)`), and a note whose value is
 *   `null` or `undefined` is left out.
 *
 * The host bounds these (by default 32 tags of at most 64 bytes, 16 notes
 * of at most 256 bytes); a verdict over the bounds is an error of the
 * filter on that alert.
 *
 * @throws {TypeError} when an option has the wrong type
 */
export function accept(options) {
  if (options === undefined) return new Accept(undefined, [], []);
  if (options === null || typeof options !== 'object') {
    throw new TypeError('accept takes { score, tags, notes } or nothing');
  }
  const { score, tags, notes } = options;
  let s;
  if (typeof score === 'number') s = score;
  else if (score === undefined || score === null) s = undefined;
  else if (typeof score === 'bigint') s = Number(score);
  else throw new TypeError(`accept: score must be a number; got ${describe(score)}`);
  const t = [];
  if (tags !== undefined && tags !== null) {
    if (!Array.isArray(tags)) throw new TypeError(`accept: tags must be an array of strings; got ${describe(tags)}`);
    for (let i = 0; i < tags.length; i++) {
      if (typeof tags[i] !== 'string') throw new TypeError(`accept: tags[${i}] must be a string; got ${describe(tags[i])}`);
      t.push(tags[i]);
    }
  }
  const a = [];
  if (notes !== undefined && notes !== null) {
    if (typeof notes !== 'object' || Array.isArray(notes)) {
      throw new TypeError(`accept: notes must be an object of key to value, like { magpsf: '18.37' }; got ${describe(notes)}`);
    }
    for (const key in notes) {
      const value = notes[key];
      if (value !== undefined && value !== null) a.push([key, typeof value === 'string' ? value : String(value)]);
    }
  }
  return new Accept(s, t, a);
}

/** A value as an error message shows it. */
export function describe(value) {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (typeof value === 'string') return `the string ${JSON.stringify(value.length > 40 ? value.slice(0, 40) + '...' : value)}`;
  if (typeof value === 'bigint') return `the BigInt ${value}n`;
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return `an object (${Object.keys(value).slice(0, 4).join(', ') || 'no keys'})`;
  return `the ${typeof value} ${String(value)}`;
}
