// Cross-matches (contract 0.4.0): the catalogue cones a filter asks the
// host for, declared as `defineFilter({ crossmatches: [...] })`:
//
//   crossmatches: [{ name: 'stars', catalog: 'gaia', radiusArcsec: 10, maxRows: 20 }],
//   fields: { dist: 'xmatch.stars.dist', mag: 'xmatch.stars.mag' },
//
// For each alert the host looks up the rows of the operator's `gaia`
// catalogue within 10 arcseconds of the alert's position, nearest first,
// at most 20, and hands them over as the declared fields, each a column (an
// array, one entry per row; `[]` when nothing is that near):
// `xmatch.<name>.dist` (arcseconds from the alert), `xmatch.<name>.ra`,
// `xmatch.<name>.dec` (degrees) and `xmatch.<name>.<column>` for the
// catalogue's columns (for Gaia: source_id, mag, pmra, pmdec).
//
// Checked here when the filter is defined (at build time): names, radii and
// row counts, and that every `xmatch.<name>.*` field names a declared
// cross-match. Which catalogues and columns exist, and the caps on the
// radius (60 arcsec by default) and the rows (20), are the operator's: the
// host checks them when it loads the filter.

/** The first segment of every field a cross-match gives. */
export const PREFIX = 'xmatch';
/** The longest cross-match name. */
export const MAX_NAME_CHARS = 32;
/** The most rows the contract can ask for (a u32); the host's cap is lower. */
export const MAX_ROWS = 4294967295;

const NAME = /^[a-z0-9_]{1,32}$/;
const OPTIONS = ['name', 'catalog', 'radiusArcsec', 'maxRows'];
const EXAMPLE = "{ name: 'stars', catalog: 'gaia', radiusArcsec: 10, maxRows: 20 }";

/**
 * Checks the `crossmatches` option of `defineFilter` and returns the
 * manifest's list, `[{ name, catalog, radiusArcsec, maxRows }]` (frozen;
 * empty when the filter declares none).
 *
 * @throws {TypeError} naming what is wrong
 */
export function compileCrossmatches(declared) {
  if (declared === undefined || declared === null) return Object.freeze([]);
  if (!Array.isArray(declared)) {
    throw new TypeError(`defineFilter: \`crossmatches\` must be an array like [${EXAMPLE}]; got ${shown(declared)}`);
  }
  const seen = new Set();
  const out = declared.map((c, i) => {
    const where = `defineFilter: crossmatches[${i}]`;
    if (c === null || typeof c !== 'object' || Array.isArray(c)) {
      throw new TypeError(`${where} must be an object like ${EXAMPLE}; got ${shown(c)}`);
    }
    for (const key of Object.keys(c)) {
      if (!OPTIONS.includes(key)) {
        throw new TypeError(`${where}: unknown option ${JSON.stringify(key)}; the options are ${OPTIONS.join(', ')} (${EXAMPLE})`);
      }
    }
    const { name, catalog, radiusArcsec, maxRows } = c;
    if (typeof name !== 'string' || !NAME.test(name)) {
      throw new TypeError(
        `${where}.name must be 1 to ${MAX_NAME_CHARS} characters of a-z, 0-9 and _ ` +
          `(its fields are xmatch.<name>.<column>), like 'stars'; got ${shown(name)}`,
      );
    }
    const named = `defineFilter: cross-match '${name}'`;
    if (seen.has(name)) {
      throw new TypeError(`${named} is declared twice; give each cross-match its own name (its fields are xmatch.<name>.<column>)`);
    }
    seen.add(name);
    if (typeof catalog !== 'string' || catalog.length === 0) {
      throw new TypeError(`${named}: catalog must be the operator's name for the catalogue, a non-empty string like 'gaia'; got ${shown(catalog)}`);
    }
    if (typeof radiusArcsec !== 'number' || !Number.isFinite(radiusArcsec) || radiusArcsec <= 0) {
      throw new TypeError(
        `${named}: radiusArcsec must be a finite number of arcseconds above 0 ` +
          `(the host allows up to 60 unless its operator says otherwise); got ${shown(radiusArcsec)}`,
      );
    }
    if (typeof maxRows !== 'number' || !Number.isInteger(maxRows) || maxRows < 1 || maxRows > MAX_ROWS) {
      throw new TypeError(
        `${named}: maxRows must be an integer from 1 to ${MAX_ROWS} ` +
          `(the host allows up to 20 unless its operator says otherwise); got ${shown(maxRows)}`,
      );
    }
    return Object.freeze({ name, catalog, radiusArcsec, maxRows });
  });
  return Object.freeze(out);
}

/**
 * Refuses a field `xmatch.<name>...` whose `<name>` no cross-match
 * declares, or that names no column. The column itself is the host's to
 * check (it knows the catalogue's columns).
 *
 * @param {string[]} names the fields' property names
 * @param {string[]} paths their paths, in the same order
 * @param {ReadonlyArray<{name: string}>} crossmatches as `compileCrossmatches` returns them
 * @throws {TypeError} naming the field and the declared cross-matches
 */
export function checkCrossmatchFields(names, paths, crossmatches) {
  const declared = crossmatches.map((c) => c.name);
  paths.forEach((path, i) => {
    const parts = path.replace(/\?$/, '').split('.');
    if (parts[0] !== PREFIX) return;
    const field = `defineFilter: field ${names[i]} (${JSON.stringify(path)})`;
    if (parts.length < 3 || parts.some((p) => p.length === 0)) {
      throw new TypeError(`${field}: a cross-match field is xmatch.<name>.<column>, like 'xmatch.stars.dist'`);
    }
    if (!declared.includes(parts[1])) {
      const known =
        declared.length > 0
          ? `the cross-matches declared are ${declared.join(', ')}`
          : `none is declared: add crossmatches: [${EXAMPLE.replace('stars', parts[1])}]`;
      throw new TypeError(`${field}: no cross-match is named ${JSON.stringify(parts[1])}; ${known}`);
    }
  });
}

/** A declared value as a message shows it. */
function shown(value) {
  if (typeof value === 'bigint') return `the BigInt ${value}n`;
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'object' && value !== null) return Array.isArray(value) ? 'an array' : 'an object';
  return String(value);
}
