#!/usr/bin/env bash
# Builds the Rust Worker without worker-build (it downloads wasm-bindgen, wasm-opt and esbuild
# at build time): cargo, then the repository's wasm-bindgen CLI (.tools/bin, the version of
# Cargo.lock) with --target web into pkg/. shim.mjs is the Worker's entry.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
wasm_bindgen=../../.tools/bin/wasm-bindgen
[ -x "$wasm_bindgen" ] || { echo "build: $wasm_bindgen is missing; run make setup" >&2; exit 1; }
start=$(date +%s)
cargo build --quiet --release --target wasm32-unknown-unknown
rm -rf pkg
"$wasm_bindgen" --target web --out-dir pkg --out-name worker \
  target/wasm32-unknown-unknown/release/edgebatch_workers_rs_example.wasm
printf 'build: examples/workers-rs/pkg/worker_bg.wasm %s bytes raw, %s bytes gzip -9 (%s s)\n' \
  "$(wc -c <pkg/worker_bg.wasm)" "$(gzip -9c pkg/worker_bg.wasm | wc -c)" "$(($(date +%s) - start))"
