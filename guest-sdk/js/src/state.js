// A filter's state per object (contract 0.3.0): what `defineFilter({ state })`
// declares, and how the plain object `evaluate` mutates travels as bytes.
//
// The host keeps a few bytes per object for each deployment and hands them
// back with the object's next alert. An author never sees the bytes: the
// filter receives a plain object (`{}` the first time, or after a forget),
// changes it, and the SDK turns what it holds afterwards into the
// `state-change` of the decision:
//
// - the same JSON as came in (or `{}` when none came): `keep`, nothing is
//   written;
// - `{}` when something came: `forget`, the next alert comes with none;
// - anything else: `set`, with the JSON's UTF-8 bytes.
//
// The JSON is canonical: keys sorted at every level (by UTF-16 code units,
// as `Array.prototype.sort` orders strings), no spaces, numbers as
// `JSON.stringify` writes them. So equal objects give equal bytes, and a
// state nobody changed is a `keep` whatever order its keys were added in.
// Values that JSON would silently change (NaN, Infinity, undefined,
// functions, BigInts, Maps, Dates, cycles) are refused with the key that
// holds them, instead of coming back different on the next alert.
//
// Runs inside an interpreter, on every alert of a filter with state, where
// each operation costs fuel (a loop iteration about 1,000 in QuickJS, which
// has no TextEncoder): bytes and strings are converted by the engine's
// built-in functions (String.fromCharCode, decodeURIComponent, btoa,
// Uint8Array.fromBase64), never byte by byte, and key paths for messages
// are made only once a value was refused.

/** The longest `format`, in bytes (ASCII, so characters). */
export const MAX_FORMAT_BYTES = 64;
/** The largest `maxBytes` a filter may declare; the host's cap is lower by default (4096). */
export const MAX_STATE_BYTES = 65536;

const FORMAT = /^[\x21-\x7e]+$/;
const STATE_OPTIONS = ['format', 'maxBytes'];

/** The decision's `state` when nothing changes: always the same object. */
export const KEEP = Object.freeze({ tag: 'keep' });
/** The decision's `state` that drops the object's state. */
export const FORGET = Object.freeze({ tag: 'forget' });

/**
 * Checks the `state` option of `defineFilter` and returns the manifest's
 * `state-spec`, `{ format, maxBytes }`, or `undefined` when the filter
 * keeps no state.
 *
 * @throws {TypeError} naming what is wrong
 */
export function compileState(declared) {
  if (declared === undefined || declared === null) return undefined;
  const example = "like { format: 'rise-once/1', maxBytes: 512 }";
  if (typeof declared !== 'object' || Array.isArray(declared)) {
    throw new TypeError(`defineFilter: \`state\` must be an object ${example}; got ${shown(declared)}`);
  }
  for (const key of Object.keys(declared)) {
    if (!STATE_OPTIONS.includes(key)) {
      throw new TypeError(`defineFilter: state: unknown option ${JSON.stringify(key)}; the options are format, maxBytes (${example})`);
    }
  }
  const { format, maxBytes } = declared;
  if (typeof format !== 'string' || format.length > MAX_FORMAT_BYTES || !FORMAT.test(format)) {
    throw new TypeError(
      `defineFilter: state.format must be 1 to ${MAX_FORMAT_BYTES} printable ASCII characters without spaces, ` +
        `naming the layout of the state, like 'rise-once/1'; got ${shown(format)}`,
    );
  }
  if (typeof maxBytes !== 'number' || !Number.isInteger(maxBytes) || maxBytes < 1 || maxBytes > MAX_STATE_BYTES) {
    throw new TypeError(
      `defineFilter: state.maxBytes must be an integer from 1 to ${MAX_STATE_BYTES}, the most bytes of JSON ` +
        `the filter keeps per object; got ${shown(maxBytes)}`,
    );
  }
  return Object.freeze({ format, maxBytes });
}

/** A declared value as a message shows it. */
function shown(value) {
  if (typeof value === 'bigint') return `the BigInt ${value}n`;
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'object' && value !== null) return Array.isArray(value) ? 'an array' : 'an object';
  return String(value);
}

/**
 * The object's state as the host sent it (`option<list<u8>>`: `null` or
 * `undefined` for none, else bytes) as `{ text, object }`: its JSON text
 * and a fresh plain object for `evaluate`. `null` for none.
 *
 * @throws {string} naming the format, when the bytes are not UTF-8 JSON of an object
 */
export function decodeState(spec, bytes) {
  if (bytes === null || bytes === undefined) return null;
  let text;
  let object;
  try {
    text = utf8Decode(bytes);
  } catch {
    throw notAnObject(spec, bytes, 'its bytes are not UTF-8');
  }
  try {
    object = JSON.parse(text);
  } catch (e) {
    throw notAnObject(spec, bytes, `it is not JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  if (object === null || typeof object !== 'object' || Array.isArray(object)) {
    throw notAnObject(spec, bytes, `it is JSON of ${object === null ? 'null' : Array.isArray(object) ? 'an array' : `a ${typeof object}`}`);
  }
  return { text, object };
}

function notAnObject(spec, bytes, why) {
  return (
    `state: the ${bytes.length} bytes stored for this object are not a JSON object as format ` +
    `'${spec.format}' keeps it: ${why}. They were written by another filter or version under the same ` +
    `format; give the new layout a format of its own ('${nextFormat(spec.format)}') so that every object starts from none`
  );
}

/** A format to suggest after `format`: its last number plus one (`rise-once/1` -> `rise-once/2`), or `/2` added. */
export function nextFormat(format) {
  const m = /^(.*?)(\d+)$/.exec(format);
  const next = m === null ? `${format}/2` : m[1] + String(Number(m[2]) + 1);
  return next.length <= MAX_FORMAT_BYTES ? next : format;
}

/**
 * What becomes of the object's state, given its JSON text as it came
 * (`null` for none) and the object `evaluate` left: `KEEP`, `FORGET` or
 * `{ tag: 'set', val: bytes }`.
 *
 * @throws {string} naming the key of a value JSON cannot hold, or the size over `maxBytes`
 */
export function stateChange(spec, before, object) {
  const text = canonicalJson(object);
  const textIsAscii = ascii;
  if (before === null) {
    if (text === '{}') return KEEP;
  } else {
    if (text === before) return KEEP;
    if (text === '{}') return FORGET;
    // What came in was written some other way (another key order, by an
    // earlier version or a twin in another language) but holds the same.
    if (sameContent(before, text)) return KEEP;
  }
  const bytes = utf8Encode(text, textIsAscii);
  if (bytes.length > spec.maxBytes) {
    throw (
      `state of ${bytes.length} bytes exceeds maxBytes=${spec.maxBytes} declared in the filter; ` +
      'keep less per object, or declare a larger maxBytes (the host refuses one above its cap, 4096 by default)'
    );
  }
  return { tag: 'set', val: bytes };
}

/** Whether the JSON `before` holds what the canonical `text` holds. */
function sameContent(before, text) {
  try {
    return canonicalJson(JSON.parse(before)) === text;
  } catch {
    // It held something JSON.parse turns into what the state cannot hold
    // (1e999 is Infinity): not the same as a text that was written.
    return false;
  }
}

/**
 * `value` as canonical JSON: keys sorted at every level, no spaces.
 *
 * @throws {string} naming the key of a value JSON cannot hold faithfully
 */
export function canonicalJson(value) {
  ascii = true;
  try {
    return encode(value, 0);
  } catch (e) {
    if (e === UNFIT) throw findUnfit(value, 'state', []) ?? 'state: a value changed while it was written (a getter?); store plain data';
    throw e;
  }
}

/** Whether the text the last `canonicalJson` made is ASCII (its strings and keys are). */
let ascii = true;
const ASCII = /^[\x00-\x7f]*$/;
/** Keys seen before, quoted; only ASCII ones (`encode` reads the cache as ASCII). */
const quotedKeys = new Map();
const MAX_QUOTED_KEYS = 1024;

/** A key as JSON, from the cache where it can be (JSON.stringify costs thousands of fuel). */
function quoteKey(key) {
  let quoted = quotedKeys.get(key);
  if (quoted !== undefined) return quoted;
  quoted = JSON.stringify(key);
  if (!ASCII.test(key)) {
    ascii = false;
    return quoted;
  }
  if (quotedKeys.size === MAX_QUOTED_KEYS) quotedKeys.clear();
  quotedKeys.set(key, quoted);
  return quoted;
}

/** Thrown by `encode` where a value cannot be held; `findUnfit` then says which. */
const UNFIT = Symbol('unfit');
/** Nesting deeper than this is taken for a cycle, or refused. */
const MAX_DEPTH = 100;

/**
 * The fast path, run on every alert of a filter with state: the least
 * work per value (each operation costs fuel in the interpreter), and no
 * key paths, which only an error needs.
 */
function encode(value, depth) {
  const type = typeof value;
  if (type === 'string') {
    if (ascii && !ASCII.test(value)) ascii = false;
    return JSON.stringify(value);
  }
  if (type === 'number') {
    // Finite: NaN - NaN and Infinity - Infinity are NaN.
    if (value - value === 0) return '' + value;
    throw UNFIT;
  }
  if (type === 'boolean') return value ? 'true' : 'false';
  if (type !== 'object' || depth === MAX_DEPTH) throw UNFIT;
  if (value === null) return 'null';
  if (Array.isArray(value)) {
    const n = value.length;
    if (n === 0) return '[]';
    let out = '[' + encode(value[0], depth + 1);
    for (let i = 1; i < n; i++) out += ',' + encode(value[i], depth + 1);
    return out + ']';
  }
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) throw UNFIT;
  const keys = Object.keys(value).sort();
  const n = keys.length;
  if (n === 0) return '{}';
  let key = keys[0];
  let out = '{' + quoteKey(key) + ':' + encode(value[key], depth + 1);
  for (let i = 1; i < n; i++) {
    key = keys[i];
    out += ',' + quoteKey(key) + ':' + encode(value[key], depth + 1);
  }
  return out + '}';
}

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/**
 * The slow path, after `encode` failed: walks `value` in the same order
 * with the key path of each value, and returns the message for the first
 * one JSON cannot hold.
 */
function findUnfit(value, path, open) {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return null;
    case 'number':
      return value - value === 0 ? null : unfit(path, String(value), 'store a finite number, or null');
    case 'object': {
      if (value === null) return null;
      if (open.includes(value)) return unfit(path, 'the object that holds it (a cycle)', 'store a copy of what you need');
      if (open.length === MAX_DEPTH) return unfit(path, `nested ${MAX_DEPTH} levels deep`, 'keep the state flat');
      let found = null;
      open.push(value);
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length && found === null; i++) found = findUnfit(value[i], `${path}[${i}]`, open);
      } else {
        const proto = Object.getPrototypeOf(value);
        if (proto !== Object.prototype && proto !== null) {
          const kind = typeof proto?.constructor === 'function' && proto.constructor.name ? proto.constructor.name : 'object of a class';
          found = unfit(path, /^[AEIOU]/i.test(kind) ? `an ${kind}` : `a ${kind}`, "store plain objects and arrays, and dates as numbers (the alert's jd)");
        }
        const keys = Object.keys(value).sort();
        for (let i = 0; i < keys.length && found === null; i++) {
          const key = keys[i];
          found = findUnfit(value[key], IDENTIFIER.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`, open);
        }
      }
      open.pop();
      return found;
    }
    case 'undefined':
      return unfit(path, 'undefined', 'delete the key instead (delete state.key), or store null');
    case 'bigint':
      return unfit(path, `the BigInt ${value}n`, 'store String(id), or Number(x) where it is exact');
    case 'function':
      return unfit(path, 'a function', 'store data only');
    default:
      return unfit(path, `a ${typeof value}`, 'store data only');
  }
}

function unfit(path, what, instead) {
  return (
    `${path} is ${what}, which the state's JSON cannot hold (it keeps strings, finite numbers, booleans, null, ` +
    `arrays and plain objects); ${instead}`
  );
}

/** Bytes the host sent (a Uint8Array or an array of numbers) as a string; throws on bytes that are not UTF-8. */
export function utf8Decode(bytes) {
  // One character per byte, by built-in functions: base64 both ways where
  // the engine has Uint8Array.prototype.toBase64 (both component engines
  // do), else String.fromCharCode; Math.max finds a byte above 0x7f. A
  // chunk at a time past CHUNK bytes (an engine limits how many arguments
  // `apply` takes).
  let binary;
  let top;
  if (bytes.length <= CHUNK && typeof bytes.toBase64 === 'function') {
    binary = atob(bytes.toBase64());
    top = bytes.length === 0 ? 0 : Math.max.apply(null, bytes);
  } else {
    binary = '';
    top = 0;
    for (let i = 0; i < bytes.length; i += CHUNK) {
      const chunk = bytes.subarray === undefined ? bytes.slice(i, i + CHUNK) : bytes.subarray(i, i + CHUNK);
      binary += String.fromCharCode.apply(null, chunk);
      top = Math.max(top, Math.max.apply(null, chunk));
    }
  }
  if (top < 0x80) return binary;
  // escape() writes each byte above 0x7f as %XX, which decodeURIComponent
  // reads as UTF-8, throwing a URIError where it is not.
  return decodeURIComponent(escape(binary));
}

const CHUNK = 8192;

/** A string as UTF-8 bytes (a lone surrogate throws a URIError). */
export function utf8Encode(text, isAscii = ASCII.test(text)) {
  // One character per byte. encodeURIComponent throws on a lone surrogate
  // (which TextEncoder would replace): the same bytes in every engine.
  const binary = isAscii ? text : unescape(encodeURIComponent(text));
  // Built-in where the engine has it (both of the component's engines
  // do): a loop costs about 2,000 fuel per byte in QuickJS.
  if (typeof Uint8Array.fromBase64 === 'function') return Uint8Array.fromBase64(btoa(binary));
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}
