// `@bandpass/filter/testing`: run a filter in Node, for unit tests, through
// the same code its component runs (the SDK's exports, decoder and state
// encoding), with alerts written as plain objects:
//
//   import { load } from '@bandpass/filter/testing';
//   import riseOnce from '../rise-once.js';
//
//   const f = load(riseOnce, { min_days: 2 });
//   f.evaluate({ jd: 2460000.5, fid: 2, magpsf: 19.2, isdiffpos: 't' });
//   // { verdict: 'reject', change: 'set', state: { faintest: { 2: 19.2 }, since: 2460000.5 }, bytes: ... }
//
//   const star = f.object();          // one object's alerts in turn, its state carried as the host does
//   star.evaluate(alert1); star.evaluate(alert2);
//
// What differs from the component: Node's engine (V8) runs it, so Math
// functions may differ in the last digit and Math.random and the clock are
// Node's own (docs/filter-authors-js.md, section 5). `bandpass test` runs
// the component itself.

import { DEFINITION, REJECT, describe } from '../src/filter.js';
import { exportFilter } from '../src/runtime.js';
import { KEEP, canonicalJson, utf8Decode, utf8Encode } from '../src/state.js';
import { fieldValues, integers, reals, texts } from './field-values.js';

export { fieldValues, integers, reals, texts, recordingLog } from './field-values.js';

/** The decision `undefined` (none) stands for: reject, state unchanged. */
const REJECT_KEEP = Object.freeze({ verdict: REJECT, state: KEEP });

/**
 * The error a filter reported (an exception in it, or a mistake the SDK
 * caught): `init`'s `err`, or `evaluate`'s answer `failed`, as an Error.
 */
export class FilterError extends Error {
  constructor(message) {
    super(message);
    this.name = 'FilterError';
  }
}

/**
 * Loads a filter made by `defineFilter` with the operator's parameters, as
 * one deployment: `init` runs now.
 *
 * @param {object} filter the filter module's default export
 * @param {object | Array<[string, string]>} [params] name to value (each
 *   value goes through String(), as the operator writes it), or key/value
 *   pairs as the host passes them
 * @returns {LoadedFilter}
 * @throws {FilterError} when the filter refuses the parameters
 */
export function load(filter, params = {}) {
  return new LoadedFilter(filter, params);
}

class LoadedFilter {
  constructor(filter, params) {
    const definition = filter !== null && typeof filter === 'object' ? filter[DEFINITION] : undefined;
    if (definition === undefined) {
      throw new TypeError(`load takes a filter made by defineFilter (its module's default export); got ${describe(filter)}`);
    }
    /** The lines the filter wrote to its log, `[level, message]`. */
    this.log = [];
    const lines = this.log;
    this.exports = exportFilter(filter, (level, message) => lines.push([level, message]), 'the filter');
    this.definition = definition;
    /** The manifest, as the host reads it at load. */
    this.manifest = this.exports.describe();
    const pairs = Array.isArray(params) ? params : Object.entries(params).map(([k, v]) => [k, String(v)]);
    try {
      this.exports.init(pairs);
    } catch (e) {
      throw asError(e);
    }
  }

  /**
   * The filter's decision on one alert.
   *
   * @param {object} alert a value per property of `fields` (by the names
   *   `evaluate` reads): a number, BigInt, boolean, string or Uint8Array,
   *   an array for a column, `null` or left out for absent
   * @param {object | Uint8Array | string | null} [state] what the host
   *   hands the filter for the alert's object: none (`null`, left out), an
   *   object (stored as the SDK stores it), or its bytes or JSON text as
   *   stored
   * @returns {{verdict: 'reject' | {score: number | undefined, tags: string[], notes: object},
   *   change: 'keep' | 'set' | 'forget', state: object | null, bytes: Uint8Array | null}}
   *   the verdict; what becomes of the object's state; and the state the
   *   object's next alert brings (`null`: none), as an object and as bytes
   * @throws {FilterError} with the message the host would report for this alert
   */
  evaluate(alert, state = null) {
    const before = stateBytes(state);
    const answer = this.exports.evaluate(...this.fieldValues(alert), before);
    // `undefined` (none) is a reject that keeps the state; `failed` is the
    // filter's error, which the host reports.
    if (answer !== undefined && answer.tag === 'failed') throw asError(answer.val);
    const { verdict, state: change } = answer === undefined ? REJECT_KEEP : answer.val;
    let after = before;
    if (change.tag === 'set') after = change.val;
    else if (change.tag === 'forget') after = null;
    return {
      verdict: verdict.tag === 'reject' ? 'reject' : plainAccept(verdict.val),
      change: change.tag,
      state: after === null ? null : JSON.parse(utf8Decode(after)),
      bytes: after,
    };
  }

  /**
   * One astronomical object: its alerts, evaluated in turn, each with the
   * state the previous one left, as the host keeps it (an alert that fails
   * leaves the state as it was).
   *
   * @param {object | Uint8Array | string | null} [state] what the object has before its first alert here
   */
  object(state = null) {
    const filter = this;
    let bytes = stateBytes(state);
    return {
      /** As `LoadedFilter.evaluate`, with the object's state. */
      evaluate(alert) {
        const out = filter.evaluate(alert, bytes);
        bytes = out.bytes;
        return out;
      },
      /** The object's state now, as an object (`null`: none). */
      get state() {
        return bytes === null ? null : JSON.parse(utf8Decode(bytes));
      },
      /** The object's state now, as stored. */
      get bytes() {
        return bytes;
      },
    };
  }

  /** An alert written as an object, as the field values the host would send: `[fields, others]`. */
  fieldValues(alert) {
    const names = this.definition.names;
    if (alert === null || typeof alert !== 'object') {
      throw new TypeError(`an alert is an object of the filter's fields (${names.join(', ') || 'none'}); got ${describe(alert)}`);
    }
    for (const key of Object.keys(alert)) {
      if (!names.includes(key)) {
        throw new TypeError(`the alert has ${JSON.stringify(key)}, which is none of the filter's fields: ${names.join(', ') || 'none'}`);
      }
    }
    return fieldValues(names.map((name) => fieldValue(name, alert[name])));
  }
}

/** A value as a `[kind, value]` pair of `fieldValues`. */
function fieldValue(name, value) {
  if (value === null || value === undefined) return ['absent'];
  switch (typeof value) {
    case 'number':
      return Number.isSafeInteger(value) ? ['integer', value] : ['real', value];
    case 'bigint':
      return ['integer', value];
    case 'boolean':
      return ['boolean', value];
    case 'string':
      return ['text', value];
    default:
      break;
  }
  if (value instanceof Uint8Array) return ['other', { tag: 'bytes', val: value }];
  if (Array.isArray(value)) return ['other', column(name, value)];
  throw new TypeError(`field ${name}: give a number, BigInt, boolean, string, Uint8Array, array or null; got ${describe(value)}`);
}

/** An array as the column the host would send. */
function column(name, list) {
  const kinds = new Set(list.filter((x) => x !== null && x !== undefined).map((x) => typeof x));
  const present = list.map((x) => (x === undefined ? null : x));
  if (kinds.size === 0 || (kinds.size === 1 && kinds.has('number') && !present.every((x) => x === null || Number.isSafeInteger(x)))) {
    return reals(present);
  }
  if ([...kinds].every((k) => k === 'number' || k === 'bigint')) return integers(present);
  if (kinds.size === 1 && kinds.has('string')) return texts(present);
  if (kinds.size === 1 && kinds.has('boolean')) return { tag: 'booleans', val: present.map((x) => (x === null ? undefined : x)) };
  throw new TypeError(`field ${name}: a column holds numbers, strings or booleans (and null), one kind; got ${[...kinds].join(' and ')}`);
}

/** A state given to `evaluate` as the bytes the host would hand over. */
function stateBytes(state) {
  if (state === null || state === undefined) return null;
  if (state instanceof Uint8Array) return state;
  if (typeof state === 'string') return utf8Encode(state);
  if (typeof state === 'object') {
    try {
      return utf8Encode(canonicalJson(state));
    } catch (e) {
      throw new TypeError(`the state given: ${e}`);
    }
  }
  throw new TypeError(`a state is an object, its bytes (Uint8Array) or its JSON text, or null for none; got ${describe(state)}`);
}

function plainAccept(accepted) {
  return { score: accepted.score, tags: accepted.tags, notes: Object.fromEntries(accepted.annotations) };
}

function asError(e) {
  return new FilterError(typeof e === 'string' ? e : String(e));
}
