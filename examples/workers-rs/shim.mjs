// The Worker's entry, written by hand in place of worker-build's (which downloads its tools at
// build time): one `wasm-bindgen --target web` build, the wasm imported as a compiled module
// (workerd cannot fetch it) and instantiated once per isolate; the `fetch` that
// `#[event(fetch)]` exports handles each request.
import { initSync, fetch as handle } from './pkg/worker.js';
import wasm from './pkg/worker_bg.wasm';

initSync({ module: wasm });

export default {
  fetch(request, env, ctx) {
    return handle(request, env, ctx);
  },
};
