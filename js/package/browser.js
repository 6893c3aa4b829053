// edgebatch for browsers and bundlers (the `browser` and `default` conditions): fetches and
// instantiates the wasm beside this file with top-level await. Bundlers that understand
// `new URL("./x.wasm", import.meta.url)` (Vite, webpack 5, Rollup with a URL plugin) emit the
// wasm as an asset and rewrite the URL; a plain page with an import map loads it as is.
import init from './edgebatch.js';
import { poolHost } from './post-pool.js';
import { setPostHost } from './__POST_SNIPPET__';

await init({ module_or_path: new URL('./edgebatch_bg.wasm', import.meta.url) });
// postProcess runs on Web Workers (a pool per call); an absolute path is one of this site.
setPostHost(poolHost({
  cores: globalThis.navigator?.hardwareConcurrency,
  resolvePath: (p) => new URL(p, globalThis.location?.href).href,
  workerType: 'web',
}));

export { __EXPORTS__ } from './edgebatch.js';
