// Loads the built wasm package (pkg/, written by `make build`) synchronously for Node tests.
import { readFileSync, existsSync } from 'node:fs';

const wasmUrl = new URL('../../pkg/edgebatch_bg.wasm', import.meta.url);
if (!existsSync(wasmUrl)) {
  throw new Error(`pkg/edgebatch_bg.wasm not found (${wasmUrl.pathname}): run \`make build\` first`);
}

const mod = await import('../../pkg/edgebatch.js');
// The wasm exports (its `memory` among them), for tests of what stays out of wasm memory.
export const wasm = mod.initSync({ module: readFileSync(wasmUrl) });

export const { BatchProcessor } = mod;
export const pkg = mod;
