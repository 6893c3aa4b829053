# edgebatch build and test pipeline. `make test` is what CI runs (.ci/run).
#   make setup   toolchain, wasm-bindgen-cli (= Cargo.lock), npm devDependencies, chromium
#   make build   pkg/ (the npm package: the library wasm, an entry per host), sim/pkg/ (the
#                simulator's own wasm) and worker/pkg/ (the library with the `limiter` feature,
#                for the Worker); wasm-bindgen --target web, wasm-opt (-Os; -Oz for the simulator),
#                then the wasm's import and export names minified and the JS glue rewritten to match
#   make test    fmt, clippy (native + wasm), native tests, wasm tests in Node and
#                headless Chromium, JS tests, TypeScript declaration check, the packed npm
#                package in consumer projects (Node, a Worker, tsc, Vite/esbuild), the Worker on
#                workerd and the CLI, the demo page in headless Chromium
#   make run     the Worker under `wrangler dev` on 127.0.0.1:8787 with the simulator, a
#                200-document batch through it with the CLI, a 2,000-request stored batch
#                (/v1/batches, resumed by the next make run if stopped), then serving the demo
#                page (http://127.0.0.1:8787/) until Ctrl-C
#   make bench   overhead, pacing and memory benchmarks, /v1/batches throughput and cost,
#                CPU post-processing inline vs offloaded (postProcess), the Python SDK's
#                realtime calls in 1/3/8 processes direct to the simulator vs through the
#                Worker's /anthropic (items/s, errors, added latency), prompt caching's
#                dollars and wall time with and without cacheAware, wasm sizes
#   make mutants mutation testing (cargo-mutants, pinned, into .tools/) of all of src/core
#                (src/core/adaptive/ too), src/providers and src/options/:
#                caught / missed / timeout / unviable per file. Slow, not
#                part of `make test`. SHARD=k/n samples one shard of n;
#                FILES="src/core/pacer/mod.rs" narrows it; MUTANTS_TIMEOUT=60 per mutant (s);
#                TEST_ARGS="--skip sim::" goes to the test binaries
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := build
# One step at a time: the steps share target/ and print in order.
.NOTPARALLEL:

# The wasm-bindgen CLI that matches Cargo.lock lives here; it must win over any other.
export PATH := $(CURDIR)/.tools/bin:$(PATH)

WASM_TARGET := --target wasm32-unknown-unknown

.PHONY: setup build test lint test-native test-wasm test-js test-types test-package test-worker test-www test-workers-rs run bench mutants clean

setup:
	@scripts/setup.sh

build: setup
	@scripts/build.sh

test: build lint test-native test-wasm test-js test-types test-package test-worker test-www test-workers-rs
	@echo "make test: all passed"

lint: setup
	@echo "==> cargo fmt --check"
	@cargo fmt --check
	@echo "==> cargo clippy (native)"
	@cargo clippy --quiet --workspace --all-targets -- -D warnings
	@echo "==> cargo clippy (wasm32)"
	@cargo clippy --quiet --workspace $(WASM_TARGET) --all-targets --all-features -- -D warnings

test-native: setup
	@echo "==> cargo test (native: the library and the simulator crate)"
	@cargo test --quiet --workspace

# Not `cargo test -q` for wasm: cargo passes --quiet on to wasm-bindgen-test-runner,
# which rejects it. Doctests are left to the native run (see scripts/test-wasm.sh).
test-wasm: setup
	@echo "==> wasm tests (Node, headless Chromium)"
	@# --features rust-api: tests/rust_api.rs (the Rust API, edgebatch::wasm) runs beside tests/web.rs.
	@scripts/test-wasm.sh -- --features rust-api

test-js: build
	@echo "==> node --test tests/js/"
	@ls tests/js/*.test.mjs >/dev/null 2>&1 || { echo "no tests/js/*.test.mjs found" >&2; exit 1; }
	@node --test tests/js/

test-types: build
	@echo "==> tsc -p tests/types --noEmit; tsc -p worker/tsconfig.json (the Worker's // @ts-check files)"
	@node_modules/.bin/tsc -p tests/types --noEmit
	@node_modules/.bin/tsc -p worker/tsconfig.json

# The npm package as users get it: `npm pack ./pkg`, installed offline into throwaway consumer
# projects (Node import/require, a user's Worker on workerd, tsc --strict, Vite and esbuild
# pages in headless Chromium, Bun and Deno from their npm packages), plus publint and
# arethetypeswrong on the tarball.
test-package: build
	@echo "==> node --test tests/package (consumer projects of the packed tarball)"
	@node --test tests/package/

# The Worker on real workerd (Miniflare), its bundle (wrangler deploy --dry-run), and the CLI.
test-worker: build
	@echo "==> node --test worker/test cli/test (workerd via Miniflare)"
	@node --test worker/test/*.test.mjs cli/test/*.test.mjs

# The workers-rs example (a Worker in Rust on the Rust API): built without worker-build
# (examples/workers-rs/build.sh: cargo + .tools/bin/wasm-bindgen), run on workerd (Miniflare)
# against the simulator on loopback.
test-workers-rs: build
	@echo "==> examples/workers-rs: build, then node --test (workerd via Miniflare)"
	@cargo fmt --check --manifest-path examples/workers-rs/Cargo.toml
	@examples/workers-rs/build.sh
	@node --test examples/workers-rs/test.mjs

# The demo page (www/) in headless Chromium, served by the Worker on workerd; screenshots go
# to test-artifacts/.
test-www: build
	@echo "==> node --test www/test (the demo page, headless Chromium, workerd)"
	@node --test www/test/*.test.mjs

run: build
	@scripts/run.sh

# Figures, not pass/fail: overhead vs p-limit/p-queue, pacing vs the peers on the simulator,
# peak RSS and wasm memory per MB of reply (bench/memory.mjs), /v1/batches on workerd (items/s
# by consumers, cost per 10,000 items), and the wasm sizes (the library's, the Worker's, the
# simulator's own).
bench: build
	@node bench/overhead.mjs
	@node bench/pacing.mjs
	@node bench/memory.mjs
	@node bench/batches.mjs
	@node bench/post-cpu.mjs
	@node bench/fallbacks.mjs
	@node bench/cache.mjs
	@node bench/sdk-realtime.mjs
	@node bench/routing.mjs

# Every mutant of the pure Rust against the full native `cargo test`, one at a time
# (--jobs 1); exclusions of equivalent mutants and their reasons are in .cargo/mutants.toml.
mutants:
	@SHARD="$(SHARD)" FILES="$(FILES)" MUTANTS_TIMEOUT="$(MUTANTS_TIMEOUT)" TEST_ARGS="$(TEST_ARGS)" \
		scripts/mutants.sh

clean:
	rm -rf pkg sim/pkg worker/pkg www/pkg test-artifacts worker/.wrangler
	cargo clean
