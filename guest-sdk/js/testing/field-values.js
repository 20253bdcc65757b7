// Test helpers: one alert's field values as the host sends them to
// `evaluate` (contract 0.5.0), built from plain descriptions, so that the
// SDK and the sample filters can be run in Node without a component.

/**
 * One alert's field values from `[kind, value]` pairs: `['real', 18.2]`,
 * `['integer', 2n]`, `['boolean', true]`, `['text', 't']`, `['absent']`,
 * `['other', {tag, val}]` for an entry of `others`, or `[kind]` for a bare
 * kind number. Returns `evaluate`'s first two arguments as the host
 * passes them, `[fields, others]` (`fields`: 8 bytes a field, a kind byte
 * a field, then the texts' UTF-8; `others` undefined when empty):
 * `filter.evaluate(...fieldValues(pairs), state)`.
 */
export function fieldValues(fields) {
  const n = fields.length;
  const head = new Uint8Array(9 * n);
  const view = new DataView(head.buffer);
  const texts = [];
  // Where the next text starts: the host's offsets count bytes of the list.
  let at = 9 * n;
  const others = [];
  fields.forEach(([kind, value], i) => {
    switch (kind) {
      case 'absent':
        break;
      case 'real':
        head[8 * n + i] = 1;
        view.setFloat64(8 * i, value, true);
        break;
      case 'integer':
        head[8 * n + i] = 2;
        view.setBigInt64(8 * i, BigInt(value), true);
        break;
      case 'boolean':
        head[8 * n + i] = 3;
        view.setBigInt64(8 * i, value ? 1n : 0n, true);
        break;
      case 'other':
        head[8 * n + i] = 4;
        others.push(value);
        break;
      case 'text': {
        head[8 * n + i] = 5;
        const bytes = new TextEncoder().encode(value);
        texts.push(bytes);
        view.setUint32(8 * i, at, true);
        at += bytes.length;
        view.setUint32(8 * i + 4, at, true);
        break;
      }
      default:
        head[8 * n + i] = kind;
    }
  });
  const list = new Uint8Array(at);
  list.set(head);
  let to = 9 * n;
  for (const bytes of texts) {
    list.set(bytes, to);
    to += bytes.length;
  }
  // `others` is none (undefined) when no field is of kind 4.
  return [list, others.length === 0 ? undefined : others];
}

/** A `reals` value: `[1.5, null, 2]`. */
export function reals(list) {
  const values = new Uint8Array(8 * list.length);
  const view = new DataView(values.buffer);
  list.forEach((x, i) => view.setFloat64(8 * i, x ?? 0, true));
  return { tag: 'reals', val: { values, present: presence(list) } };
}

/** An `integers` value: `[2, null, 1n]`. */
export function integers(list) {
  const values = new Uint8Array(8 * list.length);
  const view = new DataView(values.buffer);
  list.forEach((x, i) => view.setBigInt64(8 * i, BigInt(x ?? 0), true));
  return { tag: 'integers', val: { values, present: presence(list) } };
}

/** A `texts` value: `['t', null, 'f']`, offsets in UTF-8 bytes. */
export function texts(list) {
  let text = '';
  let bytes = 0;
  const ends = [];
  for (const s of list) {
    text += s ?? '';
    bytes += new TextEncoder().encode(s ?? '').length;
    ends.push(bytes);
  }
  return { tag: 'texts', val: { text, ends: new Uint32Array(ends), present: presence(list) } };
}

function presence(list) {
  return Uint8Array.from(list, (x) => (x === null ? 0 : 1));
}

/** A host `log` import that keeps what it is given. */
export function recordingLog() {
  const lines = [];
  const log = (level, message) => lines.push([level, message]);
  log.lines = lines;
  return log;
}
