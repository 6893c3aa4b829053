// What TypeScript Worker templates declare for wrangler's CompiledWasm modules. The package's
// own typing of "edgebatch/edgebatch_bg.wasm" must not clash with it (issue 9: TS1192).
declare module '*.wasm' {
  const module: WebAssembly.Module;
  export default module;
}
