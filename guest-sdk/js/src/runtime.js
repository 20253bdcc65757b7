// The `bandpass:filter/filter` exports (contract 0.5.0), wired to a filter
// made by `defineFilter`: describe, init and evaluate.
//
// Every exception stops here, as a string: `TypeError: alert.x is null (at
// my_filter.js:12)`, the stack going to the filter's log; a string the
// filter throws itself is passed on as it is. `evaluate` returns it as the
// answer `failed` (`{ tag: 'failed', val: message }`); `init`, whose WIT
// return is a `result`, throws it, which the bindings turn into the `err`
// (they turn only a thrown string into one: anything else traps, losing
// its message and the instance).
//
// Holds the one configured filter of a component instance (its parsed
// parameters) and nothing from one alert to the next: Math.random starts
// afresh on each alert (random.js), and what a filter keeps per object
// comes from the host with each alert and goes back in the decision
// (state.js).

import { Accept, DEFINITION, REJECT, describe } from './filter.js';
import { connect } from './log.js';
import { parseParams } from './params.js';
import { call, restart } from './random.js';
import { KEEP, decodeState, stateChange } from './state.js';

/** `others` when the host sends none (no field of kind 4). */
const NO_OTHERS = Object.freeze([]);

/**
 * The object to export as `filter` from the component's entry module.
 *
 * @param {object} filter the author's module's default export
 * @param {(level: string, message: string) => void} hostLog the `log` import
 * @param {string} source how the author's file is named in messages
 * @throws {TypeError} when `filter` was not made by `defineFilter`
 */
export function exportFilter(filter, hostLog, source) {
  const definition = filter !== null && typeof filter === 'object' ? filter[DEFINITION] : undefined;
  if (definition === undefined) {
    throw new TypeError(
      `${source}: the default export is ${describe(filter)}, not a filter; ` +
        'end the module with `export default defineFilter({ ... })` (import it from @bandpass/filter)',
    );
  }
  const { manifest, decode, evaluate } = definition;
  const spec = manifest.state;
  let config = null;
  let ready = false;

  function setUp(pairs) {
    connect(hostLog);
    // Math.random draws from the filter's name alone until an alert.
    restart(manifest.name);
    const params = parseParams(definition.params, pairs);
    const made = definition.init === undefined ? undefined : definition.init(params);
    config = made === undefined ? params : made;
    ready = true;
  }

  return {
    describe() {
      connect(hostLog);
      const described = {
        name: manifest.name,
        version: manifest.version,
        survey: manifest.survey,
        fields: manifest.fields.slice(),
        description: manifest.description,
        // `list<crossmatch>`: empty for a filter that asks for none.
        crossmatches: manifest.crossmatches.map((c) => ({
          name: c.name,
          catalog: c.catalog,
          radiusArcsec: c.radiusArcsec,
          maxRows: c.maxRows,
        })),
      };
      // `option<state-spec>`: left out (none) for a filter without state.
      if (manifest.state !== undefined) described.state = { format: manifest.state.format, maxBytes: manifest.state.maxBytes };
      return described;
    },

    init(params) {
      try {
        setUp(params);
      } catch (e) {
        throw failure(e, hostLog);
      }
    },

    // The answer is `option<answer>`: `undefined` (none) rejects and
    // leaves the state as it was, most alerts' answer, and costs the host
    // and the binding less than a decision to lower and lift; otherwise
    // `{ tag: 'decided', val: { verdict, state } }`, or `{ tag: 'failed',
    // val: message }` for an error, returned rather than thrown (the
    // contract has no `result` here: componentize-py was measured spending
    // about 4,700 instructions a call wrapping one).
    evaluate(fields, others, state) {
      try {
        // `others` is none (undefined) when no field is of kind 4.
        if (others == null) others = NO_OTHERS;
        // A host that skipped `init` gets the filter with its defaults.
        if (!ready) setUp([]);
        // Math.random's next draw seeds from this alert (see random.js).
        call.fields = fields;
        call.others = others;
        if (spec === undefined) {
          // No state: the host sends none, and the decision keeps none.
          // (The checks inline: a call costs thousands of fuel.)
          const verdict = evaluate(decode(fields, others), config);
          if (verdict === REJECT) return undefined;
          if (verdict instanceof Accept) return { tag: 'decided', val: { verdict, state: KEEP } };
          notAVerdict(verdict);
        }
        const before = decodeState(spec, state);
        const object = before === null ? {} : before.object;
        const verdict = evaluate(decode(fields, others), config, object);
        if (verdict !== REJECT && !(verdict instanceof Accept)) notAVerdict(verdict);
        const change = stateChange(spec, before === null ? null : before.text, object);
        // stateChange says KEEP (that one object) when nothing changed.
        if (verdict === REJECT && change === KEEP) return undefined;
        return { tag: 'decided', val: { verdict, state: change } };
      } catch (e) {
        return { tag: 'failed', val: failure(e, hostLog) };
      }
    },
  };
}

/** Throws saying what `evaluate` returned instead of a verdict. */
function notAVerdict(verdict) {
  if (verdict !== null && typeof verdict === 'object' && typeof verdict.then === 'function') {
    throw 'evaluate returned a Promise: a filter decides synchronously, so drop `async` and `await`';
  }
  throw `evaluate returned ${describe(verdict)}; return accept(...) or reject() on every path`;
}

/**
 * The message of an exception, for `init`'s `err` and `evaluate`'s
 * `failed`: a thrown string as it is;
 * an Error as `Name: message (at file.js:LINE)`, its stack written to the
 * log. Never throws.
 */
export function failure(error, hostLog) {
  if (typeof error === 'string') return error;
  try {
    if (error instanceof Error || (error !== null && typeof error === 'object' && 'stack' in error)) {
      const name = String(error.name || 'Error');
      const message = String(error.message);
      const frames = stackFrames(String(error.stack || ''));
      // The author's frames; the SDK's only when the error is all its own.
      const own = frames.filter((f) => !f.internal);
      const shown = own.length > 0 ? own : frames;
      const at = shown[0];
      const where = at === undefined ? '' : ` (at ${at.file}:${at.line})`;
      try {
        hostLog('error', `${name}: ${message}${shown.map((f) => `\n    at ${f.fn ? `${f.fn} (${f.file}:${f.line}:${f.column})` : `${f.file}:${f.line}:${f.column}`}`).join('')}`);
      } catch {
        // A log that cannot be written does not hide the error.
      }
      return `${name}: ${message}${where}`;
    }
    return `the filter threw ${describe(error)}, not an Error; throw new Error('...') or a string`;
  } catch {
    return 'the filter threw something whose message cannot be read';
  }
}

// A stack frame: SpiderMonkey `fn@file:12:7`, QuickJS `    at fn (file:12:7)`,
// V8 `    at fn (file:12:7)` or `    at file:12:7`.
const FRAME = /^\s*(?:at\s+)?(?:(.*?)(?:@|\s+\())?([^@()\s]+):(\d+):(\d+)\)?\s*$/;

/**
 * The frames of a stack, mapped back to the author's files when the
 * component's build left a line table (`bandpass-js build` does).
 *
 * @returns {{fn: string, file: string, line: number, column: number, internal: boolean}[]}
 */
export function stackFrames(stack) {
  const table = globalThis.__bandpassSources;
  const frames = [];
  for (const text of stack.split('\n')) {
    const m = FRAME.exec(text);
    if (m === null) continue;
    const fn = m[1] ?? '';
    const file = m[2];
    const line = Number(m[3]);
    const column = Number(m[4]);
    if (table !== undefined) {
      // Frames outside the bundle are the engine's glue, not the filter's.
      if (!file.endsWith(table.bundle)) continue;
      const mapped = mapPosition(table, line, column);
      if (mapped !== null) frames.push({ fn, ...mapped });
    } else {
      frames.push({ fn, file: shortName(file), line, column, internal: isSdkFile(file) });
    }
  }
  return frames;
}

/** A bundle position as `{file, line, column, internal}` in its source. */
export function mapPosition(table, line, column) {
  const segments = table.lines[line - 1];
  if (segments === undefined || segments === 0) return null;
  // Segments are [generated column, file, line, column], 0-based, by column.
  let at = 0;
  for (let i = 0; i < segments.length; i += 4) {
    if (segments[i] <= column - 1) at = i;
    else break;
  }
  const file = table.files[segments[at + 1]];
  return { file: file.name, line: segments[at + 2] + 1, column: segments[at + 3] + 1, internal: file.internal };
}

function shortName(file) {
  const slash = file.lastIndexOf('/');
  return slash < 0 ? file : file.slice(slash + 1);
}

let sdkDirectory;
function isSdkFile(file) {
  if (sdkDirectory === undefined) {
    try {
      sdkDirectory = new URL('.', import.meta.url).href;
    } catch {
      sdkDirectory = null;
    }
  }
  return sdkDirectory !== null && file.startsWith(sdkDirectory);
}
