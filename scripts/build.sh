#!/usr/bin/env bash
# Builds pkg/ (the npm package: the library's wasm, one wasm-bindgen `--target web` build that
# serves browser, workerd and Node, with an entry per host) and sim/pkg/ (the simulator's wasm).
# Needs scripts/setup.sh to have run (wasm-bindgen in .tools/, binaryen in node_modules/).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

die() { printf 'build: error: %s\n' "$*" >&2; exit 1; }

wasm_bindgen=.tools/bin/wasm-bindgen
# The npm binaryen, by path: `npx wasm-opt` may silently pick a system wasm-opt, and
# Debian's binaryen (108) breaks wasm-bindgen output.
wasm_opt=node_modules/binaryen/bin/wasm-opt
[ -x "$wasm_bindgen" ] || die "$wasm_bindgen is missing; run scripts/setup.sh (or make setup)"
[ -f "$wasm_opt" ] || die "$wasm_opt is missing; run scripts/setup.sh (or make setup)"

# One crate's wasm: cargo, then wasm-bindgen `--target web`, then wasm-opt (uncallable closure
# shims emptied, the import and export names minified, then opt_first, `level` and opt_flags
# below), into $3.
#   build_wasm <cargo package> <wasm file stem> <out dir> <out name> [features] [level]
build_wasm() {
  local package=$1 stem=$2 out=$3 name=$4 features=${5:-} level=${6:--Os}
  cargo build --quiet --release --target wasm32-unknown-unknown -p "$package" ${features:+--features "$features"}
  local raw=target/wasm32-unknown-unknown/release/$stem.wasm
  [ -f "$raw" ] || die "cargo did not produce $raw"
  rm -rf "$out"
  "$wasm_bindgen" --target web --out-dir "$out" --out-name "$name" "$raw"
  local bindgen_size
  bindgen_size=$(wc -c <"$out/${name}_bg.wasm")
  local tmp
  tmp=$(mktemp -d)
  # Before the optimisations: the closure invoke shims that wasm-bindgen leaves in the function
  # table for js-sys imports this crate never calls are emptied (scripts/drop-closure-shims.mjs:
  # -0.4 KB gzip on the npm wasm and the Worker's), found in the call graph of wasm-bindgen's
  # output, which still has its function names; then the names (scripts/minify-names.mjs: -2.1
  # KB gzip on the npm wasm, -2.7 KB on the Worker's, -1 KB on the simulator's; before the
  # optimisations, which then lay out the module for the short names: 0.2 KB better than after
  # them), and after them the glue rewritten to the names.
  node "$wasm_opt" "${opt_features[@]}" "$out/${name}_bg.wasm" --print-call-graph -o /dev/null >"$tmp/calls.dot"
  node scripts/drop-closure-shims.mjs "$out/${name}_bg.wasm" "$tmp/calls.dot" "$tmp/shims.wasm"
  node "$wasm_opt" --minify-imports-and-exports-and-modules "${opt_features[@]}" \
    "$tmp/shims.wasm" -o "$tmp/min.wasm" >"$tmp/names.json"
  node "$wasm_opt" "${opt_first[@]}" "$level" "${opt_flags[@]}" "${opt_features[@]}" "$tmp/min.wasm" -o "$out/${name}_bg.wasm"
  node scripts/minify-names.mjs "$out/$name.js" "$tmp/names.json" "$out/${name}_bg.wasm"
  rm -r "$tmp"
  # Gzipped as tests/js/size.test.mjs measures it (node's zlib, level 9; `gzip -9` differs by
  # a few hundred bytes), so the number printed is the one the budget checks.
  node -e 'const b = require("fs").readFileSync(process.argv[1]);
    const gz = require("zlib").gzipSync(b, { level: 9 }).length;
    console.log(`build: ${process.argv[1]} ${b.length} bytes raw, ${gz} bytes gzipped (zlib level 9; ${process.argv[2]} bytes before wasm-opt)`);' \
    "$out/${name}_bg.wasm" "$bindgen_size"
}

# -Os for the library (-Oz for the simulator), repeated by `--converge` until it gains
# nothing more (a few hundred bytes, a few seconds). -Os leaves the library 2 KB larger raw
# than -Oz but 0.15 KB smaller gzipped (the Worker's 0.2 KB; the simulator's is 30 bytes
# larger, so it stays -Oz). Then for the gzipped size, which is what hosts and the budget
# count (measured on the npm wasm, issue 25):
# - `--one-caller-inline-max-function-size=25`: binaryen inlines a function with one caller
#   whatever its size by default, which merged the executor's, the options' and a request's
#   code into a few 12 KB functions; their many locals take longer indexes and repeat less,
#   so the module compresses worse. Inlining only small ones: 2 KB raw larger, 2.7 KB gzip
#   smaller (10 to 40 all gave 2.2-2.7 KB; 25 was the best).
# - `--strip-producers --strip-target-features`: the toolchain names and the feature list
#   (the flags below name the features), which no host reads: -0.2 KB gzip.
# - `--low-memory-unused`: lets wasm-opt fold a pointer's constant offsets into its loads and
#   stores, which is exact unless the program touches the lowest 1 KB of memory. rustc's wasm32
#   layout puts the 1 MB stack first, growing down from 1 MB to 0, and the statics above it, so
#   only a stack 1 KB short of overflowing would: -0.17 KB gzip.
opt_flags=(--converge --one-caller-inline-max-function-size=25 --strip-producers --strip-target-features
  --low-memory-unused)
# Before `level`: `--gufa`, binaryen's whole-module flow analysis (the values that can reach each
# parameter, result and global from every caller, exports and the table's callers included),
# which turns what is always one constant into it for -Os to fold: -0.06 KB gzip on the npm
# wasm, -0.04 KB on the Worker's, -0.02 KB on the simulator's (after -Os it gained 0.015 KB).
opt_first=(--gufa)

# wasm-opt learns which wasm features are enabled from the module's `target_features`
# section, which `strip = true` removes; plain -Oz then rejects what rustc emits by
# default (memory.copy, ...). So name rustc's wasm32 features explicitly, read from
# rustc itself so a toolchain update cannot leave the list behind.
opt_features=()
# shellcheck disable=SC2086 # RUSTFLAGS is a space-separated list by definition
for feature in $(rustc --print cfg --target wasm32-unknown-unknown ${RUSTFLAGS:-} |
  sed -n 's/^target_feature="\(.*\)"$/\1/p'); do
  case $feature in
    bulk-memory) opt_features+=(--enable-bulk-memory --enable-bulk-memory-opt) ;;
    nontrapping-fptoint) opt_features+=(--enable-nontrapping-float-to-int) ;;
    simd128) opt_features+=(--enable-simd) ;;
    atomics) opt_features+=(--enable-threads) ;;
    multivalue | mutable-globals | reference-types | sign-ext | relaxed-simd | tail-call | \
      extended-const | multimemory | exception-handling | call-indirect-overlong | fp16)
      opt_features+=("--enable-$feature") ;;
    *) die "rustc enables wasm feature '$feature'; scripts/build.sh has no wasm-opt flag for it" ;;
  esac
done

# The library: pkg/ is the npm package root. wasm-bindgen's glue stays the `edgebatch/raw`
# entry; js/package/assemble.mjs adds the per-host entries, package.json, README, LICENSEs.
build_wasm edgebatch edgebatch pkg edgebatch wasm-allocator
node js/package/assemble.mjs pkg

# The simulated AI API: its own crate and wasm in sim/pkg/, never part of the npm package.
# Loaded by js/sim-wasm.mjs (Node), the Worker's dev mode, the tests and the benchmarks.
build_wasm edgebatch-sim edgebatch_sim sim/pkg edgebatch_sim "" -Oz

# The Worker's build: the library plus the `Limiter` export of /v1/batches' shared limiter.
build_wasm edgebatch edgebatch worker/pkg edgebatch limiter,wasm-allocator

# The demo page loads the same build from www/pkg (the Worker serves www/ as static assets).
rm -rf www/pkg
mkdir -p www/pkg
cp -R pkg/edgebatch.js pkg/edgebatch_bg.wasm pkg/snippets www/pkg/
