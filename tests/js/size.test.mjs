// The size budget of the wasm build (issue 5: at most 80 KB gzipped with the simulator in;
// 82 KB since the `Limiter` export, the pacer as a permit source for /v1/batches: ~6 KB).
// Deterministic for a toolchain, so a pass/fail check: an accidental `{:?}` of a string or a
// second copy of the executor (each ~4 KB) shows up here, not months later.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';

const BUDGET_BYTES = 82_000;

test(`pkg/edgebatch_bg.wasm is at most ${BUDGET_BYTES} bytes gzipped (level 9)`, () => {
  const wasm = readFileSync(new URL('../../pkg/edgebatch_bg.wasm', import.meta.url));
  const gz = gzipSync(wasm, { level: 9 }).length;
  assert.ok(gz <= BUDGET_BYTES, `${gz} bytes gzipped (${wasm.length} raw): over the ${BUDGET_BYTES}-byte budget`);
});
