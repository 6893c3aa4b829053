// postProcess inline (what workerd and the raw glue do: no worker pool): a module object,
// a generator export run in slices that give the event loop back, a plain export, cancel
// stopping a generator at its next slice, and a URL module imported in place.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BatchProcessor } from './load.mjs';
import * as fixture from './fixtures/post-module.mjs';
import { FAST, sleep } from './helpers.mjs';

test('inline: a generator export runs in slices; timers keep firing meanwhile', async () => {
  const bp = new BatchProcessor({ ...FAST });
  let ticks = 0;
  const timer = setInterval(() => ticks++, 5);
  const started = Date.now();
  const results = await bp.map(['a', 'b'], async (t) => ({ text: t, cpuMs: 150 }), {
    postProcess: { module: fixture, export: 'slowCount', threads: 8 },
  });
  clearInterval(timer);
  assert.deepEqual(results.map((r) => r.value), [{ n: true, text: 'a' }, { n: true, text: 'b' }]);
  // ~300 ms of sliced CPU: a 5 ms interval fires many times; unsliced it could fire ~once.
  assert.ok(ticks >= 10, `${ticks} ticks in ${Date.now() - started} ms`);
});

test('inline: a plain export, one result per item, order kept, failures of kind process', async () => {
  const bp = new BatchProcessor({ ...FAST, concurrency: 3 });
  const values = [{ text: 'x' }, { text: 'y', throw: true }, { text: 'z', fn: true }, { text: 'w' }];
  const results = await bp.map(values, async (v) => v, { postProcess: { module: fixture, export: 'extract' } });
  assert.deepEqual(results.map((r) => r.ok), [true, false, false, true]);
  assert.deepEqual(results[0].value, { text: 'X', index: 0, item: { text: 'x' } });
  assert.match(results[1].error.message, /^post-processing failed: postProcess extract threw: cannot extract from "y"$/);
  assert.match(results[2].error.message, /returned a value that cannot be cloned/);
});

test('inline: a cancel stops a generator at its next slice', async () => {
  const controller = new AbortController();
  const bp = new BatchProcessor({ ...FAST, onEvent: (e) => e.type === 'processStart' && setTimeout(() => controller.abort(), 50) });
  const started = Date.now();
  const results = await bp.map(['a'], async (t) => ({ text: t, cpuMs: 20000 }), {
    postProcess: { module: fixture, export: 'slowCount' },
    signal: controller.signal,
  });
  assert.equal(results[0].error.message, 'cancelled during post-processing');
  // Let the generator reach its next slice; the process would otherwise spin for 20 s.
  await sleep(50);
  assert.ok(Date.now() - started < 5000, 'the result came at the cancel');
});

test('inline: a URL module is imported in place (no pool on this host)', async () => {
  const bp = new BatchProcessor();
  const results = await bp.map(['one two'], (x) => x, {
    postProcess: { module: new URL('./fixtures/post-module.mjs', import.meta.url) },
  });
  assert.equal(results[0].value, 2);
});
