// clock-and-dice: a fixture that reads what a JavaScript filter could read
// that might differ between runs (Math.random, and the clock, which
// throws) and puts it in its verdict. `bandpass test`, `run` and `serve`
// must give the same verdict for an alert, byte for byte.

import { defineFilter, accept } from '@bandpass/filter';

export default defineFilter({
  name: 'clock-and-dice',
  version: '0.1.0',
  survey: 'any',
  description: 'Accepts every alert, noting the random numbers it drew.',

  fields: {
    jd: 'candidate.jd?', // observation date (JD), where the survey has it
  },

  evaluate(c) {
    const first = Math.random();
    const second = Math.random();
    let clock;
    try {
      clock = String(Date.now());
    } catch (e) {
      clock = 'throws';
    }
    return accept({ score: first, notes: { random: `${first} ${second}`, clock } });
  },
});
