// For `vite` (the dev server) only: its dependency pre-bundling moves edgebatch's browser entry
// away from the wasm beside it (the fetch 404s); `vite build` needs nothing.
export default { optimizeDeps: { exclude: ['edgebatch'] } };
