// A prompt-cache primer's reply comes as a stream (src/web/attempt.rs): its first byte, which
// the rest of its group waits for, arrives when the provider starts the reply rather than when
// it is done. glue.js messageFromEvents puts the events back together as the Message the same
// request without `stream` returns; here on hand-written streams (every block and delta kind,
// an error event, a cut-off stream, CRLF), then end to end on the simulator over loopback.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { BatchProcessor } from './load.mjs';
import { messageFromEvents, readBody } from '../../src/web/glue.js';
import { startSimServer } from '../../js/sim-server.mjs';
import { startServer } from '../support/server.mjs';
import http from 'node:http';

const sse = (events) => events.map(([type, data]) => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`).join('');
const start = {
  message: { id: 'msg_1', type: 'message', role: 'assistant', model: 'claude-sonnet-4-5', content: [], stop_reason: null, stop_sequence: null,
    usage: { input_tokens: 12, cache_creation_input_tokens: 3000, cache_read_input_tokens: 0, output_tokens: 1 } },
};
const end = [['message_delta', { delta: { stop_reason: 'tool_use', stop_sequence: null }, usage: { output_tokens: 42 } }], ['message_stop', {}]];
const MB = 1 << 20;

describe('messageFromEvents', () => {
  test('every block kind put back together, as the non-streamed Message', () => {
    const text = sse([
      ['message_start', start],
      ['ping', {}],
      ['content_block_start', { index: 0, content_block: { type: 'thinking', thinking: '', signature: '' } }],
      ['content_block_delta', { index: 0, delta: { type: 'thinking_delta', thinking: 'Let me ' } }],
      ['content_block_delta', { index: 0, delta: { type: 'thinking_delta', thinking: 'see.' } }],
      ['content_block_delta', { index: 0, delta: { type: 'signature_delta', signature: 'c2ln' } }],
      ['content_block_stop', { index: 0 }],
      ['content_block_start', { index: 1, content_block: { type: 'text', text: '' } }],
      ['content_block_delta', { index: 1, delta: { type: 'text_delta', text: 'Héllo, ' } }],
      ['content_block_delta', { index: 1, delta: { type: 'citations_delta', citation: { type: 'char_location', cited_text: 'x' } } }],
      ['content_block_delta', { index: 1, delta: { type: 'text_delta', text: 'world' } }],
      ['content_block_stop', { index: 1 }],
      ['content_block_start', { index: 2, content_block: { type: 'tool_use', id: 'toolu_1', name: 'get', input: {} } }],
      ['content_block_delta', { index: 2, delta: { type: 'input_json_delta', partial_json: '{"city": "Par' } }],
      ['content_block_delta', { index: 2, delta: { type: 'input_json_delta', partial_json: 'is", "n": [1, 2]}' } }],
      ['content_block_stop', { index: 2 }],
      ['content_block_start', { index: 3, content_block: { type: 'tool_use', id: 'toolu_2', name: 'now', input: {} } }],
      ['content_block_stop', { index: 3 }],
      ...end,
    ]);
    assert.deepEqual(JSON.parse(messageFromEvents(text, MB)), {
      id: 'msg_1', type: 'message', role: 'assistant', model: 'claude-sonnet-4-5',
      content: [
        { type: 'thinking', thinking: 'Let me see.', signature: 'c2ln' },
        { type: 'text', text: 'Héllo, world', citations: [{ type: 'char_location', cited_text: 'x' }] },
        { type: 'tool_use', id: 'toolu_1', name: 'get', input: { city: 'Paris', n: [1, 2] } },
        { type: 'tool_use', id: 'toolu_2', name: 'now', input: {} },
      ],
      stop_reason: 'tool_use', stop_sequence: null,
      usage: { input_tokens: 12, cache_creation_input_tokens: 3000, cache_read_input_tokens: 0, output_tokens: 42 },
    });
    // CRLF line ends and `data:` without its space read the same.
    const crlf = text.replace(/\n/g, '\r\n').replace(/data: /g, 'data:');
    assert.equal(messageFromEvents(crlf, MB), messageFromEvents(text, MB));
  });

  test('an error event is its error body, so are a stream cut short or garbled and an unknown delta; past maxBytes throws', () => {
    const error = { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } };
    const broken = `${sse([['message_start', start], ['content_block_start', { index: 0, content_block: { type: 'text', text: '' } }]])}event: error\ndata: ${JSON.stringify(error)}\n\n`;
    assert.deepEqual(JSON.parse(messageFromEvents(broken, MB)), error);
    const cut = sse([['message_start', start], ['content_block_start', { index: 0, content_block: { type: 'text', text: '' } }]]);
    const apiError = (json, why) => {
      const body = JSON.parse(json);
      assert.equal(body.type, 'error');
      assert.equal(body.error.type, 'api_error');
      assert.match(body.error.message, why);
    };
    apiError(messageFromEvents(cut, MB), /ended before message_stop/);
    apiError(messageFromEvents(`${cut}data: {"type": "content_blo`, MB), /not a whole Messages stream/);
    const big = sse([['message_start', start], ['content_block_start', { index: 0, content_block: { type: 'text', text: '' } }],
      ['content_block_delta', { index: 0, delta: { type: 'text_delta', text: 'é'.repeat(400) } }], ['content_block_stop', { index: 0 }], ...end]);
    const json = messageFromEvents(big, MB);
    const bytes = new TextEncoder().encode(json).byteLength;
    assert.equal(messageFromEvents(big, bytes), json);
    assert.throws(() => messageFromEvents(big, bytes - 1), (e) => e.tooLarge === bytes);
    const odd = sse([['message_start', start], ['content_block_start', { index: 0, content_block: { type: 'odd' } }],
      ['content_block_delta', { index: 0, delta: { type: 'odd_delta', parts: [1] } }]]);
    apiError(messageFromEvents(odd, MB), /content delta of type "odd_delta"/);
  });
});

test('readBody: a key echoed back split across two deltas is scrubbed; a JSON reply to a stream ask is read as it is', async () => {
  const key = 'sk-ant-api03-SECRET';
  const text = sse([['message_start', start], ['content_block_start', { index: 0, content_block: { type: 'text', text: '' } }],
    ['content_block_delta', { index: 0, delta: { type: 'text_delta', text: 'your key is sk-ant-' } }],
    ['content_block_delta', { index: 0, delta: { type: 'text_delta', text: 'api03-SECRET, and again sk-ant-api03-SECRET' } }],
    ['content_block_stop', { index: 0 }], ...end]);
  const events = new Response(text, { headers: { 'content-type': 'text/event-stream; charset=utf-8' } });
  const message = JSON.parse(await readBody(events, MB, false, [key], true));
  assert.equal(message.content[0].text, 'your key is [redacted], and again [redacted]');
  const json = JSON.stringify({ type: 'message', content: [{ type: 'text', text: `echo ${key}` }] });
  const plain = new Response(json, { headers: { 'content-type': 'application/json' } });
  assert.equal(await readBody(plain, MB, false, [key], true), json.replace(key, '[redacted]'));
});

describe('a primer streamed on the simulator', { timeout: 30_000 }, () => {
  const system = [{ type: 'text', text: `S${'rule '.repeat(2400).slice(1)}`, cache_control: { type: 'ephemeral' } }];
  const request = (i) => ({ model: 'claude-sonnet-4-5', max_tokens: 20, system, messages: [{ role: 'user', content: `question ${i}` }] });

  test('only the primer streams; its result reads like the others; one write', async () => {
    const sim = await startSimServer({ seed: 5, latency: { baseMs: 20, perOutputTokenMs: 1, jitterMs: 0 } });
    try {
      const bp = new BatchProcessor({ concurrency: 8, maxRetries: 0, provider: { name: 'anthropic', apiKey: 'sk-ant-test', baseUrl: sim.url } });
      const results = await bp.run([0, 1, 2, 3, 4].map(request));
      bp.free();
      assert.ok(results.every((r) => r.ok), JSON.stringify(results.map((r) => r.error)));
      const stats = sim.sim.stats();
      assert.equal(stats.streams, 1);
      assert.equal(stats.cacheWriteTokens, 3000);
      const [primer, ...rest] = [...results].sort((a, b) => b.value.reply.usage.cache_creation_input_tokens - a.value.reply.usage.cache_creation_input_tokens);
      assert.equal(primer.value.reply.usage.cache_creation_input_tokens, 3000);
      for (const r of rest) {
        assert.deepEqual(Object.keys(primer.value.reply), Object.keys(r.value.reply));
        assert.deepEqual(Object.keys(primer.value.reply.usage), Object.keys(r.value.reply.usage));
      }
      assert.equal(primer.value.reply.type, 'message');
      assert.equal(primer.value.text, primer.value.reply.content.map((b) => b.text).join(''));
      assert.ok(primer.value.text.length > 0);
      assert.equal(primer.value.usage.outputTokens, primer.value.reply.usage.output_tokens);
      assert.ok(primer.value.usage.outputTokens > 1, 'output tokens from message_delta, not message_start');
      assert.ok(primer.usd > rest[0].usd, 'the write is priced');
      // A call of one request has nobody waiting on it: sent as it is.
      const one = new BatchProcessor({ provider: { name: 'anthropic', apiKey: 'sk-ant-test', baseUrl: sim.url } });
      const [alone] = await one.run([request(9)]);
      one.free();
      assert.ok(alone.ok);
      assert.equal(sim.sim.stats().streams, 1);
    } finally {
      await sim.close();
    }
  });

  test('an upstream that ignores `stream` and sends the Message: read as it is, nothing retried', async () => {
    // The loopback test server answers every Messages call with JSON (after 50 ms: "slow:50").
    const srv = await startServer();
    try {
      const bp = new BatchProcessor({ concurrency: 8, maxRetries: 2, provider: { name: 'anthropic', apiKey: 'sk-ant-test', baseUrl: srv.url } });
      const results = await bp.run([0, 1, 2].map((i) => ({ ...request(i), model: 'slow:50' })));
      bp.free();
      assert.ok(results.every((r) => r.ok), JSON.stringify(results.map((r) => r.error)));
      assert.deepEqual(results.map((r) => r.attempts), [1, 1, 1]);
      const log = srv.requestLog();
      assert.deepEqual(log.map((l) => l.body?.stream === true), [true, false, false], 'the primer, first, asked for a stream');
    } finally {
      await srv.close();
    }
  });

  test('an upstream that refuses `stream` (a 400): the primer is asked again as written, in the same attempt', async () => {
    const seen = [];
    const server = http.createServer((req, res) => {
      let raw = '';
      req.on('data', (c) => { raw += c; });
      req.on('end', () => {
        const body = JSON.parse(raw);
        seen.push(body.stream === true);
        const [status, reply] = body.stream
          ? [400, { type: 'error', error: { type: 'invalid_request_error', message: 'stream: Extra inputs are not permitted' } }]
          : [200, { id: 'msg_x', type: 'message', role: 'assistant', model: body.model, content: [{ type: 'text', text: 'ok' }], stop_reason: 'end_turn',
            stop_sequence: null, usage: { input_tokens: 3000, output_tokens: 1 } }];
        res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(reply));
      });
    });
    await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
    try {
      const bp = new BatchProcessor({ concurrency: 8, maxRetries: 0, provider: { name: 'anthropic', apiKey: 'sk-ant-test', baseUrl: `http://127.0.0.1:${server.address().port}` } });
      const results = await bp.run([0, 1, 2].map(request));
      bp.free();
      assert.ok(results.every((r) => r.ok), JSON.stringify(results.map((r) => r.error)));
      assert.deepEqual(results.map((r) => r.attempts), [1, 1, 1]);
      assert.deepEqual(seen, [true, false, false, false], 'the stream refused, then the primer and the rest as written');
    } finally {
      server.closeAllConnections();
      await new Promise((ok) => server.close(ok));
    }
  });

  test('a primer whose stream breaks after its first byte: the group has opened, the primer alone is tried again', async () => {
    const sim = await startSimServer({ seed: 5, latency: { baseMs: 20, perOutputTokenMs: 1, jitterMs: 0 }, faults: { streamError: 1 } });
    try {
      const bp = new BatchProcessor({ concurrency: 8, maxRetries: 1, provider: { name: 'anthropic', apiKey: 'sk-ant-test', baseUrl: sim.url } });
      const results = await bp.run([0, 1, 2, 3, 4].map(request));
      bp.free();
      assert.ok(results.every((r) => r.ok), JSON.stringify(results.map((r) => r.error)));
      assert.deepEqual(results.map((r) => r.attempts), [2, 1, 1, 1, 1]);
      const stats = sim.sim.stats();
      assert.deepEqual([stats.streams, stats.streamErrors], [1, 1]);
    } finally {
      await sim.close();
    }
  });
});
