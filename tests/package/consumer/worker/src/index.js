// A user's Worker: imports only "edgebatch" and runs a batch against the upstream in
// env.SIM_URL, answering with the results.
import { BatchProcessor, summarize } from 'edgebatch';
import * as extract from './extract.js';

export default {
  async fetch(request, env) {
    const { docs } = await request.json();
    if (new URL(request.url).pathname === '/post') {
      // postProcess on workerd: inline, in slices; a module object (workerd imports no URL).
      const bp = new BatchProcessor({ concurrency: 4 });
      const ticks = { n: 0 };
      const timer = setInterval(() => ticks.n++, 0);
      const found = await bp.map(docs, async (doc) => doc, { postProcess: { module: extract, export: 'entities' } });
      clearInterval(timer);
      const strict = await bp.map(docs, async (doc) => doc, { postProcess: { module: extract, export: 'strict', threads: 4 } });
      return Response.json({ found, strict, ticks: ticks.n });
    }
    const bp = new BatchProcessor({
      concurrency: 4,
      provider: { name: 'anthropic', apiKey: 'sk-ant-consumer-test', baseUrl: env.SIM_URL },
    });
    const results = await bp.run(docs.map((doc) => ({
      model: 'sim-1',
      max_tokens: 64,
      messages: [{ role: 'user', content: `Summarize: ${doc}` }],
    })));
    return Response.json({ results, summary: summarize(results) });
  },
};
