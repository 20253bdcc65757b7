// `bandpass-js build`: one filter module in, one WebAssembly component out.
//
// 1. Bundle: a generated entry module, which wires the filter to the WIT
//    exports, plus the author's module and what it imports, into one ES
//    module (rolldown); neither engine resolves a package name. Append
//    the line table that maps the bundle's lines back to the author's
//    files (see sourcemap.js), for error messages.
// 2. Check: evaluate the author's module in Node, with `@bandpass/filter`
//    resolved to this package, so that a mistake in `defineFilter` or a
//    missing default export is reported with Node's file and line.
// 3. Componentize with the chosen engine against the WIT in wit/.
//
// Only the contract's imports remain in the component: QuickJS is built
// with WASI stubbed out, SpiderMonkey with its WASI features disabled.

import { mkdir, mkdtemp, rename, rm, stat, writeFile } from 'node:fs/promises';
import { register } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { mapPosition } from '../src/runtime.js';
import { decodeMappings, lineTable } from './sourcemap.js';

const PACKAGE = path.resolve(fileURLToPath(import.meta.url), '../..');
const SDK_SOURCES = path.join(PACKAGE, 'src');
const SDK_INDEX = path.join(SDK_SOURCES, 'index.js');
/** The contract, as shipped in this package. */
export const WIT_DIR = path.join(PACKAGE, 'wit');
const WORLD = 'alert-filter';
/** The contract the components are built for: the package in wit/filter.wit. */
export const CONTRACT = 'bandpass:filter@0.5.0';
const LOG_IMPORT = CONTRACT.replace('@', '/log@');
const ENTRY = '\0bandpass-entry.js';
const BUNDLE = 'filter.bundle.js';

export const ENGINES = ['quickjs', 'spidermonkey'];
export const DEFAULT_ENGINE = 'quickjs';

/** A build failure whose message is for the author, without a stack. */
export class BuildError extends Error {}

/**
 * One of the SDK's npm dependencies. A project that links the SDK
 * (`"@bandpass/filter": "file:.../guest-sdk/js"`) finds them in the SDK's
 * own node_modules, which `npm ci` there fills.
 */
async function dependency(name) {
  try {
    return await import(name);
  } catch (e) {
    if (e?.code === 'ERR_MODULE_NOT_FOUND') {
      throw new BuildError(
        `${name} is not installed beside the SDK: run \`npm ci\` in ${PACKAGE} once ` +
          '(in the bandpass repository, scripts/build-js-filters.sh does it)',
      );
    }
    throw e;
  }
}

/**
 * Builds one filter.
 *
 * @param {object} options
 * @param {string} options.input the author's module
 * @param {string} options.output where to write the component
 * @param {string} [options.engine] `quickjs` (default) or `spidermonkey`
 * @returns {Promise<{output: string, engine: string, bytes: number, manifest: object}>}
 * @throws {BuildError} naming the file and what to do
 */
export async function build({ input, output, engine = DEFAULT_ENGINE }) {
  if (!ENGINES.includes(engine)) {
    throw new BuildError(`unknown engine ${JSON.stringify(engine)}; use one of: ${ENGINES.join(', ')}`);
  }
  input = path.resolve(input);
  output = path.resolve(output);
  const shown = path.relative(process.cwd(), input) || input;
  const info = await stat(input).catch(() => null);
  if (info === null || !info.isFile()) {
    throw new BuildError(`${shown}: no such file; give the path of your filter's module (my_filter.js)`);
  }
  const work = await mkdtemp(path.join(tmpdir(), 'bandpass-js-'));
  try {
    // Bundling first: rolldown reports a syntax error with its line.
    const { code, table } = await bundle(input, shown, work);
    const manifest = await check(input, shown);
    const bundlePath = path.join(work, BUNDLE);
    await writeFile(bundlePath, code);
    let component;
    try {
      component = engine === 'quickjs' ? await quickjs(bundlePath, code, work) : await spidermonkey(bundlePath);
    } catch (e) {
      // An error while the engine evaluated the module (something Node
      // has and the engine lacks), with the author's lines.
      if (!(e instanceof BuildError)) throw e;
      const hint = / is not defined/.test(e.message)
        ? '\n(a filter runs in a bare JavaScript engine: no Node.js globals such as process, Buffer or require, no timers, no fetch, no files)'
        : '';
      throw new BuildError(`${shown}: ${mapBundlePositions(e.message, table).trim()}${hint}`);
    }
    // Written beside the output and renamed, so that a failed build never
    // leaves a truncated component behind.
    const partial = `${output}.partial`;
    await mkdir(path.dirname(output), { recursive: true });
    await writeFile(partial, component);
    await rename(partial, output);
    return { output, engine, bytes: component.length, manifest };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

let hooked = false;

/**
 * Step 2: evaluates the author's module in Node and checks its default
 * export; returns the filter's manifest.
 */
async function check(input, shown) {
  if (!hooked) {
    register(new URL('./resolve-hooks.js', import.meta.url), { data: { index: pathToFileURL(SDK_INDEX).href } });
    hooked = true;
  }
  let module;
  try {
    module = await import(pathToFileURL(input).href);
  } catch (e) {
    throw new BuildError(`${shown} failed when evaluated: ${brief(e)}`);
  }
  if (!('default' in module)) {
    throw new BuildError(`${shown} has no default export; end it with \`export default defineFilter({ ... })\``);
  }
  const { exportFilter } = await import(pathToFileURL(path.join(SDK_SOURCES, 'runtime.js')).href);
  try {
    return exportFilter(module.default, () => {}, path.basename(input)).describe();
  } catch (e) {
    throw new BuildError(e.message);
  }
}

/** An error as one or two lines: its message and where it was thrown. */
function brief(e) {
  if (!(e instanceof Error)) return String(e);
  const at = String(e.stack ?? '')
    .split('\n')
    .find((line) => /^\s+at .*file:\/\//.test(line) && !line.includes(PACKAGE));
  return at ? `${e.name}: ${e.message}\n${at.trim().replace(/file:\/\//, '')}` : `${e.name}: ${e.message}`;
}

/** Step 1: the bundle's code, with its line table appended. */
async function bundle(input, shown, work) {
  const { rolldown } = await dependency('rolldown');
  const entry = [
    `import ${JSON.stringify(path.join(SDK_SOURCES, 'install-globals.js'))};`,
    `import { log } from ${JSON.stringify(LOG_IMPORT)};`,
    `import { exportFilter } from ${JSON.stringify(path.join(SDK_SOURCES, 'runtime.js'))};`,
    `import definition from ${JSON.stringify(input)};`,
    `export const filter = exportFilter(definition, log, ${JSON.stringify(path.basename(input))});`,
    '',
  ].join('\n');
  let chunk;
  try {
    const bundler = await rolldown({
      input: ENTRY,
      external: [LOG_IMPORT],
      logLevel: 'silent',
      // The author's code as written, statement for statement: no dead
      // code removal or constant folding, which would move the lines a
      // stack points at.
      treeshake: false,
      optimization: { inlineConst: false },
      plugins: [
        {
          name: 'bandpass-entry',
          resolveId(id) {
            if (id === ENTRY) return ENTRY;
            if (id === '@bandpass/filter') return SDK_INDEX;
            return null;
          },
          load(id) {
            return id === ENTRY ? entry : null;
          },
        },
      ],
    });
    const out = await bundler.generate({
      format: 'esm',
      sourcemap: true,
      minify: false,
      dir: work,
      entryFileNames: BUNDLE,
    });
    await bundler.close();
    chunk = out.output[0];
  } catch (e) {
    if (/MISSING_EXPORT\] "default" is not exported/.test(e.message)) {
      throw new BuildError(`${shown} has no default export; end it with \`export default defineFilter({ ... })\``);
    }
    throw new BuildError(`${shown}: cannot bundle it: ${e.message}`);
  }
  const base = path.dirname(input);
  const files = chunk.map.sources.map((source) => {
    if (source.includes('\0') || source.includes('bandpass-entry')) return { name: '(entry)', internal: true };
    const file = path.resolve(work, source);
    if (file.startsWith(SDK_SOURCES + path.sep)) {
      return { name: `@bandpass/filter/src/${path.relative(SDK_SOURCES, file)}`, internal: true };
    }
    return { name: path.relative(base, file), internal: false };
  });
  const table = lineTable(decodeMappings(chunk.map.mappings), files, BUNDLE);
  // Appended after the last line, so that no line of the bundle moves.
  const code = chunk.code.replace(/\n\/\/# sourceMappingURL=.*\n?$/, '\n');
  return { code: `${code}globalThis.__bandpassSources = ${JSON.stringify(table)};\n`, table };
}

/** `text` with each `filter.bundle.js:LINE:COLUMN` as the author's file and line. */
function mapBundlePositions(text, table) {
  return text.replace(/\/?filter\.bundle\.js:(\d+):(\d+)/g, (whole, line, column) => {
    const at = mapPosition(table, Number(line), Number(column));
    return at === null ? whole : `${at.file}:${at.line}:${at.column}`;
  });
}

/** Step 3 with QuickJS (componentize-qjs). */
async function quickjs(bundlePath, code, work) {
  const { componentize } = (await dependency('componentize-qjs')).default;
  try {
    const { component } = await componentize({
      witPath: WIT_DIR,
      world: WORLD,
      jsSource: code,
      jsPath: bundlePath,
      moduleRoot: work,
      stubWasi: true,
      sync: true,
    });
    return component;
  } catch (e) {
    throw new BuildError(`componentize-qjs (QuickJS) failed: ${e.message.replace(/^[:\s]+/, '')}`);
  }
}

/** Step 3 with SpiderMonkey (componentize-js). */
async function spidermonkey(bundlePath) {
  // componentize-js reads the WIT through the WASI shim of the
  // preview2-shim package, which since 0.26 opens no directory unless
  // told to.
  const { _setPreopens } = await dependency('@bytecodealliance/preview2-shim/filesystem');
  _setPreopens({ '/': '/' });
  const { componentize } = await dependency('@bytecodealliance/componentize-js');
  try {
    const { component } = await componentize({
      sourcePath: bundlePath,
      witPath: WIT_DIR,
      worldName: WORLD,
      // Without these the component would import WASI (stdio, random,
      // clocks, http), which a bandpass filter has no use for.
      disableFeatures: ['stdio', 'random', 'clocks', 'http', 'fetch-event'],
    });
    return component;
  } catch (e) {
    throw new BuildError(`componentize-js (SpiderMonkey) failed: ${e.message}`);
  }
}
