// Turns wasm-bindgen's output in <dir> (pkg/) into the npm package: the per-host entries,
// their types, package.json with the exports map, the README and the licence files. Run by
// scripts/build.sh after wasm-bindgen; the templates are the files beside this one.
//
//   node js/package/assemble.mjs pkg
//
// wasm-bindgen's glue (edgebatch.js) stays as the `edgebatch/raw` entry, with one change: a
// call before init throws an Error saying what to call, not "Cannot read properties of
// undefined (reading 'batchprocessor_new')".
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
const root = join(here, '..', '..');
const out = process.argv[2];
if (!out) throw new Error('usage: node js/package/assemble.mjs <wasm-bindgen out dir>');

const fail = (message) => {
  throw new Error(`assemble: ${message}`);
};

/** A `key = "value"` of Cargo.toml's [package] table. */
function cargoField(key) {
  const pkg = /^\[package\]\n([\s\S]*?)(?=^\[)/m.exec(readFileSync(join(root, 'Cargo.toml'), 'utf8'));
  const m = pkg && new RegExp(`^${key}\\s*=\\s*"([^"]*)"`, 'm').exec(pkg[1]);
  return m ? m[1] : fail(`Cargo.toml [package] has no ${key}`);
}

/** Replaces `from` in `text` exactly `count` times, or fails (the glue changed shape). */
function replaceExactly(text, from, to, count) {
  const found = text.split(from).length - 1;
  if (found !== count) fail(`expected ${count} of ${JSON.stringify(from)} in the glue, found ${found}`);
  return text.split(from).join(to);
}

const NOT_READY_MESSAGE =
  'edgebatch: the WebAssembly module is not initialised yet. Import from "edgebatch" instead ' +
  '(it initialises itself on every host), or, with "edgebatch/raw", first call `await init()` ' +
  '(browser) or `initSync({ module })` with the compiled "edgebatch/edgebatch_bg.wasm" ' +
  '(Worker) or its bytes (Node).';

function patchGlue(glue) {
  const sentinel = [
    '// Until init: any use of the wasm throws this (added by js/package/assemble.mjs).',
    'const NOT_READY = new Proxy({}, {',
    `  get() { throw new Error(${JSON.stringify(NOT_READY_MESSAGE)}); },`,
    '});',
    'let wasmModule, wasmInstance, wasm = NOT_READY;',
  ].join('\n');
  let text = replaceExactly(glue, 'let wasmModule, wasmInstance, wasm;', sentinel, 1);
  text = replaceExactly(text, 'if (wasm !== undefined) return wasm;', 'if (wasm !== NOT_READY) return wasm;', 2);
  if (/wasm\s*[!=]==?\s*undefined|typeof wasm\b/.test(text)) fail('the glue tests `wasm` in a way this patch does not know');
  return text;
}

const INIT_NAMES = new Set(['default', 'initSync', 'InitInput', 'InitOutput', 'SyncInitInput']);
const glue = readFileSync(join(out, 'edgebatch.js'), 'utf8');
const types = readFileSync(join(out, 'edgebatch.d.ts'), 'utf8');
// The library's API: what the glue exports, minus the init functions.
const values = [...glue.matchAll(/^export (?:class|function) (\w+)/gm)].map((m) => m[1]).filter((n) => !INIT_NAMES.has(n));
const declared = (kinds) =>
  [...types.matchAll(new RegExp(`^export (?:declare )?(?:${kinds}) (\\w+)`, 'gm'))].map((m) => m[1]).filter((n) => !INIT_NAMES.has(n));
// ResultStream is a value without declarations of its own (stream() is typed as AsyncIterable).
const typedValues = declared('class|function');
const typeOnly = declared('interface|type');
if (!values.includes('BatchProcessor')) fail('the glue exports no BatchProcessor');

// The post-processing host module (src/web/post.js), where the Node and browser entries
// install their worker pool: wasm-bindgen names its snippet folder by a hash.
const postSnippet = /from '\.\/(snippets\/[^']+\/src\/web\/post\.js)'/.exec(glue)?.[1] ?? fail('the glue imports no src/web/post.js');
writeFileSync(join(out, 'edgebatch.js'), patchGlue(glue));
for (const entry of ['node.js', 'edge.js', 'browser.js']) {
  let text = replaceExactly(readFileSync(join(here, entry), 'utf8'), '__EXPORTS__', values.join(', '), 1);
  if (entry !== 'edge.js') text = replaceExactly(text, '__POST_SNIPPET__', postSnippet, 1);
  writeFileSync(join(out, entry), text);
}
writeFileSync(
  join(out, 'index.d.ts'),
  '// The types of "edgebatch" on every host (the entries differ only in how they load the wasm).\n' +
    `export { ${typedValues.join(', ')} } from "./edgebatch.js";\n` +
    `export type { ${typeOnly.join(', ')} } from "./edgebatch.js";\n`,
);
for (const file of ['edgebatch_bg.wasm.d.ts', 'raw.js', 'raw.d.ts', 'post-pool.js', 'bun-worker.js']) copyFileSync(join(here, file), join(out, file));

const fields = {
  __VERSION__: cargoField('version'),
  __DESCRIPTION__: cargoField('description'),
  __LICENSE__: cargoField('license'),
  __REPOSITORY__: cargoField('repository'),
};
let manifest = readFileSync(join(here, 'package.json'), 'utf8');
for (const [key, value] of Object.entries(fields)) {
  manifest = manifest.split(key).join(JSON.stringify(value).slice(1, -1));
}
writeFileSync(join(out, 'package.json'), JSON.stringify(JSON.parse(manifest), null, 2) + '\n');
copyFileSync(join(here, 'README.md'), join(out, 'README.md'));
for (const licence of ['LICENSE-MIT', 'LICENSE-APACHE']) copyFileSync(join(root, licence), join(out, licence));
