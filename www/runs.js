// The two ways the page sends a batch, recorded the same way so both can be drawn side by side:
// edgebatch (one BatchProcessor, results streamed in completion order) and the naive
// `Promise.all(fetch)` fan-out most code starts with. A RunRecord keeps every attempt, every
// backoff wait and every result; the views read it on each animation frame.

/** How an attempt ended, as the timeline colours it. */
export function outcomeClass(outcome, status) {
  if (outcome === 'ok') return 'ok';
  if (status === 429) return 'r429';
  if (status >= 500) return 'r5xx';
  if (outcome === 'timeout') return 'timeout';
  if (outcome === 'aborted') return 'aborted';
  return 'error';
}

export class RunRecord {
  /** @param {string} name @param {number} total */
  constructor(name, total) {
    this.name = name;
    this.total = total;
    /** { index, attempt, start, end, cls, status } — end and cls are null while in flight. */
    this.attempts = [];
    /** { index, start, end }: backoff waits between attempts. */
    this.waits = [];
    /** { index, start, end, cls }: post-processing after a successful call (postProcess). */
    this.stages = [];
    /** [atMs, limit, inFlight]: edgebatch's allowed concurrency and what was in flight. */
    this.limits = [];
    /** [atMs, limit, reason]: each time the limit moved, and why (progress.limitReason). */
    this.moves = [];
    this.results = new Array(total).fill(null);
    /** Indexes in the order their results arrived. */
    this.order = [];
    this.counts = { done: 0, ok: 0, failed: 0, cancelled: 0, inFlight: 0, retries: 0, fallbacks: 0, r429: 0, limit: null, limitReason: null };
    /** What the prompt cache did, from the successful replies' usage: replies that wrote an entry, that read one. */
    this.cache = { writes: 0, reads: 0 };
    /** performance.now() at begin(); null until then (drawn empty). */
    this.startedAt = null;
    this.endedAt = null;
    /** Set by the naive run: what its `Promise.all` gave the caller. */
    this.verdict = null;
    this.open = new Map();
  }

  begin() {
    this.startedAt = performance.now();
  }

  /** Milliseconds since the run began (0 before, frozen once it ended). */
  now() {
    if (this.startedAt === null) return 0;
    return (this.endedAt ?? performance.now()) - this.startedAt;
  }

  get running() {
    return this.startedAt !== null && this.endedAt === null;
  }

  attemptStart(index, attempt, atMs) {
    const a = { index, attempt, start: atMs, end: null, cls: null, status: undefined };
    this.attempts.push(a);
    this.open.set(`${index}:${attempt}`, a);
    this.counts.inFlight += 1;
    if (attempt > 1) this.counts.retries += 1;
    this.#sample();
  }

  attemptEnd(index, attempt, atMs, cls, status) {
    const a = this.open.get(`${index}:${attempt}`);
    if (!a) return;
    this.open.delete(`${index}:${attempt}`);
    a.end = Math.max(atMs, a.start);
    a.cls = cls;
    a.status = status;
    this.counts.inFlight -= 1;
    if (status === 429) this.counts.r429 += 1;
    this.#sample();
  }

  processStart(index, atMs) {
    const s = { index, start: atMs, end: null, cls: null };
    this.stages.push(s);
    this.open.set(`p${index}`, s);
  }

  processEnd(index, atMs, outcome) {
    const s = this.open.get(`p${index}`);
    if (!s) return;
    this.open.delete(`p${index}`);
    s.end = Math.max(atMs, s.start);
    s.cls = outcome === 'ok' ? 'stage' : 'stage failed';
  }

  backoff(index, atMs, delayMs) {
    this.waits.push({ index, start: atMs, end: atMs + delayMs });
  }

  setLimit(limit, reason) {
    if (limit === this.counts.limit) return;
    if (this.counts.limit !== null && reason) this.moves.push([this.now(), limit, reason]);
    this.counts.limit = limit;
    this.counts.limitReason = reason ?? null;
    this.#sample();
  }

  /** One item's final result (ItemResult shape); the first one for an index wins. */
  result(r) {
    if (this.results[r.index] !== null) return;
    this.results[r.index] = r;
    this.order.push(r.index);
    this.counts.done += 1;
    if (r.ok) {
      this.counts.ok += 1;
      const usage = r.value?.reply?.usage;
      if (usage?.cache_creation_input_tokens > 0) this.cache.writes += 1;
      if (usage?.cache_read_input_tokens > 0) this.cache.reads += 1;
    } else if (r.error.kind === 'aborted') {
      this.counts.cancelled += 1;
    } else {
      this.counts.failed += 1;
    }
  }

  /** Ends the run: attempts still open (a cancelled run) end as aborted at this moment. */
  finish() {
    if (this.startedAt === null) this.begin();
    const at = this.now();
    for (const a of [...this.open.values()]) {
      if (a.attempt === undefined) this.processEnd(a.index, at, 'aborted');
      else this.attemptEnd(a.index, a.attempt, at, 'aborted');
    }
    this.endedAt = performance.now();
  }

  #sample() {
    this.limits.push([this.now(), this.counts.limit, this.counts.inFlight]);
  }
}

/**
 * edgebatch: one processor, `stream(bodies)` so rows fill in as items complete.
 * @param {object} args
 * @param {Function} args.BatchProcessor the wasm export
 * @param {object} args.options BatchProcessor options (provider, concurrency, ...)
 * @param {object[]} args.bodies Messages API request bodies
 * @param {RunRecord} args.record
 * @param {AbortSignal} args.signal Cancel
 * @param {object} [args.postProcess] the call's postProcess option (drawn after each call)
 * @throws {TypeError | RangeError} at once, for options edgebatch refuses (the message names it)
 */
export async function runEdgebatch({ BatchProcessor, options, bodies, record, signal, postProcess }) {
  const bp = new BatchProcessor({
    ...options,
    onEvent(e) {
      if (e.type === 'start') record.attemptStart(e.index, e.attempt, e.atMs);
      else if (e.type === 'end') record.attemptEnd(e.index, e.attempt, e.atMs, outcomeClass(e.outcome, e.status), e.status);
      else if (e.type === 'backoff' || (e.type === 'fallback' && e.delayMs > 0)) record.backoff(e.index, e.atMs, e.delayMs);
      else if (e.type === 'processStart') record.processStart(e.index, e.atMs);
      else if (e.type === 'processEnd') record.processEnd(e.index, e.atMs, e.outcome);
    },
    onProgress(p) {
      record.setLimit(p.limit, p.limitReason);
      // Items moved to another alternative of `fallbacks` (a `fallback` event each).
      record.counts.fallbacks = p.fallbacks;
    },
  });
  record.begin();
  try {
    for await (const r of bp.stream(bodies, { signal, ...(postProcess && { postProcess }) })) record.result(r);
  } finally {
    record.finish();
    bp.free();
  }
}

/**
 * The naive fan-out, as it is usually written: every request at once, `await Promise.all`,
 * no timeout, no retry. The page watches each request so it can draw them, and keeps
 * watching after `Promise.all` gives up at the first failure, to show what became of the rest.
 * @param {object} args
 * @param {string} args.url the Messages endpoint
 * @param {Record<string, string>} args.headers
 * @param {object[]} args.bodies
 * @param {RunRecord} args.record
 * @param {AbortSignal} args.signal Cancel (the naive code itself has none; the page needs it)
 * @param {(reply: object) => Promise<number | undefined>} args.price what a reply cost, in dollars
 *   (the page's watching too: the naive code itself counts no cost)
 */
export async function runNaive({ url, headers, bodies, record, signal, price }) {
  record.begin();
  const elapsed = () => record.now();
  const call = async (body, index) => {
    record.attemptStart(index, 1, record.now());
    let res;
    let reply;
    try {
      res = await fetch(url, { method: 'POST', headers, body: JSON.stringify(body), signal });
      reply = await res.json();
    } catch (err) {
      const kind = signal.aborted ? 'aborted' : 'network';
      record.attemptEnd(index, 1, record.now(), outcomeClass(kind));
      record.result({ index, ok: false, error: { kind, message: String(err?.message ?? err) }, attempts: 1, elapsedMs: elapsed() });
      throw err;
    }
    if (!res.ok) {
      record.attemptEnd(index, 1, record.now(), outcomeClass('http', res.status), res.status);
      const message = reply?.error?.message ?? `HTTP ${res.status}`;
      record.result({ index, ok: false, error: { kind: 'http', status: res.status, type: reply?.error?.type, message }, attempts: 1, elapsedMs: elapsed() });
      throw new Error(`HTTP ${res.status}: ${message}`);
    }
    record.attemptEnd(index, 1, record.now(), 'ok', res.status);
    const text = reply.content?.map((b) => b.text ?? '').join('') ?? '';
    const elapsedMs = elapsed();
    // The result in edgebatch's shape (value.reply, usage, usd), so both are counted alike.
    const usage = { inputTokens: reply.usage?.input_tokens ?? 0, outputTokens: reply.usage?.output_tokens ?? 0 };
    const usd = await price(reply);
    record.result({ index, ok: true, value: { text, reply }, attempts: 1, elapsedMs, usage, ...(usd !== undefined && { usd }) });
    return text;
  };
  const calls = bodies.map(call);
  try {
    const texts = await Promise.all(calls);
    record.verdict = { ok: true, atMs: record.now(), got: texts.length };
  } catch (err) {
    record.verdict = { ok: false, atMs: record.now(), got: 0, message: String(err?.message ?? err) };
  }
  await Promise.allSettled(calls);
  record.finish();
}
