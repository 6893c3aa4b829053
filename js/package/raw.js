// `edgebatch/raw`: wasm-bindgen's glue with its manual `init` / `initSync`, for hosts where
// you must control loading. (A file of its own so that resolvers without `exports`
// support, TypeScript's node10 included, find it too.)
export * from './edgebatch.js';
export { default } from './edgebatch.js';
