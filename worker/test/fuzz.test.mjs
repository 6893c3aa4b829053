// Fuzzing the Worker's request parsing: random JSON bodies (biased towards the real shape,
// one field broken at a time) and random bytes. Every body is accepted or refused with a 400
// whose message names a field — never another exception, never a 500 (a missing key's 500
// comes only after the request itself is valid). A few of the bodies also go through the real
// Worker on workerd, where the answer must be a 4xx JSON error or a 200.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { BatchProcessor, initSync } from '../pkg/edgebatch.js';
import { parseBatchRequest, WORKER_OPTIONS } from '../src/validate.js';
import { readConfig } from '../src/config.js';
import { HttpError } from '../src/http.js';
import { startWorker, postBatch } from './harness.mjs';
// Seeded (mulberry32): the same bodies on every run.
import { rng } from '../../tests/js/helpers.mjs';

const FIELDS = ['provider', 'items', 'options', 'name', 'baseUrl', 'apiKey', 'version', 'concurrency', 'maxRetries',
  'timeoutMs', 'deadlineMs', 'backoff', 'baseMs', 'maxMs', 'jitter', 'maxRetryAfterMs', 'seed', 'model', 'messages'];

function randomValue(next, depth = 0) {
  const pick = (xs) => xs[Math.floor(next() * xs.length)];
  switch (Math.floor(next() * (depth > 2 ? 6 : 8))) {
    case 0: return null;
    case 1: return next() < 0.5;
    case 2: return pick([0, -1, 1.5, 6, 1e9, -0, 2 ** 53, Number.MAX_VALUE]);
    case 3: return pick(['', 'anthropic', 'openai', 'full', 'x'.repeat(50), '\u0000', '2023-06-01']);
    case 4: return Math.floor(next() * 100);
    case 5: return pick(['https://api.anthropic.com', 'http://', 'javascript:1']);
    case 6: return Array.from({ length: Math.floor(next() * 3) }, () => randomValue(next, depth + 1));
    default: return Object.fromEntries(Array.from({ length: Math.floor(next() * 4) }, () => [pick(FIELDS), randomValue(next, depth + 1)]));
  }
}

/** A valid body with one place replaced by a random value (or one random field added). */
function mutated(next) {
  const body = {
    provider: { name: 'anthropic' },
    items: [{ model: 'claude-haiku-4-5', max_tokens: 4, messages: [{ role: 'user', content: 'x' }] }],
    options: { concurrency: 2, maxRetries: 1, backoff: { baseMs: 10, jitter: 'full' } },
  };
  const paths = [['provider'], ['provider', 'name'], ['provider', 'baseUrl'], ['provider', 'version'], ['provider', 'apiKey'],
    ['items'], ['items', 0], ['options'], ['options', 'concurrency'], ['options', 'maxRetries'], ['options', 'timeoutMs'],
    ['options', 'backoff'], ['options', 'backoff', 'baseMs'], ['options', 'backoff', 'jitter'], ['options', FIELDS[Math.floor(next() * FIELDS.length)]]];
  const path = paths[Math.floor(next() * paths.length)];
  let at = body;
  for (const key of path.slice(0, -1)) at = at[key];
  at[path.at(-1)] = randomValue(next);
  return JSON.stringify(body);
}

function randomBytes(next) {
  const alphabet = '{}[]":,0123456789.-eE truefalsnul\\\u00e9\ud83e\udd80abc';
  return Array.from({ length: Math.floor(next() * 40) }, () => alphabet[Math.floor(next() * alphabet.length)]).join('');
}

// validate.js lets the Worker's own wasm (worker/pkg) judge the options, as on workerd.
initSync({ module: readFileSync(new URL('../pkg/edgebatch_bg.wasm', import.meta.url)) });

const config = readConfig({ EDGEBATCH_TOKEN: 't', ANTHROPIC_API_KEY: '' }); // no key: the 500 must come last
const NAMES_A_FIELD = /items|provider|options|body|JSON|field|entries/;

function classify(text) {
  try {
    parseBatchRequest(text, config, 'http://127.0.0.1');
    return 'accepted';
  } catch (e) {
    assert.ok(e instanceof HttpError, `not an HttpError for ${text}: ${e?.stack}`);
    if (e.status === 500) {
      assert.equal(e.type, 'configuration_error', text);
      return 'valid request, no key';
    }
    assert.equal(e.status, 400, `${e.status} for ${text}`);
    assert.match(e.message, NAMES_A_FIELD, `the message names no field: ${e.message} (${text})`);
    return '400';
  }
}

describe('worker request parsing, fuzzed', { timeout: 60_000 }, () => {
  test('every option the Worker lets a client set is one edgebatch declares', () => {
    for (const key of WORKER_OPTIONS) {
      assert.doesNotThrow(() => new BatchProcessor({ [key]: undefined }).free(), key);
    }
    // The check itself can fail: an undeclared key is refused by name.
    assert.throws(() => new BatchProcessor({ maxRetrys: undefined }), /unknown option "maxRetrys"/);
  });

  test('4000 mutated bodies and 2000 random strings: a 400 naming a field, or valid', () => {
    const next = rng(13);
    const counts = {};
    for (let i = 0; i < 6000; i++) {
      const outcome = classify(i < 4000 ? mutated(next) : randomBytes(next));
      counts[outcome] = (counts[outcome] ?? 0) + 1;
    }
    console.log('outcomes:', JSON.stringify(counts));
    assert.ok(counts['400'] > 1000 && counts['valid request, no key'] > 100, JSON.stringify(counts));
  });

  let worker;
  before(async () => {
    worker = await startWorker({ ANTHROPIC_API_KEY: '' });
  });
  after(async () => {
    await worker?.dispose();
  });

  test('on workerd: random bodies get a 4xx JSON error (or the missing key\'s 500 for valid ones)', async () => {
    const next = rng(99);
    for (let i = 0; i < 40; i++) {
      const text = i % 2 ? mutated(next) : randomBytes(next);
      const expected = classify(text);
      const r = await postBatch(worker.url, null, { raw: text });
      const error = JSON.parse(r.text).error;
      assert.equal(typeof error?.message, 'string', r.text);
      if (expected === '400') assert.equal(r.status, 400, `${text} -> ${r.status} ${r.text}`);
      else assert.equal(r.status, 500, `${text} -> ${r.status} ${r.text}`);
    }
  });
});
