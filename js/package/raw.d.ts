// The types of `edgebatch/raw`: the library's API plus wasm-bindgen's `init` and `initSync`.
export * from './edgebatch.js';
export { default } from './edgebatch.js';
