// Imported first by the entry module `bandpass-js build` generates (never
// by an author), so that it runs before the filter's own module:
//
// - `console` writes to the filter's log. QuickJS has no `console`, and
//   SpiderMonkey's writes to a stdout the component does not have.
// - A filter has no clock and no timers: its verdict must depend on the
//   alert alone. `Date.now()`, `new Date()`, `Date()` and `setTimeout`
//   throw an error that says so, where the engines would otherwise trap
//   (QuickJS) or answer with a made-up time (SpiderMonkey). A constant
//   time would hide the mistake. `new Date(jdToMs)` and `Date.UTC(...)`
//   still work.
// - `Math.random` draws the same numbers for the same alert everywhere
//   (see random.js).

import { console } from './log.js';
import { random, randomUUID, randomValues } from './random.js';

globalThis.console = console;
Math.random = random;

/** Why a filter has no clock, as the error thrown by `what` says it. */
export const NO_CLOCK =
  "a JavaScript filter has no clock: its verdict must not depend on when it runs; use the alert's own time (candidate.jd, diaSource.midpointMjdTai)";

function noClock(what) {
  return () => {
    throw new Error(`${what}: ${NO_CLOCK}`);
  };
}

const EngineDate = globalThis.Date;
const now = noClock('Date.now()');
function Date(...args) {
  if (!new.target) return noClock('Date()')();
  if (args.length === 0) return noClock('new Date()')();
  return Reflect.construct(EngineDate, args, new.target);
}
Date.prototype = EngineDate.prototype;
Object.defineProperty(EngineDate.prototype, 'constructor', { value: Date, writable: true, configurable: true });
Date.UTC = EngineDate.UTC;
Date.parse = EngineDate.parse;
Date.now = now;
globalThis.Date = Date;

// Both engines have a `performance` whose clock traps the instance (the
// component has no clock): the same error as Date.now() instead.
// (QuickJS's `performance.now` cannot be redefined, so the whole object is.)
if ('performance' in globalThis) {
  const performance = Object.freeze({
    now: noClock('performance.now()'),
    get timeOrigin() {
      return noClock('performance.timeOrigin')();
    },
  });
  Object.defineProperty(globalThis, 'performance', { value: performance, writable: true, configurable: true });
}

// SpiderMonkey's `crypto` would trap too (no host randomness): its
// random values come from the same per-alert generator as Math.random.
if (typeof globalThis.crypto === 'object' && globalThis.crypto !== null) {
  Object.defineProperty(globalThis.crypto, 'getRandomValues', { value: randomValues, writable: true, configurable: true });
  Object.defineProperty(globalThis.crypto, 'randomUUID', { value: randomUUID, writable: true, configurable: true });
}

for (const timer of ['setTimeout', 'setInterval', 'setImmediate']) {
  globalThis[timer] = () => {
    throw new Error(`${timer}: a filter has no timers; evaluate decides on each alert synchronously`);
  };
}
