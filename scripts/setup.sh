#!/usr/bin/env bash
# Installs what build and test need; fast when everything is already there.
#   - rustup target wasm32-unknown-unknown, components rustfmt and clippy
#   - wasm-bindgen-cli at exactly the wasm-bindgen version in Cargo.lock, into .tools/
#   - npm devDependencies (npm ci) when node_modules is missing or older than the lockfile,
#     at the root and in worker/ (wrangler, miniflare)
#   - Debian chromium + chromium-driver for the headless browser tests
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD

die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }
note() { printf 'setup: %s\n' "$*"; }

# Runs a command with its output in a log; shows the log only if it fails.
logged() {
  local name=$1; shift
  local log="$root/test-artifacts/setup-$name.log"
  mkdir -p "$root/test-artifacts"
  if ! "$@" >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    die "'$*' failed (full log: $log)"
  fi
}

for tool in cargo rustup node npm; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is not on PATH"
done

# Rust target and components.
if ! rustup target list --installed | grep -qx 'wasm32-unknown-unknown'; then
  note "adding rustup target wasm32-unknown-unknown"
  logged rustup-target rustup target add wasm32-unknown-unknown
fi
installed_components=$(rustup component list --installed)
for comp in rustfmt clippy; do
  if ! grep -q "^$comp" <<<"$installed_components"; then
    note "adding rustup component $comp"
    logged "rustup-$comp" rustup component add "$comp"
  fi
done

# wasm-bindgen CLI: must equal the wasm-bindgen crate version locked in Cargo.lock.
[ -f Cargo.lock ] || die "Cargo.lock is missing"
wb_version=$(awk '
  /^\[\[package\]\]/ { in_wb = 0 }
  /^name = "wasm-bindgen"$/ { in_wb = 1; next }
  in_wb && /^version = / { gsub(/"/, "", $3); print $3; exit }
' Cargo.lock)
[ -n "$wb_version" ] || die "no wasm-bindgen package found in Cargo.lock"
have=$(.tools/bin/wasm-bindgen --version 2>/dev/null || true)
if [ "$have" != "wasm-bindgen $wb_version" ] || [ ! -x .tools/bin/wasm-bindgen-test-runner ]; then
  note "installing wasm-bindgen-cli $wb_version into .tools/ (takes a few minutes)"
  # No --locked: for 0.2.130 a dependency in its lockfile is missing from the registry.
  logged wasm-bindgen-cli \
    cargo install wasm-bindgen-cli --version "$wb_version" --root "$root/.tools" --force
  have=$(.tools/bin/wasm-bindgen --version 2>/dev/null || true)
  [ "$have" = "wasm-bindgen $wb_version" ] ||
    die "installed wasm-bindgen reports '$have', expected 'wasm-bindgen $wb_version'"
fi

# npm devDependencies (binaryen for wasm-opt, typescript, ...). npm writes
# node_modules/.package-lock.json on every install, so it serves as the stamp.
[ -f package.json ] || die "package.json is missing"
[ -f package-lock.json ] || die "package-lock.json is missing (run npm install once and commit it)"
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  note "installing npm devDependencies (npm ci)"
  logged npm-ci npm ci --no-audit --no-fund --loglevel=error
  touch node_modules/.package-lock.json
fi

# The Worker's own npm packages (wrangler, miniflare with its workerd), the same way.
[ -f worker/package-lock.json ] || die "worker/package-lock.json is missing (run npm install in worker/ once and commit it)"
if [ ! -f worker/node_modules/.package-lock.json ] ||
  [ worker/package-lock.json -nt worker/node_modules/.package-lock.json ]; then
  note "installing the Worker's npm packages (npm ci in worker/)"
  logged npm-ci-worker npm ci --prefix worker --no-audit --no-fund --loglevel=error
  touch worker/node_modules/.package-lock.json
fi

# Headless browser for the wasm browser tests.
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  note "installing chromium and chromium-driver (apt-get)"
  sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "chromium is missing and we are not root (no sudo either)"
    sudo=(sudo)
  fi
  export DEBIAN_FRONTEND=noninteractive
  logged apt-update "${sudo[@]}" apt-get update
  logged apt-chromium "${sudo[@]}" apt-get install -y chromium chromium-driver
  [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] ||
    die "apt-get finished but /usr/bin/chromium or /usr/bin/chromedriver is still missing"
fi

# The Python SDK that worker/test/python-sdk.test.mjs runs unchanged: a venv in .tools/venv with
# exactly the pins of tests/python/requirements.txt, installed again only when that file is
# newer than the venv's stamp. Debian's python3 makes no venv without python3-venv (ensurepip).
venv=.tools/venv
py_reqs=tests/python/requirements.txt
[ -f "$py_reqs" ] || die "$py_reqs is missing"
if [ ! -x "$venv/bin/python" ] || [ ! -f "$venv/.installed" ] || [ "$py_reqs" -nt "$venv/.installed" ]; then
  command -v python3 >/dev/null 2>&1 || die "python3 is not on PATH (Debian: apt-get install python3 python3-venv)"
  if [ ! -x "$venv/bin/python" ]; then
    note "making the Python venv .tools/venv"
    if ! python3 -m venv "$venv" >/dev/null 2>&1; then
      rm -rf "$venv"
      note "installing python3-venv (apt-get): python3 -m venv needs it"
      [ "$(id -u)" -eq 0 ] || die "python3 -m venv failed and we are not root: apt-get install python3-venv"
      export DEBIAN_FRONTEND=noninteractive
      logged apt-update apt-get update
      logged apt-python3-venv apt-get install -y python3-venv
      logged python-venv python3 -m venv "$venv"
    fi
  fi
  note "installing the Python SDKs into .tools/venv ($py_reqs)"
  logged pip "$venv/bin/pip" install --disable-pip-version-check --no-input -r "$py_reqs"
  touch "$venv/.installed"
fi
