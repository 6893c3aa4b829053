#!/usr/bin/env bash
# Builds pkg/: one wasm-bindgen `--target web` build that serves browser, workerd and Node.
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

# EDGEBATCH_LEAN=1 builds the library without the simulator (cargo feature `sim` off) into
# target/pkg-lean: the size a user who ships no simulator pays (printed by `make bench`).
out=pkg
target_dir=target
features=()
if [ "${EDGEBATCH_LEAN:-0}" = 1 ]; then
  out=target/pkg-lean target_dir=target/lean features=(--no-default-features)
fi
cargo build --quiet --release --target wasm32-unknown-unknown --target-dir "$target_dir" "${features[@]}"
raw=$target_dir/wasm32-unknown-unknown/release/edgebatch.wasm
[ -f "$raw" ] || die "cargo did not produce $raw"

rm -rf "$out"
"$wasm_bindgen" --target web --out-dir "$out" --out-name edgebatch "$raw"

bindgen_size=$(wc -c <"$out"/edgebatch_bg.wasm)

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

opt_tmp="$out"/edgebatch_bg.opt.wasm
node "$wasm_opt" -Oz "${opt_features[@]}" "$out"/edgebatch_bg.wasm -o "$opt_tmp"
mv "$opt_tmp" "$out"/edgebatch_bg.wasm

# pkg/package.json, with the version, description and license from Cargo.toml.
cargo_field() {
  awk -v key="$1" '
    /^\[/ { in_pkg = ($0 == "[package]") }
    in_pkg && $1 == key && $2 == "=" {
      sub(/^[^=]*=[ \t]*"/, ""); sub(/"[ \t]*$/, ""); print; exit
    }' Cargo.toml
}
version=$(cargo_field version) description=$(cargo_field description) license=$(cargo_field license)
(cd "$out" && ls -1A) | node -e '
  const [version, description, license] = process.argv.slice(1);
  const files = require("fs").readFileSync(0, "utf8").split("\n")
    .filter((f) => f && f !== "package.json" && f !== ".gitignore");
  const pkg = {
    name: "edgebatch",
    version,
    ...(description && { description }),
    ...(license && { license }),
    type: "module",
    main: "edgebatch.js",
    types: "edgebatch.d.ts",
    files,
    sideEffects: ["./snippets/*"],
  };
  process.stdout.write(JSON.stringify(pkg, null, 2) + "\n");
' "$version" "$description" "$license" >"$out"/package.json

# The demo page loads the same build from www/pkg (the Worker serves www/ as static assets).
if [ "$out" = pkg ]; then
  rm -rf www/pkg
  mkdir -p www/pkg
  cp -R pkg/edgebatch.js pkg/edgebatch_bg.wasm pkg/snippets www/pkg/
fi

raw_size=$(wc -c <"$out"/edgebatch_bg.wasm)
gz_size=$(gzip -9c "$out"/edgebatch_bg.wasm | wc -c)
printf 'build: %s/edgebatch_bg.wasm %s bytes raw, %s bytes gzip -9 (%s bytes before wasm-opt)\n' \
  "$out" "$raw_size" "$gz_size" "$bindgen_size"
