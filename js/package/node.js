// edgebatch for Node (the `node` condition): reads the wasm beside this file and initialises
// it synchronously, so `import` (and `require`, Node >= 20.19) needs no init call.
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { initSync } from './edgebatch.js';
import { poolHost } from './post-pool.js';
import { setPostHost } from './__POST_SNIPPET__';

initSync({ module: readFileSync(new URL('./edgebatch_bg.wasm', import.meta.url)) });
// postProcess runs on worker_threads (a pool per call). Bun takes this entry too; its worker
// threads need their own worker script (see bun-worker.js), Node and Deno run workerpool's.
setPostHost(poolHost({
  cores: availableParallelism(),
  resolvePath: (p) => pathToFileURL(p).href,
  workerType: 'thread',
  workerScript: 'Bun' in globalThis ? fileURLToPath(new URL('./bun-worker.js', import.meta.url)) : undefined,
}));

export { __EXPORTS__ } from './edgebatch.js';
