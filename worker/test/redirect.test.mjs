// Redirects on workerd (issue 15): the library's provider requests do not follow a 3xx with
// workerd's own fetch either. A test-only Worker (fixtures/run-library.js) runs the batch
// against two loopback servers; the redirect target must see no request and no key.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker } from './harness.mjs';
import { LOCATION_SECRETS, startRedirectPair } from '../../tests/support/redirect-pair.mjs';

const KEY = 'sk-ant-REDIRECT-canary-workerd-93ad';
let pair;
let worker;
before(async () => {
  pair = await startRedirectPair();
  worker = await startWorker({}, { script: 'worker/test/fixtures/run-library.js' });
});
after(async () => {
  await worker?.dispose();
  await pair?.close();
});

test('workerd: a provider 307 is not followed, not retried, and names only the host', { timeout: 30_000 }, async () => {
  pair.setStatus(307);
  const res = await fetch(new URL('/run', worker.url), {
    method: 'POST',
    body: JSON.stringify({
      options: { maxRetries: 3, provider: { name: 'anthropic', apiKey: KEY, baseUrl: pair.gatewayUrl } },
      items: [{ model: 'm', max_tokens: 8, messages: [{ role: 'user', content: 'hi' }] }],
    }),
  });
  assert.equal(res.status, 200);
  const [r] = await res.json();
  assert.equal(r.ok, false, JSON.stringify(r));
  assert.equal(r.attempts, 1);
  assert.equal(r.error.status, 307);
  assert.equal(r.error.retryable, false);
  assert.ok(r.error.message.startsWith(`redirect not followed: HTTP 307 to host ${pair.targetHost} `), r.error.message);
  const text = JSON.stringify(r);
  for (const secret of [KEY, ...LOCATION_SECRETS]) assert.ok(!text.includes(secret), `${secret} in ${text}`);
  assert.deepEqual(pair.seen, [], 'the redirect target got no request');
});
