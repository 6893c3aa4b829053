// The simulator's own wasm (sim/pkg/, written by `make build`; not part of the edgebatch
// package), initialised synchronously for Node: `import { Simulator } from "./sim-wasm.mjs"`.
import { existsSync, readFileSync } from 'node:fs';

const wasmUrl = new URL('../sim/pkg/edgebatch_sim_bg.wasm', import.meta.url);
if (!existsSync(wasmUrl)) {
  throw new Error(`sim/pkg/edgebatch_sim_bg.wasm not found (${wasmUrl.pathname}): run \`make build\` first`);
}
const sim = await import('../sim/pkg/edgebatch_sim.js');
sim.initSync({ module: readFileSync(wasmUrl) });

export const { Simulator } = sim;
