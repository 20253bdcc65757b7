// Turning one alert's field values, as `evaluate` receives them from the
// host (contract 0.5.0: `fields`, numbers, kinds and texts in one list, and `others`), into the
// object a filter's `evaluate` receives:
// `{ magpsf: 18.2, isdiffpos: 't', prv_jd: [...] }`.
//
// Runs once per alert inside an interpreter (QuickJS, or SpiderMonkey
// without a JIT), where every bytecode costs tens of wasm instructions: a
// trivial loop iteration costs about 1,000 fuel in QuickJS. So the decoder
// is generated per filter (straight-line code, names compiled in), the
// object is made once and refilled, and columns are converted to arrays
// only when the filter reads them (see `compileDecoder`).
//
// It never throws on what the host sends, except for lists of the wrong
// length, a host bug reported as an error naming it.

/**
 * An integer from its two little-endian 32-bit halves: a Number when it
 * is exact as one (|i| <= 2^53 - 1), else a BigInt.
 */
export function integerFromHalves(lo, hi) {
  // hi in [-2^21, 2^21) means |i| <= 2^53; -2^53 itself is not a safe integer.
  if (hi >= -0x200000 && hi < 0x200000) {
    const n = hi * 4294967296 + (lo >>> 0);
    if (n !== -9007199254740992) return n;
  }
  return (BigInt(hi) << 32n) | BigInt(lo >>> 0);
}

/** The binding's s64 (a BigInt) as a Number where exact. */
function integerFromBigInt(b) {
  return b >= -9007199254740991n && b <= 9007199254740991n ? Number(b) : b;
}

/** The buffer of a packed byte list, copied first if it is not 8-aligned. */
function aligned(bytes) {
  return bytes.byteOffset % 8 === 0 ? bytes : bytes.slice();
}

/**
 * `out` with `null` where `present` is not 1 (a mask shorter than the
 * column marks the rest null).
 */
function nullWhereAbsent(out, present) {
  const n = out.length;
  // indexOf scans in native code: a column without nulls costs one call.
  let i = present.indexOf(0);
  while (i !== -1 && i < n) {
    out[i] = null;
    i = present.indexOf(0, i + 1);
  }
  for (let j = present.length; j < n; j++) out[j] = null;
  return out;
}

/** A column of reals: an array with `null` where the element was null. */
export function realColumn(column) {
  const values = aligned(column.values);
  const f64 = new Float64Array(values.buffer, values.byteOffset, values.byteLength >> 3);
  // slice copies in native code, about twice as fast as a loop here.
  return nullWhereAbsent(Array.prototype.slice.call(f64), column.present);
}

/** A column of integers: Numbers (BigInts past 2^53), `null` where null. */
export function integerColumn(column) {
  const values = aligned(column.values);
  const i32 = new Int32Array(values.buffer, values.byteOffset, values.byteLength >> 2);
  const present = column.present;
  const n = i32.length >> 1;
  const out = [];
  for (let i = 0; i < n; i++) {
    if (present[i] !== 1) {
      out.push(null);
      continue;
    }
    const hi = i32[2 * i + 1];
    out.push(hi > -0x200000 && hi < 0x200000 ? hi * 4294967296 + (i32[2 * i] >>> 0) : integerFromHalves(i32[2 * i], hi));
  }
  return out;
}

/**
 * A column of texts: `ends` are UTF-8 byte offsets into `text`. Where the
 * text is ASCII (every ZTF column), bytes and UTF-16 units coincide and
 * the offsets are used as they are; otherwise they are mapped first.
 */
export function textColumn(column) {
  const text = column.text;
  const ends = column.ends;
  const present = column.present;
  const n = ends.length;
  const out = [];
  const units = n > 0 && text.length !== ends[n - 1] ? utf8ToUtf16Offsets(text) : null;
  let start = 0;
  for (let i = 0; i < n; i++) {
    let end = ends[i];
    if (units !== null) end = end < units.length ? units[end] : -1;
    if (present[i] !== 1) {
      out.push(null);
    } else if (end < start || end > text.length) {
      // Offsets out of order or off a character boundary read as empty.
      out.push('');
    } else {
      out.push(text.slice(start, end));
    }
    if (end > start) start = end;
  }
  return out;
}

/**
 * For each UTF-8 byte offset of `text`, the UTF-16 offset of the same
 * position, or -1 inside a character.
 */
export function utf8ToUtf16Offsets(text) {
  const map = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    map.push(i);
    if (c < 0x80) continue;
    map.push(-1);
    if (c < 0x800) continue;
    map.push(-1);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        // A surrogate pair: 4 bytes, 2 units.
        map.push(-1);
        i++;
      }
    }
  }
  map.push(text.length);
  return map;
}

/** Strings made of ASCII alone, whose UTF-8 bytes are their characters. */
const ASCII = /^[\x00-\x7f]*$/;

/** The one-character strings of the bytes, by byte ("binary" characters). */
const BYTE_CHARS = Array.from({ length: 256 }, (_, b) => String.fromCharCode(b));

/** Texts up to this many bytes are read byte by byte; longer ones in chunks. */
const SHORT = 16;

/** Bytes turned into characters per call of String.fromCharCode. */
const CHUNK = 8192;

/**
 * The text in bytes `start` to `end` of `bytes` (UTF-8), or '' where the
 * offsets are out of order, past the end or off a character boundary (a
 * host bug; the decoder does not throw). Built-in functions only (QuickJS
 * has no TextDecoder): the bytes become a "binary" string, one character
 * per byte, which is the text itself when it is ASCII (every ZTF text)
 * and is otherwise read as UTF-8 by decodeURIComponent. A short text is
 * read byte by byte from a table (a call of String.fromCharCode.apply
 * costs QuickJS about as much as ten steps of the loop).
 */
export function textAt(bytes, start, end) {
  if (end < start || end > bytes.length) return '';
  let binary = '';
  let high = 0;
  if (end - start <= SHORT) {
    for (let at = start; at < end; at++) {
      const b = bytes[at];
      high |= b;
      binary += BYTE_CHARS[b];
    }
    if (high < 128) return binary;
  } else {
    for (let at = start; at < end; at += CHUNK) {
      binary += String.fromCharCode.apply(null, bytes.subarray(at, Math.min(end, at + CHUNK)));
    }
    if (ASCII.test(binary)) return binary;
  }
  try {
    // escape() writes each byte above 0x7f as %XX, which
    // decodeURIComponent reads as UTF-8 (throwing inside a character).
    return decodeURIComponent(escape(binary));
  } catch {
    return '';
  }
}

/** A boolean column: `true`/`false`, `null` where null. */
function booleanColumn(list) {
  const out = [];
  for (let i = 0; i < list.length; i++) {
    const b = list[i];
    out.push(b === true || b === false ? b : null);
  }
  return out;
}

/** One `value` variant (an entry of `others`) as a plain value. */
export function plainValue(value) {
  switch (value.tag) {
    case 'text':
      return value.val;
    case 'reals':
      return realColumn(value.val);
    case 'integers':
      return integerColumn(value.val);
    case 'texts':
      return textColumn(value.val);
    case 'bytes':
      return value.val;
    case 'real':
      return value.val;
    case 'integer':
      return integerFromBigInt(BigInt(value.val));
    case 'boolean':
      return value.val;
    case 'booleans':
      return booleanColumn(value.val);
    default:
      // `absent`, or a case a later contract adds.
      return null;
  }
}

/** A column whose array is not made yet (see `compileDecoder`). */
const PENDING = Symbol('column not yet read');

/** A name usable after a dot (reserved words are, as property names). */
const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/**
 * Compiles the decoder for one filter's fields: a function from one
 * alert's field values (`evaluate`'s `fields` and `others`) to the object
 * `evaluate` receives, one property per field.
 *
 * The body is generated once, when the filter is defined (at build time,
 * so it is part of the component's snapshot): straight-line code with the
 * property names and offsets compiled in. Measured in QuickJS (fuel per
 * alert) against the obvious code:
 *
 * - numbers are copied into one buffer kept for the filter's life and
 *   viewed once as 64-bit floats and 32-bit halves: one `set` call instead
 *   of two typed arrays per alert;
 * - the object is made once and refilled: 20 stores instead of an object
 *   literal of 20 properties, 17,000 fuel less on the 20-field cut (a
 *   seventh of it). So `evaluate` must not keep the object past its call;
 * - a read of a property the filter did not declare (a typo, `c.magpfs`)
 *   throws, naming it and the declared ones, instead of giving `undefined`
 *   and silently dropping a cut: the object's prototype is a Proxy (see
 *   `strictPrototype`), which only reads that miss every own property
 *   reach, so declared fields cost what they cost on a plain object;
 * - a column becomes an array only when the filter reads its property
 *   (the property turns into a getter the first time a column arrives,
 *   and caches the array for the alert): converting costs about 2,500
 *   fuel per element, 180,000 on fast-risers' five light-curve columns of
 *   a typical alert, which most alerts never reach;
 * - single texts (kind 5) are read from their bytes in `fields`: a
 *   one-character ASCII text (ZTF's `isdiffpos`) inline from a table,
 *   any other through `textAt` (a call: thousands of fuel in QuickJS).
 *
 * @param {string[]} names the properties, in the order of the paths
 * @returns {(fields: Uint8Array, others: object[]) => object}
 */
export function compileDecoder(names) {
  const n = names.length;
  const alert = Object.create(strictPrototype(names, 'alert', 'field', 'fields'));
  for (const name of names) alert[name] = null;
  // Per field once it has been a column: the `value` as received, and
  // its array once made (PENDING until read).
  const raw = names.map(() => null);
  const made = names.map(() => null);
  const isLazy = new Uint8Array(n);

  function lazy(i) {
    const name = names[i];
    isLazy[i] = 1;
    Object.defineProperty(alert, name, {
      enumerable: true,
      get() {
        let value = made[i];
        if (value === PENDING) value = made[i] = plainValue(raw[i]);
        return value;
      },
      // What the decoder stores for a scalar (or absent) value; `other`
      // keeps a column itself.
      set(value) {
        made[i] = value;
        raw[i] = null;
      },
    });
  }

  /** An entry of `others`: a column stays raw, the rest (bytes) is made now. */
  function other(value, i, taken, others) {
    if (value === undefined) {
      throw new RangeError(
        `the host sent ${others.length} values in \`others\`, fewer than the ${taken} fields of kind 4 so far (a host bug)`,
      );
    }
    const tag = value.tag;
    if (tag !== 'reals' && tag !== 'integers' && tag !== 'texts' && tag !== 'booleans') return plainValue(value);
    if (isLazy[i] === 0) lazy(i);
    raw[i] = value;
    made[i] = PENDING;
    return PENDING;
  }

  const property = (name) => (IDENTIFIER.test(name) ? `alert.${name}` : `alert[${JSON.stringify(name)}]`);
  const lines = [
    '"use strict";',
    `const bytes = new Uint8Array(${8 * n});`,
    'const f64 = new Float64Array(bytes.buffer);',
    'const i32 = new Int32Array(bytes.buffer);',
    'return function decode(fields, others) {',
    `  if (fields.length < ${9 * n}) wrongLength(fields.length, ${n});`,
    // The numbers copied to an 8-aligned buffer, viewed as doubles and
    // 32-bit halves.
    `  bytes.set(fields.subarray(0, ${8 * n}));`,
    '  let next = 0;',
    '  let k, h, o;',
  ];
  for (let i = 0; i < n; i++) {
    const p = property(names[i]);
    lines.push(
      `  k = fields[${8 * n + i}];`,
      `  if (k === 1) ${p} = f64[${i}];`,
      // An integer below 2^53 in magnitude inline, the rest in `int`.
      `  else if (k === 2) ${p} = (h = i32[${2 * i + 1}]) > -0x200000 && h < 0x200000 ? h * 4294967296 + (i32[${2 * i}] >>> 0) : int(i32[${2 * i}], h);`,
      `  else if (k === 3) ${p} = i32[${2 * i}] !== 0;`,
      // `other` keeps a column for later and says PENDING.
      `  else if (k === 4) { if ((o = other(others[next++], ${i}, next, others)) !== PENDING) ${p} = o; }`,
      // A text: its first and past-its-last byte in `fields`, two u32
      // halves. A one-character ASCII text (ZTF's isdiffpos) straight
      // from the table: a call costs QuickJS thousands of fuel.
      `  else if (k === 5) ${p} = (h = i32[${2 * i}] >>> 0) + 1 === i32[${2 * i + 1}] >>> 0 && (o = fields[h]) < 128 ? BYTE_CHARS[o] : textAt(fields, h, i32[${2 * i + 1}] >>> 0);`,
      // Absent, or a kind a later contract adds.
      `  else ${p} = null;`,
    );
  }
  lines.push('  return alert;', '};');
  const make = new Function('alert', 'int', 'other', 'wrongLength', 'PENDING', 'textAt', 'BYTE_CHARS', lines.join('\n'));
  return make(alert, integerFromHalves, other, wrongLength, PENDING, textAt, BYTE_CHARS);
}

/**
 * Names that code which inspects any object reads without knowing it
 * (JSON.stringify, await, Node's console and util.inspect): `undefined` on a strict object too,
 * as on a plain one. Object.prototype's own members and every symbol
 * (Symbol.toPrimitive, Symbol.iterator, ...) are found as usual.
 */
const PROBED = new Set(['toJSON', 'then', 'inspect', 'href', 'nodeType', 'asymmetricMatch', '$$typeof']);

/**
 * A prototype for an object with a fixed set of keys (`names`): it behaves
 * as Object.prototype, except that reading any other string key throws a
 * ReferenceError naming the key and listing `names` (with the nearest as a
 * suggestion), so that a misspelt property fails loudly.
 *
 * Own properties are found before the prototype is asked, so reads of the
 * declared names never reach the Proxy's trap and cost nothing extra.
 * Writes, `in`, `Object.keys` and spreading behave as on a plain object.
 *
 * @param {string[]} names the declared keys
 * @param {string} what the object, in messages (`alert`)
 * @param {string} one a key, in messages (`field`)
 * @param {string} option the option of defineFilter declaring them (`fields`)
 */
export function strictPrototype(names, what, one, option) {
  const declared = names.join(', ') || 'none';
  return new Proxy({}, {
    get(target, key, receiver) {
      if (typeof key === 'symbol' || key in target || PROBED.has(key)) return Reflect.get(target, key, receiver);
      const near = nearest(key, names);
      throw new ReferenceError(
        `${what}.${key}: the filter declared no ${one} '${key}'${near === null ? '' : ` (did you mean '${near}'?)`}; ` +
          `its ${option} are ${declared}. Add it to \`${option}\` to read it`,
      );
    },
  });
}

/** The name of `names` nearest `key` (edit distance at most 2, or a case change), or null. */
function nearest(key, names) {
  let best = null;
  let bestDistance = 3;
  for (const name of names) {
    const d = name.toLowerCase() === key.toLowerCase() ? 0 : distance(key, name, bestDistance);
    if (d < bestDistance) {
      best = name;
      bestDistance = d;
    }
  }
  return best;
}

/** Levenshtein distance with transpositions, or `limit` when at least that. */
function distance(x, y, limit) {
  if (Math.abs(x.length - y.length) >= limit) return limit;
  let before = null;
  let previous = Array.from({ length: y.length + 1 }, (_, j) => j);
  for (let i = 1; i <= x.length; i++) {
    const row = [i];
    for (let j = 1; j <= y.length; j++) {
      let d = Math.min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (x[i - 1] === y[j - 1] ? 0 : 1));
      if (before !== null && i > 1 && j > 1 && x[i - 1] === y[j - 2] && x[i - 2] === y[j - 1]) {
        d = Math.min(d, before[j - 2] + 1);
      }
      row.push(d);
    }
    before = previous;
    previous = row;
  }
  return Math.min(previous[y.length], limit);
}

function wrongLength(bytes, fields) {
  throw new RangeError(`the host sent ${bytes} bytes of fields for ${fields} declared fields (9 a field at least; a host bug)`);
}
