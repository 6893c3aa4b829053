// edgebatch for Node (the `node` condition): reads the wasm beside this file and initialises
// it synchronously, so `import` (and `require`, Node >= 20.19) needs no init call.
import { readFileSync } from 'node:fs';
import { initSync } from './edgebatch.js';

initSync({ module: readFileSync(new URL('./edgebatch_bg.wasm', import.meta.url)) });

export { __EXPORTS__ } from './edgebatch.js';
