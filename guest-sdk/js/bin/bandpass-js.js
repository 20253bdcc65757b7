#!/usr/bin/env node
// bandpass-js: builds a JavaScript bandpass filter into a WebAssembly
// component. `bandpass-js --help` says how.

import path from 'node:path';
import { parseArgs } from 'node:util';

import { build, BuildError, DEFAULT_ENGINE, ENGINES } from '../build/build.js';

const USAGE = `Usage: bandpass-js build FILTER.js [-o FILTER.wasm] [--engine ${ENGINES.join('|')}]

Builds the filter module FILTER.js (its default export made by
defineFilter from @bandpass/filter) into a bandpass filter component.

Options:
  -o, --output FILE   where to write the component (default: FILTER.wasm
                      beside FILTER.js)
  --engine NAME       the JavaScript engine inside the component:
                      quickjs (default: cheaper per alert, smaller, faster
                      to build) or spidermonkey
  -q, --quiet         print nothing on success
  -h, --help          this text

Then: bandpass test FILTER.wasm ALERTS...`;

function fail(message) {
  process.stderr.write(`bandpass-js: ${message}\n`);
  process.exit(1);
}

let parsed;
try {
  parsed = parseArgs({
    allowPositionals: true,
    options: {
      output: { type: 'string', short: 'o' },
      engine: { type: 'string', default: DEFAULT_ENGINE },
      quiet: { type: 'boolean', short: 'q', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
} catch (e) {
  fail(`${e.message}\n\n${USAGE}`);
}
const { values, positionals } = parsed;
if (values.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
const [command, input, ...rest] = positionals;
if (command !== 'build') {
  fail(command === undefined ? `a command is missing\n\n${USAGE}` : `unknown command ${JSON.stringify(command)}\n\n${USAGE}`);
}
if (input === undefined) fail(`build needs the filter's module: bandpass-js build my_filter.js`);
if (rest.length > 0) fail(`build takes one module, got also ${rest.join(' ')}; build each on its own`);
const output = values.output ?? path.join(path.dirname(input), `${path.basename(input, path.extname(input))}.wasm`);

const started = performance.now();
try {
  const built = await build({ input, output, engine: values.engine });
  if (!values.quiet) {
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    const size = (built.bytes / 1e6).toFixed(1);
    process.stdout.write(
      `bandpass-js: built ${path.relative(process.cwd(), built.output)} ` +
        `(${built.manifest.name} ${built.manifest.version}, ${built.engine}, ${size} MB, ${seconds} s)\n`,
    );
  }
} catch (e) {
  if (e instanceof BuildError) fail(e.message);
  throw e;
}
