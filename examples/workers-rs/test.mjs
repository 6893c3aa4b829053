// The workers-rs example on real workerd (Miniflare, the Worker's pinned one), against the
// simulator on loopback (js/sim-server.mjs) with seeded 529s: both routes answer every item,
// in input order, with the retries the simulator's counts show, never more than 6 at once.
// Needs examples/workers-rs/build.sh and sim/pkg (make build); run by `make test-workers-rs`.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { after, before, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { startSimServer } from '../../js/sim-server.mjs';

const here = new URL('.', import.meta.url);
const fromWorker = createRequire(new URL('../../worker/package.json', import.meta.url));
const { Miniflare } = await import(pathToFileURL(fromWorker.resolve('miniflare')).href);

const N = 24;
let sim;
let mf;
let url;

before(async () => {
  sim = await startSimServer({
    seed: 7,
    faults: { rate529: 0.25 },
    latency: { baseMs: 20, perOutputTokenMs: 0, jitterMs: 30 },
  });
  mf = new Miniflare({
    modules: true,
    scriptPath: new URL('shim.mjs', here).pathname,
    modulesRoot: here.pathname,
    modulesRules: [
      { type: 'ESModule', include: ['**/*.js', '**/*.mjs'] },
      { type: 'CompiledWasm', include: ['**/*.wasm'] },
    ],
    compatibilityDate: '2026-04-26',
    bindings: { UPSTREAM_URL: sim.url, ANTHROPIC_API_KEY: 'sk-ant-example-key' },
    host: '127.0.0.1',
    port: 0,
  });
  url = await mf.ready;
});

after(async () => {
  await mf?.dispose();
  await sim?.close();
});

for (const route of ['run', 'map']) {
  test(`/${route}: every item answered in input order, 529s retried, at most 6 at once`, async () => {
    const before = sim.sim.stats();
    const res = await fetch(new URL(`/${route}?n=${N}`, url));
    const text = await res.text();
    assert.equal(res.status, 200, text);
    const body = JSON.parse(text);
    assert.deepEqual(body.results.map((r) => r.index), [...Array(N).keys()]);
    assert.equal(body.ok, N, text);
    for (const r of body.results) assert.ok(typeof r.value === 'string' && r.value.length > 0, JSON.stringify(r));
    const stats = sim.sim.stats();
    const sent = stats.requests - before.requests;
    assert.equal(sent, body.attempts, 'every attempt reached the simulator once');
    assert.ok(body.attempts > N, `some 529s were retried (${body.attempts} attempts)`);
    assert.ok(stats.maxInFlight >= 2 && stats.maxInFlight <= 6, `2 to 6 at once, saw ${stats.maxInFlight}`);
    assert.ok(!text.includes('sk-ant-example-key'), 'the key is never in the answer');
  });
}

test('an unknown path is a 404 naming the routes', async () => {
  const res = await fetch(new URL('/nope', url));
  assert.equal(res.status, 404);
  assert.match(await res.text(), /\/run\?n=10/);
});
