// edgebatch for Cloudflare Workers and other edge runtimes (the `workerd`, `worker` and
// `edge-light` conditions): the wasm is imported as a compiled WebAssembly.Module (wrangler's
// default CompiledWasm rule for `.wasm`, no [[rules]] needed) and initialised synchronously:
// workerd allows no fetch of the wasm at startup, and the web entry's `new URL(...,
// import.meta.url)` is not a valid URL there. esbuild's `--loader:.wasm=binary` also fits this
// entry: the import is then the bytes, which initSync compiles.
import wasm from './edgebatch_bg.wasm';
import { initSync } from './edgebatch.js';

initSync({ module: wasm });
// postProcess: no threads on workerd, so no runner is installed: values are processed inline,
// one at a time, in slices that give the event loop back (src/web/post.js).

export { __EXPORTS__ } from './edgebatch.js';
