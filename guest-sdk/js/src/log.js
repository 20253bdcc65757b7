// The filter's own log: the one capability a filter has.
//
// Each call writes one line through the host's `log` import, which the
// runtime connects when the host first calls the filter. Before that (at
// build time, while the module is evaluated into the component's
// snapshot) lines are dropped: there is no log yet. The host bounds the
// volume per filter and drops the excess, so log what helps debugging,
// not a line per alert in production.

let sink = null;

/** Connects the host's `log(level, message)` import. */
export function connect(write) {
  sink = write;
}

function write(level, args) {
  if (sink === null) return;
  sink(level, format(args));
}

/**
 * Writes to the filter's log at a level. Arguments are joined with spaces
 * as `console.log` does; objects are shown as JSON.
 *
 * ```js
 * import { log } from '@bandpass/filter';
 * log.info('rise', rate.toFixed(2), 'mag/day');
 * ```
 */
export const log = Object.freeze({
  debug: (...args) => write('debug', args),
  info: (...args) => write('info', args),
  warn: (...args) => write('warn', args),
  error: (...args) => write('error', args),
});

/**
 * A `console` whose methods write to the filter's log: `log`, `info` and
 * `trace` at info (`debug` at debug), `warn` at warn, `error` at error.
 */
export const console = Object.freeze({
  log: log.info,
  info: log.info,
  debug: log.debug,
  trace: log.debug,
  warn: log.warn,
  error: log.error,
});

/** The arguments of one log call as one line. */
export function format(args) {
  let out = '';
  for (let i = 0; i < args.length; i++) {
    if (i > 0) out += ' ';
    out += show(args[i]);
  }
  return out;
}

function show(value) {
  switch (typeof value) {
    case 'string':
      return value;
    case 'bigint':
      return `${value}n`;
    case 'object':
      if (value === null) return 'null';
      if (value instanceof Error) return `${value.name}: ${value.message}`;
      try {
        return JSON.stringify(value, (_, v) => (typeof v === 'bigint' ? `${v}n` : v)) ?? String(value);
      } catch {
        return String(value);
      }
    case 'function':
      return `[function ${value.name || 'anonymous'}]`;
    default:
      return String(value);
  }
}
