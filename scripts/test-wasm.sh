#!/usr/bin/env bash
# Runs the wasm tests (`cargo test --target wasm32-unknown-unknown`) with
# wasm-bindgen-test-runner, once in Node and once in headless Chromium, against
# tests/support/server.mjs.
#
# usage: scripts/test-wasm.sh [node] [browser] [-- <extra cargo test args>]
#   no mode given = both. VERBOSE=1 streams the cargo/runner output instead of
#   keeping it in test-artifacts/wasm/ (shown on failure).
#
# How the two runs differ (wasm-bindgen-test-runner 0.2.130):
#   - A test binary without `wasm_bindgen_test_configure!` runs in Node by default;
#     WASM_BINDGEN_USE_BROWSER=1 makes it run in a browser instead. (A binary that
#     has `run_in_browser`/`run_in_*_worker` runs there in both passes.)
#   - The browser is found through CHROMEDRIVER; its capabilities come from the
#     file named by WASM_BINDGEN_TEST_WEBDRIVER_JSON (default ./webdriver.json in the
#     package root): scripts/webdriver.json. The runner itself adds `headless`,
#     `no-sandbox` and `disable-dev-shm-usage`.
#   - EDGEBATCH_TEST_SERVER is read by the tests at compile time (option_env!), so
#     the test crates recompile when the server's port changes; cargo tracks that.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD

die() { printf 'test-wasm: error: %s\n' "$*" >&2; exit 1; }

modes=()
cargo_args=()
while [ $# -gt 0 ]; do
  case $1 in
    node | browser) modes+=("$1") ;;
    --) shift; cargo_args=("$@"); break ;;
    *) die "unknown argument '$1' (usage: $0 [node] [browser] [-- cargo test args])" ;;
  esac
  shift
done
[ ${#modes[@]} -gt 0 ] || modes=(node browser)

export PATH="$root/.tools/bin:$PATH"
command -v wasm-bindgen-test-runner >/dev/null 2>&1 ||
  die "wasm-bindgen-test-runner is not in .tools/bin; run scripts/setup.sh (or make setup)"
[ -f tests/support/server.mjs ] || die "tests/support/server.mjs is missing"

artifacts=$root/test-artifacts/wasm
mkdir -p "$artifacts"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/edgebatch-wasm.XXXXXX")
server_pid=
server_stdin=

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if [ -n "$server_stdin" ]; then
    exec {server_stdin}>&-
  fi
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 50); do
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  [ -z "$server_pid" ] || wait "$server_pid" 2>/dev/null || true
  rm -rf "$tmp"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The server stops when its stdin closes, and a background job's stdin would be
# /dev/null, so give it a FIFO that this shell holds open (read-write, so opening it
# never blocks). If this script dies even by SIGKILL, the FIFO closes and the server
# exits too. Children other than the server must not inherit the FIFO.
mkfifo "$tmp/server.stdin"
exec {server_stdin}<>"$tmp/server.stdin"
node tests/support/server.mjs <"$tmp/server.stdin" >"$artifacts/server.log" 2>&1 {server_stdin}>&- &
server_pid=$!

ready=
for _ in $(seq 200); do
  ready=$(grep -m1 '^READY ' "$artifacts/server.log" || true)
  [ -z "$ready" ] || break
  if ! kill -0 "$server_pid" 2>/dev/null; then
    cat "$artifacts/server.log" >&2
    die "tests/support/server.mjs exited before printing READY"
  fi
  sleep 0.1
done
[ -n "$ready" ] || { cat "$artifacts/server.log" >&2; die "no READY line from tests/support/server.mjs within 20 s"; }
server_url=${ready#READY }
case $server_url in
  http://*) ;;
  *) die "unexpected READY line from tests/support/server.mjs: '$ready'" ;;
esac
export EDGEBATCH_TEST_SERVER=$server_url
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner
# Whole-suite budget per test binary in the browser (runner default 20 s) and for
# chromedriver to come up (default 5 s); slow CI machines need more.
export WASM_BINDGEN_TEST_TIMEOUT=${WASM_BINDGEN_TEST_TIMEOUT:-120}
export WASM_BINDGEN_TEST_DRIVER_TIMEOUT=${WASM_BINDGEN_TEST_DRIVER_TIMEOUT:-30}

# The failing tests' section of a cargo test log (panic messages), else its tail
# (compile errors, runner errors), then cargo's closing lines.
show_failure() {
  if grep -q '^failures:' "$1"; then
    sed -n '/^failures:/,$p' "$1" | head -n 150
    printf '...\n'
    tail -n 6 "$1"
  else
    tail -n 80 "$1"
  fi
}

run_mode() {
  local mode=$1
  local log="$artifacts/$mode.log"
  local -a env_args
  case $mode in
    node)
      env_args=(-u WASM_BINDGEN_USE_BROWSER)
      ;;
    browser)
      [ -x /usr/bin/chromedriver ] || die "/usr/bin/chromedriver is missing; run scripts/setup.sh"
      env_args=(
        WASM_BINDGEN_USE_BROWSER=1
        CHROMEDRIVER=/usr/bin/chromedriver
        WASM_BINDGEN_TEST_WEBDRIVER_JSON="$root/scripts/webdriver.json"
      )
      ;;
  esac
  # --tests: lib unit tests and tests/*.rs; doctests run natively in `cargo test`.
  local -a cmd=(env "${env_args[@]}" cargo test --target wasm32-unknown-unknown --tests
    "${cargo_args[@]}")
  local status=0
  if [ "${VERBOSE:-0}" = 1 ]; then
    "${cmd[@]}" {server_stdin}>&- 2>&1 | tee "$log" || status=$?
  else
    "${cmd[@]}" {server_stdin}>&- >"$log" 2>&1 || status=$?
  fi
  if [ "$status" -ne 0 ]; then
    [ "${VERBOSE:-0}" = 1 ] || show_failure "$log" >&2
    die "wasm tests failed in $mode (full log: $log, server log: $artifacts/server.log)"
  fi
  local passed
  passed=$(awk '/^test result: ok\./ { n += $4 } END { print n + 0 }' "$log")
  printf 'test-wasm: %s: %s tests passed\n' "$mode" "$passed"
}

for mode in "${modes[@]}"; do
  run_mode "$mode"
done
