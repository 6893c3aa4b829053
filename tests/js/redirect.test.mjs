// Redirects (issue 15): a provider request never follows one (its key would go along to
// wherever Location points); a fetch spec follows one only when it asks to. Two loopback
// servers: a gateway answering 3xx, and the redirect target, which must see no request.
// worker/test/redirect.test.mjs checks the same on workerd.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { BatchProcessor } from './load.mjs';
import { LOCATION_SECRETS, startRedirectPair } from '../support/redirect-pair.mjs';

const KEY = 'sk-ant-REDIRECT-canary-71c4e0';
const item = { model: 'claude-haiku-4-5', max_tokens: 8, messages: [{ role: 'user', content: 'hi' }] };

let pair;
before(async () => {
  pair = await startRedirectPair();
});
after(() => pair?.close());

describe('redirects', { timeout: 20_000 }, () => {
  for (const code of [301, 302, 307, 308]) {
    test(`a provider's ${code} is a non-retryable failure naming the host; the target sees nothing`, async () => {
      pair.setStatus(code);
      pair.seen.length = 0;
      const bp = new BatchProcessor({ maxRetries: 3, provider: { name: 'anthropic', apiKey: KEY, baseUrl: pair.gatewayUrl } });
      const [r] = await bp.run([item]);
      bp.free();
      assert.equal(r.ok, false, JSON.stringify(r));
      assert.equal(r.attempts, 1, 'not retried');
      assert.equal(r.error.kind, 'http');
      assert.equal(r.error.status, code);
      assert.equal(r.error.retryable, false);
      assert.ok(r.error.message.startsWith(`redirect not followed: HTTP ${code} to host ${pair.targetHost} `), r.error.message);
      const text = JSON.stringify(r);
      for (const secret of [KEY, ...LOCATION_SECRETS]) assert.ok(!text.includes(secret), `${secret} in ${text}`);
      assert.deepEqual(pair.seen, [], 'the redirect target got no request');
    });
  }

  test('a fetch spec does not follow by default, follows with redirect: "follow", and a bad mode fails that item', async () => {
    pair.setStatus(302);
    pair.seen.length = 0;
    const bp = new BatchProcessor({ maxRetries: 2 });
    const headers = { 'x-api-key': KEY };
    const [plain, manual, follow, bad] = await bp.run([
      { url: `${pair.gatewayUrl}/a`, headers },
      { url: `${pair.gatewayUrl}/b`, headers, redirect: 'manual' },
      { url: `${pair.gatewayUrl}/follow`, redirect: 'follow' },
      { url: `${pair.gatewayUrl}/d`, redirect: 'sometimes' },
    ]);
    bp.free();
    for (const r of [plain, manual]) {
      assert.equal(r.ok, false);
      assert.equal(r.attempts, 1);
      assert.equal(r.error.status, 302);
      assert.ok(r.error.message.startsWith(`redirect not followed: HTTP 302 to host ${pair.targetHost} `), r.error.message);
    }
    assert.equal(follow.ok, true, JSON.stringify(follow));
    assert.equal(follow.value.status, 200);
    assert.equal(bad.ok, false);
    assert.equal(bad.error.kind, 'invalid');
    assert.match(bad.error.message, /fetch spec `redirect` must be "follow", "manual" or "error", got sometimes/);
    assert.equal(pair.seen.length, 1, 'only the spec that asked for it reached the target');
    assert.equal(pair.seen[0].key, undefined);
  });
});
