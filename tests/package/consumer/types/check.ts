// A TypeScript consumer under --strict: results narrow on `ok`, `map` infers the value type.
import { BatchProcessor, summarize, type BatchOptions } from 'edgebatch';

const options: BatchOptions = { concurrency: 4, maxRetries: 2, timeoutMs: 1000 };
const bp = new BatchProcessor(options);
const results = await bp.map(['a', 'bb'], async (s, { signal, attempt }) => {
  signal.throwIfAborted();
  return { length: s.length, attempt };
});
for (const r of results) {
  if (r.ok) {
    const n: number = r.value.length;
    console.log(n);
  } else {
    const kind: string = r.error.kind;
    console.log(kind, r.error.message);
  }
}
console.log(summarize(results).ok);
// @ts-expect-error: concurrency is a number
new BatchProcessor({ concurrency: 'eight' });
