// edgebatch for browsers and bundlers (the `browser` and `default` conditions): fetches and
// instantiates the wasm beside this file with top-level await. Bundlers that understand
// `new URL("./x.wasm", import.meta.url)` (Vite, webpack 5, Rollup with a URL plugin) emit the
// wasm as an asset and rewrite the URL; a plain page with an import map loads it as is.
import init from './edgebatch.js';

await init({ module_or_path: new URL('./edgebatch_bg.wasm', import.meta.url) });

export { __EXPORTS__ } from './edgebatch.js';
