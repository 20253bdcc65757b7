// Imported first by the entry module `bandpass-js build` generates (never
// by an author), so that it runs before the filter's own module:
//
// - `console` writes to the filter's log. QuickJS has no `console`, and
//   SpiderMonkey's writes to a stdout the component does not have.
// - A filter has no clock and no timers: its verdict must depend on the
//   alert alone. `Date.now()`, `new Date()` and `setTimeout` throw an error
//   that says so, where the engines would otherwise trap (QuickJS) or
//   answer with a made-up time (SpiderMonkey). `new Date(jdToMs)` and
//   `Date.UTC(...)` still work.

import { console } from './log.js';

globalThis.console = console;

function noClock(what) {
  return () => {
    throw new Error(`${what}: a filter has no clock; use the alert's own dates (candidate.jd)`);
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

for (const timer of ['setTimeout', 'setInterval', 'setImmediate']) {
  globalThis[timer] = () => {
    throw new Error(`${timer}: a filter has no timers; evaluate decides on each alert synchronously`);
  };
}
