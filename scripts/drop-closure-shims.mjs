// Empties the closure invoke shims that wasm-bindgen leaves behind but nothing can call
// (run by scripts/build.sh between wasm-bindgen and wasm-opt: -0.4 KB gzip on the npm wasm).
//
// Every js-sys import that takes a callback (`Array.forEach`, `Int8Array.find`, `Set.forEach`,
// ...) has a describe function, exported to wasm-bindgen, that writes its closure's invoke shim's
// table index (`inform(invoke::<A, B, R> as u32)` in wasm-bindgen's convert/closures.rs). LLVM
// puts every such shim in the function table; wasm-bindgen runs the describes, then removes them,
// but not their table entries, so wasm-opt keeps ~40 shims of 80-130 bytes each, almost all for
// imports this crate never calls. A shim's index is only ever written by a describe: JS calls a
// closure through the shim's export (wasm-bindgen's `externref shim`, which calls it directly),
// never through the table (which stays private: this fails if the wasm exports it). So a shim
// that is neither exported nor called directly is dead; its body becomes `unreachable` (its
// table slot stays, so no index moves) and wasm-opt folds them.
//
//   node scripts/drop-closure-shims.mjs <in.wasm> <its wasm-opt --print-call-graph> <out.wasm>
import { readFileSync, writeFileSync } from 'node:fs';

const [inPath, graphPath, outPath] = process.argv.slice(2);
if (!outPath) throw new Error('usage: node scripts/drop-closure-shims.mjs <in.wasm> <calls.dot> <out.wasm>');
const fail = (message) => {
  throw new Error(`drop-closure-shims: ${inPath}: ${message}`);
};
// wasm-bindgen's shim, by its legacy-mangled name (`..._::invoke::h<hash>`).
const SHIM = /^wasm_bindgen::convert::closures::_::invoke::h[0-9a-f]{16}$/;

// Every function something calls directly: the targets of the call graph's edges.
const called = new Set(
  [...readFileSync(graphPath, 'utf8').matchAll(/^ {2}"[^"]+" -> "([^"]+)"/gm)].map((m) => m[1]),
);
if (called.size === 0) fail(`no direct calls in ${graphPath}: not wasm-opt's --print-call-graph output`);

const wasm = readFileSync(inPath);
let at = 8;
const uleb = () => {
  let value = 0;
  let shift = 0;
  let byte;
  do {
    byte = wasm[at++];
    value += (byte & 0x7f) * 2 ** shift;
    shift += 7;
  } while (byte & 0x80);
  return value;
};
const encode = (n) => {
  const bytes = [];
  do {
    let byte = n & 0x7f;
    n = Math.floor(n / 128);
    if (n) byte |= 0x80;
    bytes.push(byte);
  } while (n);
  return Buffer.from(bytes);
};
const skipName = () => {
  const length = uleb();
  at += length;
};
const skipLimits = () => {
  const flags = uleb();
  uleb();
  if (flags & 1) uleb();
};

const sections = [];
let importedFunctions = 0;
const exported = new Set();
const names = new Map();
// Each table's element type, imported ones first (0x70 funcref: the function table; wasm-bindgen
// also has an externref table, which it exports).
const tables = [];
while (at < wasm.length) {
  const start = at;
  const id = wasm[at++];
  const size = uleb();
  const body = at;
  const end = at + size;
  if (id === 2) {
    for (let n = uleb(); n > 0; n--) {
      skipName();
      skipName();
      const kind = wasm[at++];
      if (kind === 0) {
        uleb();
        importedFunctions++;
      } else if (kind === 1) {
        tables.push(wasm[at++]);
        skipLimits();
      } else if (kind === 2) skipLimits();
      else if (kind === 3) at += 2;
      else if (kind === 4) {
        at++;
        uleb();
      } else fail(`an import of unknown kind ${kind}`);
    }
  } else if (id === 4) {
    for (let n = uleb(); n > 0; n--) {
      tables.push(wasm[at++]);
      skipLimits();
    }
  } else if (id === 7) {
    for (let n = uleb(); n > 0; n--) {
      skipName();
      const kind = wasm[at++];
      const index = uleb();
      if (kind === 0) exported.add(index);
      // JS could then call any table entry: no shim would be provably dead.
      if (kind === 1 && tables[index] === 0x70) fail('the function table is exported');
    }
  } else if (id === 0) {
    const nameLength = uleb();
    const name = wasm.subarray(at, at + nameLength).toString();
    at += nameLength;
    if (name === 'name') {
      while (at < end) {
        const sub = wasm[at++];
        const subEnd = uleb() + at;
        if (sub === 1) {
          for (let n = uleb(); n > 0; n--) {
            const index = uleb();
            const length = uleb();
            names.set(index, wasm.subarray(at, at + length).toString());
            at += length;
          }
        }
        at = subEnd;
      }
    }
  }
  sections.push({ id, start, body, end });
  at = end;
}
if (names.size === 0) fail('no function names (wasm-bindgen ran with --remove-name-section?)');

// An empty body: no locals, `unreachable`, `end`.
const STUB = Buffer.from([3, 0, 0x00, 0x0b]);
const out = [wasm.subarray(0, 8)];
let dropped = 0;
let bytes = 0;
for (const section of sections) {
  if (section.id !== 10) {
    out.push(wasm.subarray(section.start, section.end));
    continue;
  }
  at = section.body;
  const count = uleb();
  const bodies = [encode(count)];
  for (let i = 0; i < count; i++) {
    const start = at;
    const size = uleb();
    at += size;
    const index = importedFunctions + i;
    const name = names.get(index) ?? '';
    if (SHIM.test(name) && !exported.has(index) && !called.has(name)) {
      bodies.push(STUB);
      dropped++;
      bytes += size;
    } else bodies.push(wasm.subarray(start, at));
  }
  const code = Buffer.concat(bodies);
  out.push(Buffer.from([10]), encode(code.length), code);
}
writeFileSync(outPath, Buffer.concat(out));
console.log(`drop-closure-shims: ${inPath}: ${dropped} uncallable closure shims emptied (${bytes} bytes)`);
