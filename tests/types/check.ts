// Type-level check of the shipped declarations (pkg/edgebatch.d.ts) against docs/API.md.
// Run: npx tsc -p tests/types --noEmit. Nothing here executes; it only has to compile.
// The `@ts-expect-error` lines fail the check if the declarations lose precision (e.g. `any`).
import init, { initSync, BatchProcessor, summarize } from "../../pkg/edgebatch.js";

type Options = NonNullable<ConstructorParameters<typeof BatchProcessor>[0]>;

declare const wasmBytes: Uint8Array;
declare const wasmModule: WebAssembly.Module;

// Loading: all three documented ways.
initSync({ module: wasmBytes });
initSync({ module: wasmModule });
async function browserInit(): Promise<void> {
  await init();
}
void browserInit;

async function main(): Promise<void> {
  const controller = new AbortController();

  // Every documented option, typed.
  const options: Options = {
    concurrency: 8,
    maxRetries: 4,
    timeoutMs: 60_000,
    deadlineMs: 120_000,
    backoff: { baseMs: 500, maxMs: 30_000, jitter: "full" },
    maxRetryAfterMs: 60_000,
    seed: 42,
    signal: controller.signal,
    onProgress: (p) => {
      const counts: number[] = [p.total, p.done, p.ok, p.failed, p.inFlight, p.queued, p.waiting, p.retries, p.elapsedMs];
      void counts;
    },
    onEvent: (e) => {
      const common: [number, number, number] = [e.index, e.attempt, e.atMs];
      void common;
      if (e.type === "end") {
        const latency: number = e.latencyMs;
        const outcome: string = e.outcome;
        const status: number | undefined = e.status;
        void [latency, outcome, status];
      } else if (e.type === "backoff") {
        const delay: number = e.delayMs;
        void delay;
      }
      // @ts-expect-error delayMs exists only on backoff events
      void e.delayMs;
    },
  };
  const bp = new BatchProcessor(options);
  new BatchProcessor();
  new BatchProcessor({});
  new BatchProcessor({ backoff: { jitter: "decorrelated" } });

  // @ts-expect-error misspelled option
  new BatchProcessor({ concurency: 4 });
  // @ts-expect-error concurrency is a number
  new BatchProcessor({ concurrency: "8" });
  // @ts-expect-error jitter is one of "full" | "decorrelated" | "none"
  new BatchProcessor({ backoff: { jitter: "random" } });
  // @ts-expect-error signal is an AbortSignal, not the controller
  new BatchProcessor({ signal: controller });

  // map with a typed fn: item type flows in, value type flows out.
  const prompts = ["a", "b", "c"];
  const results = await bp.map(
    prompts,
    async (prompt, { signal, attempt, index }) => {
      const s: AbortSignal = signal;
      const a: number = attempt;
      const i: number = index;
      void [s, a, i];
      return prompt.length;
    },
    { signal: controller.signal },
  );
  // postProcess: the results carry the export's values, typed by the caller.
  const extracted = await bp.map(["a"], async (doc) => doc.length, {
    postProcess: { module: new URL("file:///extract.js"), export: "extractEntities", threads: 2 },
  });
  const typed = await bp.map<string, number, { entities: string[] }>(["a"], (doc) => doc.length, {
    postProcess: { module: "/abs/extract.js" },
  });
  if (typed[0].ok) {
    const entities: string[] = typed[0].value.entities;
    void entities;
  }
  void extracted;
  // @ts-expect-error threads is a number
  void bp.map(["a"], (d) => d, { postProcess: { module: "/x.js", threads: "2" } });
  for (const r of results) {
    const index: number = r.index;
    const attempts: number = r.attempts;
    const elapsed: number = r.elapsedMs;
    void [index, attempts, elapsed];
    // @ts-expect-error value exists only once `ok` is narrowed to true
    void r.value;
    if (r.ok) {
      const n: number = r.value;
      void n;
      // @ts-expect-error the value is a number, not a string
      const s: string = r.value;
      void s;
    } else {
      const kind: "timeout" | "http" | "network" | "aborted" | "deadline" | "invalid" | "task" | "budget" | "process" | "deferred" | "cost_cap" = r.error.kind;
      const message: string = r.error.message;
      const retryable: boolean = r.error.retryable;
      const status: number | undefined = r.error.status;
      const type: string | undefined = r.error.type;
      const retryAfterMs: number | undefined = r.error.retryAfterMs;
      void [kind, message, retryable, status, type, retryAfterMs];
    }
  }

  // A sync fn returning a plain value is fine too.
  const squares = await bp.map(new Set([1, 2, 3]), (n) => n * n);
  const first = squares[0];
  if (first && first.ok) {
    const v: number = first.value;
    void v;
  }

  // @ts-expect-error the item is a string: no toFixed
  await bp.map(prompts, (p) => p.toFixed(2));

  // @ts-expect-error a string is refused as items (it would run one item per character)
  await bp.map("abc", (c) => c);

  // run() with fetch specs.
  const replies = await bp.run([
    { url: "https://api.example.test/v1/messages", method: "POST", headers: { "x-api-key": "k" }, body: { model: "m" } },
    { url: "https://api.example.test/v1/text" },
  ]);
  for (const r of replies) {
    if (r.ok) {
      const status: number = r.value.status;
      const ct: string | undefined = r.value.headers["content-type"];
      const body: unknown = r.value.body;
      void [status, ct, body];
    }
  }
  // @ts-expect-error a spec needs a url
  await bp.run([{ method: "GET" }]);

  // permits: a shared permit source; its answers and outcomes are typed.
  await bp.run([{ url: "https://api.example.test/v1/text" }], {
    permits: {
      acquire: async (index: number, cost) => (cost.inputTokens > 1e6 ? { never: "too big" } : { id: `${index}` }),
      release: (_id, outcome) => ("abandoned" in outcome ? undefined : outcome.ok),
    },
  });
  await bp.map([1], (n) => n, {
    permits: { acquire: () => ({ defer: { untilMs: Date.now() + 1000, reason: "busy" } }), release() {} },
  });
  // @ts-expect-error acquire must answer { id }, { never } or { defer }
  await bp.map([1], (n) => n, { permits: { acquire: () => ({ wait: 5 }), release() {} } });

  // Providers: run() takes the provider's own request bodies; summarize() totals a batch.
  const claude = new BatchProcessor({
    provider: { name: "anthropic", apiKey: "k", baseUrl: "http://127.0.0.1:8787", version: "2023-06-01" },
  });
  new BatchProcessor({ provider: { name: "openai", apiKey: "k" } });
  // @ts-expect-error not a supported provider
  new BatchProcessor({ provider: { name: "gemini" } });
  // @ts-expect-error apiKey is a string
  new BatchProcessor({ provider: { name: "anthropic", apiKey: 42 } });
  const answers = await claude.run([
    { model: "claude-test", max_tokens: 64, messages: [{ role: "user", content: "hi" }] },
  ]);
  for (const r of answers) {
    if (r.ok) {
      const text: string = r.value.text;
      const stop: string | null = r.value.stopReason;
      const tokensIn: number = r.value.usage.inputTokens;
      const tokensOut: number | undefined = r.usage?.outputTokens;
      void [text, stop, tokensIn, tokensOut];
    }
  }
  const summary = summarize(answers);
  const totals: number[] = [summary.total, summary.ok, summary.failed, summary.attempts, summary.retries];
  const httpFailures: number | undefined = summary.byKind.http;
  const usage: number = summary.usage.inputTokens + summary.usage.outputTokens;
  void [totals, httpFailures, usage];
  summarize(results);

  // stream(): for-await over results in completion order.
  for await (const r of bp.stream(prompts, async (p) => ({ text: p }))) {
    if (r.ok) {
      const text: string = r.value.text;
      void text;
    } else if (r.error.kind === "deadline") {
      const wait: number | undefined = r.error.retryAfterMs;
      void wait;
    }
    break;
  }

  // stream() without a function: fetch specs, or provider bodies.
  for await (const r of bp.stream([{ url: "https://api.example.test/v1/text" }], { signal: new AbortController().signal })) {
    if (r.ok) {
      const status: number = r.value.status;
      void status;
    }
  }
  for await (const r of bp.stream([{ model: "m", max_tokens: 10, messages: [] }])) {
    if (r.ok) {
      const text: string = r.value.text;
      const out: number | undefined = r.usage?.outputTokens;
      void [text, out];
    }
  }
  // @ts-expect-error without a function, items must be fetch specs or provider bodies
  bp.stream([{ method: "GET" }]);
}
void main;
