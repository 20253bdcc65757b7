// The line table a component carries so that a stack inside the bundled
// filter reads as the author's file and line. Built from the bundler's
// source map (version 3, "mappings" in base64 VLQ) at build time; the
// runtime (src/runtime.js, `stackFrames`) reads it only when an error
// happens.

const BASE64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const DIGIT = new Map([...BASE64].map((c, i) => [c, i]));

/**
 * Decodes source map `mappings` into, per generated line, its segments
 * as `[generatedColumn, source, originalLine, originalColumn]` (0-based).
 * Segments without a source are dropped.
 *
 * @param {string} mappings
 * @returns {number[][][]}
 */
export function decodeMappings(mappings) {
  const lines = [];
  let source = 0;
  let line = 0;
  let column = 0;
  for (const text of mappings.split(';')) {
    const segments = [];
    let generated = 0;
    for (const segment of text.split(',')) {
      if (segment === '') continue;
      const fields = decodeVlq(segment);
      generated += fields[0];
      if (fields.length >= 4) {
        source += fields[1];
        line += fields[2];
        column += fields[3];
        segments.push([generated, source, line, column]);
      }
    }
    lines.push(segments);
  }
  return lines;
}

function decodeVlq(text) {
  const out = [];
  let value = 0;
  let shift = 0;
  for (const c of text) {
    const digit = DIGIT.get(c);
    if (digit === undefined) throw new Error(`bad source map: unexpected ${JSON.stringify(c)} in mappings`);
    value += (digit & 31) << shift;
    if (digit & 32) {
      shift += 5;
    } else {
      out.push(value & 1 ? -(value >>> 1) : value >>> 1);
      value = 0;
      shift = 0;
    }
  }
  return out;
}

/**
 * The table the runtime reads: file names and, per generated line, a flat
 * array of segments, keeping only those where the original file or line
 * changes (0 for a line with none).
 *
 * @param {number[][][]} lines from `decodeMappings`
 * @param {{name: string, internal: boolean}[]} files one per map source
 * @param {string} bundle the bundle's file name, as stacks show it
 */
export function lineTable(lines, files, bundle) {
  const table = lines.map((segments) => {
    const flat = [];
    let last = null;
    for (const [generated, source, line, column] of segments) {
      if (last !== null && last[0] === source && last[1] === line) continue;
      flat.push(generated, source, line, column);
      last = [source, line];
    }
    return flat.length === 0 ? 0 : flat;
  });
  return { bundle, files, lines: table };
}
