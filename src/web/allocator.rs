//! The wasm build's global allocator (cargo feature `wasm-allocator`, off by default; the npm
//! package's and the Worker's builds turn it on in scripts/build.sh): talc
//! instead of std's dlmalloc. Why: dlmalloc was the largest single part of the npm wasm
//! (7.2 KB of code); with talc the wasm is 6.8 KB smaller (2.6 KB gzip). Memory grows as
//! with dlmalloc (`memory.grow`, the last heap extended in place).
//!
//! Off by default because a binary has one global allocator and it is the program's choice: a
//! Rust program using edgebatch keeps its own (or std's) unless it enables the feature.

// Threads (the `atomics` target feature) would need a lock; no build of ours uses them.
#[cfg(not(target_feature = "atomics"))]
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();
