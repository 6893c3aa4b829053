// Points wasm-bindgen's glue at a wasm whose import and export names wasm-opt minified
// (`--minify-imports-and-exports-and-modules`, run by scripts/build.sh: -2.1 KB gzip on the
// npm wasm, whose names were a few hundred `__wbg_set_headers_6d75a7df4eb22716`-like strings).
// wasm-opt prints the old -> new names as JSON; this rewrites the glue to match:
// - imports: the keys of the glue's import object become the short names, the snippet
//   modules' functions join that object, and the wasm gets it as its one module;
// - exports: the glue (and `init`/`initSync`'s callers, typed by `InitOutput`) keep using
//   wasm-bindgen's names, through an object that maps each one to its short export.
// Fails, rather than writing a glue that would throw at init, on anything it does not know.
//
//   node scripts/minify-names.mjs <glue.js> <wasm-opt's map.json> <the minified .wasm>
import { readFileSync, writeFileSync } from 'node:fs';

const [gluePath, mapPath, wasmPath] = process.argv.slice(2);
if (!wasmPath) throw new Error('usage: node scripts/minify-names.mjs <glue.js> <map.json> <minified .wasm>');
const fail = (message) => {
  throw new Error(`minify-names: ${gluePath}: ${message}`);
};

const map = JSON.parse(readFileSync(mapPath, 'utf8'));
let glue = readFileSync(gluePath, 'utf8');

/** Replaces the one `from` in `glue`, or fails (the glue changed shape). */
function replaceOnce(from, to) {
  const found = glue.split(from).length - 1;
  if (found !== 1) fail(`expected one ${JSON.stringify(from)}, found ${found}`);
  glue = glue.replace(from, () => to);
}

// The import object, as wasm-bindgen writes it: `const import0 = { __proto__: null, <name>:
// function ... }` for its own functions, then `return { __proto__: null, "<module>": importN }`
// where the snippets' `importN` are their module namespaces (`import * as importN from`).
const imports = /^function __wbg_get_imports\(\) \{\n    const import0 = \{\n([\s\S]*?)\n    \};\n    return \{\n        __proto__: null,\n((?:        "[^"]+": import\d+,\n)+)    \};\n\}\n/m.exec(glue);
if (!imports) fail('no __wbg_get_imports() of the expected shape');
const moduleObjects = new Map([...imports[2].matchAll(/"([^"]+)": (import\d+),/g)].map((m) => [m[1], m[2]]));
let body = imports[1];
const snippetEntries = [];
for (const [module, name, short] of map.imports) {
  if (short === undefined) fail(`import ${module} ${name} has no short name`);
  const object = moduleObjects.get(module) ?? fail(`the wasm imports module ${module}, the glue has no object for it`);
  if (!/^[A-Za-z_$][\w$]*$/.test(name)) fail(`import name ${JSON.stringify(name)} is not an identifier`);
  if (object === 'import0') {
    // A key of import0's own functions, always at its 8-space indentation.
    const key = new RegExp(`^        ${name.replace(/\$/g, '\\$')}:`, 'gm');
    const found = body.match(key)?.length ?? 0;
    if (found !== 1) fail(`expected one import0 key ${name}, found ${found}`);
    body = body.replace(key, `        ${JSON.stringify(short)}:`);
  } else {
    snippetEntries.push(`        ${JSON.stringify(short)}: ${object}.${name},`);
  }
}
// `--minify-imports-and-exports-and-modules` puts every import in one module (named `a`):
// read its name from the wasm, and check that every import of the wasm is mapped (wasm-opt may
// have dropped some since, whose glue functions are then left under their long names).
const wasm = new WebAssembly.Module(readFileSync(wasmPath));
const wasmImports = WebAssembly.Module.imports(wasm);
const wasmModules = new Set(wasmImports.map((i) => i.module));
if (wasmModules.size !== 1) fail(`the wasm imports from ${wasmModules.size} modules, not one`);
const [wasmModule] = wasmModules;
const shortNames = new Set(map.imports.map(([, , short]) => short));
for (const { name } of wasmImports) if (!shortNames.has(name)) fail(`the wasm imports ${name}, which is not in the map`);
const wasmExports = new Set(WebAssembly.Module.exports(wasm).map((e) => e.name));
glue = glue.replace(
  imports[0],
  () =>
    `function __wbg_get_imports() {\n    const import0 = {\n${body}\n${snippetEntries.join('\n')}${snippetEntries.length ? '\n' : ''}    };\n` +
    `    // One module, short names: see scripts/minify-names.mjs.\n    return { __proto__: null, ${JSON.stringify(wasmModule)}: import0 };\n}\n`,
);

// The exports: wasm-bindgen's names for the short ones.
const exportNames = Object.fromEntries(map.exports.map(([name, short]) => [name, short]));
for (const short of Object.values(exportNames)) if (!wasmExports.has(short)) fail(`the wasm has no export ${short}`);
if (wasmExports.size !== map.exports.length) fail('the wasm has exports the map does not name');
replaceOnce(
  '    wasm = instance.exports;\n',
  '    wasm = __wbg_named_exports(instance.exports);\n',
);
replaceOnce(
  'function __wbg_finalize_init(',
  '// wasm-opt shortened the export names (scripts/minify-names.mjs): the glue and InitOutput use\n' +
    "// wasm-bindgen's names for them.\n" +
    `const EXPORT_NAMES = ${JSON.stringify(exportNames)};\n` +
    'function __wbg_named_exports(exports) {\n' +
    '    const named = { __proto__: null };\n' +
    '    for (const name in EXPORT_NAMES) named[name] = exports[EXPORT_NAMES[name]];\n' +
    '    return Object.freeze(named);\n' +
    '}\n' +
    'function __wbg_finalize_init(',
);
// Every `wasm.<name>` the glue uses must be one of the mapped exports.
for (const [, name] of glue.matchAll(/\bwasm\.(\w+)/g)) {
  if (!(name in exportNames)) fail(`the glue uses wasm.${name}, which the wasm does not export`);
}
writeFileSync(gluePath, glue);
