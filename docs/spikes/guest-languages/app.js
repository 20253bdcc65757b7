// Minimal bandpass filter in JavaScript (componentize-js 0.23).
//
// An exported WIT interface is an exported object named after the
// interface in camelCase (`filter`); its functions are its methods.
// Imports come from the interface's full name.
import { log } from 'bandpass:filter/log@0.1.0';

const FIELDS = ['candidate.magpsf', 'candidate.rb'];
let maxMag = 18.5;
let minRb = 0.65;

// `value` arrives as { tag: 'real', val: 18.2 }, { tag: 'absent' }, ...
// s64 arrives as BigInt.
function real(v) {
  if (v.tag === 'real') return v.val;
  if (v.tag === 'integer') return Number(v.val);
  return null;
}

export const filter = {
  describe() {
    // record -> plain object, kebab-case fields become camelCase
    return {
      name: 'js-bright',
      version: '0.1.0',
      survey: 'ztf',
      fields: FIELDS,
      description: 'magpsf < 18.5 and rb > 0.65 (spike).',
    };
  },

  // list<tuple<string,string>> -> array of [k, v]; result<_, string>:
  // return normally for ok, throw for err (the thrown value is the payload).
  init(params) {
    for (const [k, v] of params) {
      if (k === 'max_mag') maxMag = Number(v);
      else if (k === 'min_rb') minRb = Number(v);
      else throw `unknown parameter '${k}'`;
    }
  },

  // result<verdict, string>: return the verdict for ok, throw a string for err.
  evaluate(fields) {
    const mag = real(fields[0]);
    const rb = real(fields[1]);
    if (mag === null || rb === null) return { tag: 'reject' };
    if (mag < maxMag && rb > minRb) {
      return {
        tag: 'accept',
        val: {
          score: rb * (maxMag - mag),        // option<f64>: number or undefined
          tags: ['bright'],
          annotations: [['magpsf', mag.toFixed(3)]],
        },
      };
    }
    return { tag: 'reject' };
  },
};
