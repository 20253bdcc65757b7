// The operator's parameters: declared with their defaults in
// `defineFilter({ params })`, parsed once in `init` from the key/value
// strings the host passes, never per alert.
//
// A parameter's type comes from its default: a number default makes a
// number parameter, a boolean a boolean, a string a string. What a default
// cannot say (an integer, or no default at all) is said in the long form
// `{ type: 'integer', default: 2 }` / `{ type: 'number', default: null }`.

const TYPES = ['number', 'integer', 'boolean', 'string'];

/** What each type accepts, as error messages say it. */
const EXPECTED = {
  number: 'a finite number',
  integer: 'an integer',
  boolean: 'true or false',
  string: 'a string',
};

const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;
const INTEGER = /^[+-]?\d+$/;

/**
 * Checks the `params` option of `defineFilter` and returns the spec of
 * each parameter: `{ name, type, default }`.
 *
 * @throws {TypeError} naming the parameter whose declaration is wrong
 */
export function compileParams(declared) {
  if (declared === undefined) return [];
  if (declared === null || typeof declared !== 'object' || Array.isArray(declared)) {
    throw new TypeError('defineFilter: `params` must be an object of defaults, like { max_mag: 18.5 }');
  }
  const specs = [];
  for (const name of Object.keys(declared)) {
    specs.push(compileParam(name, declared[name]));
  }
  return specs;
}

function compileParam(name, decl) {
  const where = `defineFilter: parameter ${name}`;
  if (typeof decl === 'number') {
    if (!Number.isFinite(decl)) throw new TypeError(`${where}: the default must be a finite number`);
    return { name, type: 'number', default: decl };
  }
  if (typeof decl === 'boolean') return { name, type: 'boolean', default: decl };
  if (typeof decl === 'string') return { name, type: 'string', default: decl };
  if (decl !== null && typeof decl === 'object' && !Array.isArray(decl)) {
    const { type, default: value, ...rest } = decl;
    const extra = Object.keys(rest);
    if (extra.length > 0) {
      throw new TypeError(`${where}: unknown key ${JSON.stringify(extra[0])}; the long form is { type, default }`);
    }
    if (!TYPES.includes(type)) {
      throw new TypeError(`${where}: \`type\` must be one of ${TYPES.join(', ')}, not ${JSON.stringify(type)}`);
    }
    if (value === undefined || value === null) return { name, type, default: null };
    const ok =
      type === 'number'
        ? typeof value === 'number' && Number.isFinite(value)
        : type === 'integer'
          ? Number.isSafeInteger(value)
          : typeof value === type;
    if (!ok) throw new TypeError(`${where}: the default ${String(value)} is not ${EXPECTED[type]}`);
    return { name, type, default: value };
  }
  throw new TypeError(
    `${where}: give a default (18.5, true, 'r') or the long form { type: 'integer', default: 2 }`,
  );
}

/**
 * The parameters of one deployment: every declared parameter, from the
 * pairs the host passed or its default (`null` when it has none). When a
 * key is given more than once, the last value wins.
 *
 * @param {{name: string, type: string, default: any}[]} specs from `compileParams`
 * @param {[string, string][]} pairs as `init` receives them
 * @returns {object} a frozen object, one property per parameter
 * @throws {string} a message that refuses the deployment, naming the key
 */
export function parseParams(specs, pairs) {
  const given = new Map();
  for (const [key, raw] of pairs) {
    if (!specs.some((s) => s.name === key)) {
      throw specs.length === 0
        ? `unknown parameter ${JSON.stringify(key)}; this filter takes none`
        : `unknown parameter ${JSON.stringify(key)}; this filter knows: ${specs.map((s) => s.name).join(', ')}`;
    }
    given.set(key, raw);
  }
  const out = {};
  for (const spec of specs) {
    out[spec.name] = given.has(spec.name) ? parseOne(spec, given.get(spec.name)) : spec.default;
  }
  return Object.freeze(out);
}

function parseOne(spec, raw) {
  const text = raw.trim();
  let value;
  switch (spec.type) {
    case 'number':
      value = DECIMAL.test(text) ? Number(text) : NaN;
      if (Number.isFinite(value)) return value;
      break;
    case 'integer':
      value = INTEGER.test(text) ? Number(text) : NaN;
      if (Number.isSafeInteger(value)) return value;
      break;
    case 'boolean':
      value = text.toLowerCase();
      if (value === 'true' || value === 'yes' || value === '1') return true;
      if (value === 'false' || value === 'no' || value === '0') return false;
      break;
    default:
      return raw;
  }
  throw `parameter ${spec.name}: expected ${EXPECTED[spec.type]}, got ${JSON.stringify(raw)}`;
}
