// `Math.random` inside a filter: the same numbers for the same alert, in
// `bandpass test`, `run` and `serve`, whatever the instance saw before.
//
// A JavaScript component imports no WASI, so no host randomness reaches
// it, and the engines' own generators are seeded once when the component
// is built: every instance would then draw one sequence across alerts, and
// a draw would depend on which alerts came earlier (which differs between
// a test, a replay and each of serve's workers). So `install-globals.js`
// replaces `Math.random` with `random` below: sfc32, a small generator of
// good quality, started afresh on each alert from a hash of the filter's
// name and the alert's field values as the host sent them. The seed is
// made at the first draw of an alert, so a filter that never draws pays
// two stores per alert (`call.fields` and `call.others`).
//
// Outside `evaluate` the seed is fixed too: at build time (code at the top
// of the module) it is empty, in `init` the filter's name alone.

/**
 * What the next seed is made from: the filter's name, and the alert's
 * field values, the first two arguments the host passed to this
 * `evaluate` (`fields` null outside `evaluate`). The runtime sets them at
 * the start of each call, two stores and no function call (a call costs
 * thousands of fuel in SpiderMonkey's interpreter) and no object made; the
 * generator is seeded again at the first draw after `fields` changed: the
 * binding lifts a new list for each call, so it marks a new alert.
 */
export const call = { name: '', fields: null, others: null };
/** The `fields` the generator was last seeded for (undefined: never, or to be seeded again). */
let seededFor;

/**
 * Starts the draws afresh from the filter's name alone, outside any alert
 * (in `init`).
 */
export function restart(name) {
  call.name = name;
  call.fields = null;
  call.others = null;
  seededFor = undefined;
}

// sfc32's state.
let a = 0;
let b = 0;
let c = 0;
let d = 0;

/** One 32-bit output of sfc32. */
function next() {
  const t = (((a + b) | 0) + d) | 0;
  d = (d + 1) | 0;
  a = b ^ (b >>> 9);
  b = (c + (c << 3)) | 0;
  c = (c << 21) | (c >>> 11);
  c = (c + t) | 0;
  return t >>> 0;
}

/** A number in [0, 1) with 53 random bits, as `Math.random` gives. */
export function random() {
  if (call.fields !== seededFor) seed();
  const hi = next() >>> 5; // 27 bits
  const lo = next() >>> 6; // 26 bits
  return (hi * 67108864 + lo) / 9007199254740992;
}

/**
 * `crypto.getRandomValues(array)` from the same generator: fills an
 * integer typed array and returns it.
 */
export function randomValues(array) {
  if (!ArrayBuffer.isView(array) || array instanceof Float32Array || array instanceof Float64Array || array instanceof DataView) {
    throw new TypeError('crypto.getRandomValues takes an integer typed array');
  }
  if (call.fields !== seededFor) seed();
  const bytes = new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
  for (let i = 0; i < bytes.length; i += 4) {
    let w = next();
    for (let j = i; j < i + 4 && j < bytes.length; j++, w >>>= 8) bytes[j] = w & 255;
  }
  return array;
}

/** `crypto.randomUUID()` from the same generator: a version 4 UUID. */
export function randomUUID() {
  const b = randomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function seed() {
  seededFor = call.fields;
  const h = new Hash();
  h.text(call.name);
  if (call.fields !== null) h.fields(call.fields, call.others);
  [a, b, c, d] = h.finish();
  // The first outputs of sfc32 still show the seed's structure.
  for (let i = 0; i < 12; i++) next();
}

const scratch = new DataView(new ArrayBuffer(8));

/**
 * A 128-bit hash of a stream of 32-bit words: four lanes of multiply and
 * rotate (MurmurHash3's x86_128 mixing), good enough to make unrelated
 * alerts draw unrelated numbers. Not for security: nothing here is.
 */
class Hash {
  constructor() {
    this.h1 = 0x6a09e667;
    this.h2 = 0xbb67ae85;
    this.h3 = 0x3c6ef372;
    this.h4 = 0xa54ff53a;
    this.n = 0;
  }

  word(w) {
    let k = Math.imul(w | 0, 0x239b961b);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0xab0e9789);
    const lane = this.n & 3;
    this.n++;
    if (lane === 0) {
      this.h1 ^= k;
      this.h1 = (this.h1 << 19) | (this.h1 >>> 13);
      this.h1 = (Math.imul(this.h1 + this.h2, 5) + 0x561ccd1b) | 0;
    } else if (lane === 1) {
      this.h2 ^= k;
      this.h2 = (this.h2 << 17) | (this.h2 >>> 15);
      this.h2 = (Math.imul(this.h2 + this.h3, 5) + 0x0bcaa747) | 0;
    } else if (lane === 2) {
      this.h3 ^= k;
      this.h3 = (this.h3 << 15) | (this.h3 >>> 17);
      this.h3 = (Math.imul(this.h3 + this.h4, 5) + 0x96cd1c35) | 0;
    } else {
      this.h4 ^= k;
      this.h4 = (this.h4 << 13) | (this.h4 >>> 19);
      this.h4 = (Math.imul(this.h4 + this.h1, 5) + 0x32ac3b17) | 0;
    }
  }

  /** A list of bytes (a Uint8Array or an array), with its length. */
  bytes(list) {
    const n = list.length;
    this.word(n);
    let i = 0;
    for (; i + 4 <= n; i += 4) {
      this.word((list[i] & 255) | ((list[i + 1] & 255) << 8) | ((list[i + 2] & 255) << 16) | ((list[i + 3] & 255) << 24));
    }
    let w = 0;
    for (let s = 0; i < n; i++, s += 8) w |= (list[i] & 255) << s;
    this.word(w);
  }

  /** A string's UTF-16 units, with its length. */
  text(s) {
    const n = s.length;
    this.word(n);
    for (let i = 0; i < n; i += 2) this.word(s.charCodeAt(i) | ((i + 1 < n ? s.charCodeAt(i + 1) : 0) << 16));
  }

  real(x) {
    scratch.setFloat64(0, x, true);
    this.word(scratch.getInt32(0, true));
    this.word(scratch.getInt32(4, true));
  }

  integer(v) {
    // The binding gives an s64 as a BigInt (or a Number where exact).
    const u = BigInt.asUintN(64, BigInt(v));
    this.word(Number(u & 0xffffffffn));
    this.word(Number(u >> 32n));
  }

  /** One alert's field values: the packed list (numbers, kinds, texts), then each of `others`. */
  fields(fields, others) {
    this.bytes(fields);
    this.word(others.length);
    for (let i = 0; i < others.length; i++) this.value(others[i]);
  }

  value(v) {
    const tag = v === null || typeof v !== 'object' ? '' : String(v.tag);
    this.text(tag);
    const val = v?.val;
    switch (tag) {
      case 'text':
        this.text(val);
        break;
      case 'real':
        this.real(val);
        break;
      case 'integer':
        this.integer(val);
        break;
      case 'boolean':
        this.word(val ? 1 : 0);
        break;
      case 'bytes':
        this.bytes(val);
        break;
      case 'reals':
      case 'integers':
        this.bytes(val.values);
        this.bytes(val.present);
        break;
      case 'texts':
        this.text(val.text);
        this.word(val.ends.length);
        for (let i = 0; i < val.ends.length; i++) this.word(val.ends[i]);
        this.bytes(val.present);
        break;
      case 'booleans':
        this.word(val.length);
        for (let i = 0; i < val.length; i++) this.word(val[i] === true ? 1 : val[i] === false ? 2 : 0);
        break;
      default:
        // `absent`, or a case a later contract adds: its tag alone.
        break;
    }
  }

  /** The four lanes, finalised (MurmurHash3's fmix32 after a cross-mix). */
  finish() {
    let { h1, h2, h3, h4 } = this;
    const n = this.n;
    h1 ^= n;
    h2 ^= n;
    h3 ^= n;
    h4 ^= n;
    h1 = (h1 + h2 + h3 + h4) | 0;
    h2 = (h2 + h1) | 0;
    h3 = (h3 + h1) | 0;
    h4 = (h4 + h1) | 0;
    h1 = fmix(h1);
    h2 = fmix(h2);
    h3 = fmix(h3);
    h4 = fmix(h4);
    h1 = (h1 + h2 + h3 + h4) | 0;
    h2 = (h2 + h1) | 0;
    h3 = (h3 + h1) | 0;
    h4 = (h4 + h1) | 0;
    return [h1, h2, h3, h4];
  }
}

function fmix(h) {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h;
}
