// `import wasm from "edgebatch/edgebatch_bg.wasm"`: in a Worker (wrangler's CompiledWasm rule)
// and in bundlers that load `.wasm` as a module, a compiled WebAssembly.Module for
// `initSync({ module: wasm })` from "edgebatch/raw". (Replaces wasm-bindgen's declaration of
// the raw exports, which no user imports and which hid any `declare module "*.wasm"`.)
declare const wasm: WebAssembly.Module;
export default wasm;
