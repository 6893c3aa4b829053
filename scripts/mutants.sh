#!/usr/bin/env bash
# `make mutants`: mutation testing of the pure Rust (all of src/core, its subfolders included,
# src/providers and src/options/) against the full native `cargo test`,
# with cargo-mutants pinned in .tools/. Slow (about 10 s a mutant here), so it is not part of
# `make test`. Prints caught / missed / timeout / unviable per file from
# mutants.out/outcomes.json, and fails when a viable mutant survived.
#   SHARD=k/n    only shard k of n (0-based; every n-th mutant from the k-th, so a shard is an
#                even sample of every file), to sample or split a run
#   FILES="src/core/pacer/mod.rs ..."   only these files (globs as cargo-mutants' --file takes)
#   MUTANTS_TIMEOUT=60              seconds a mutant's test run may take (a hang is a timeout)
#   TEST_ARGS="--skip sim::"        passed to the test binaries: src/sim's tests (the slowest)
#                                   call no code of src/core but backoff.rs, so for the other
#                                   core files skipping them changes no outcome, only the time
# Exclusions of provably equivalent mutants, each with its reason: .cargo/mutants.toml.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

die() { printf 'mutants: error: %s\n' "$*" >&2; exit 1; }

version=27.1.0
tool=.tools/bin/cargo-mutants
if ! [ -x "$tool" ] || [ "$("$tool" mutants --version)" != "cargo-mutants $version" ]; then
  echo "mutants: installing cargo-mutants $version into .tools/ (a few minutes, once)"
  cargo install cargo-mutants --version "$version" --locked --root .tools --quiet \
    || die "cargo install cargo-mutants $version failed"
fi

# Test-only files among these (tests.rs, *_tests.rs) are `#[cfg(test)]` modules: cargo-mutants
# makes no mutants of them.
files=(${FILES:-src/core/*.rs src/core/*/*.rs src/providers/*.rs src/providers/*/*.rs src/options/*.rs})
args=(--jobs 1 --timeout "${MUTANTS_TIMEOUT:-60}" --output target/mutants --colors never)
for f in "${files[@]}"; do args+=(--file "$f"); done
if [ -n "${SHARD:-}" ]; then
  [[ $SHARD =~ ^[0-9]+/[1-9][0-9]*$ ]] || die "SHARD must look like k/n (e.g. 0/4), got '$SHARD'"
  args+=(--shard "$SHARD" --sharding round-robin)
fi

test_args=(${TEST_ARGS:-})
# The first `--` ends cargo-mutants' options, the second `cargo test`'s.
[ ${#test_args[@]} -eq 0 ] || args+=(-- -- "${test_args[@]}")

mkdir -p target/mutants
status=0
"$tool" mutants "${args[@]}" || status=$?
# cargo-mutants exits 2 when mutants were missed, 3 on timeouts, 4 when the baseline failed.
[ -f target/mutants/mutants.out/outcomes.json ] || die "no outcomes written (exit $status)"
node scripts/mutants-table.mjs target/mutants/mutants.out/outcomes.json
exit "$status"
