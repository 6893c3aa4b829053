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
// `cost` takes the item as `unknown`: an annotated item type is accepted, an unchecked use is not.
interface Doc { text: string }
new BatchProcessor({ cost: (doc: Doc) => ({ inputTokens: doc.text.length / 4 }) });
// @ts-expect-error: the item is unknown until annotated or narrowed
new BatchProcessor({ cost: (item) => ({ inputTokens: item.text.length }) });
// @ts-expect-error: concurrency is a number
new BatchProcessor({ concurrency: 'eight' });
