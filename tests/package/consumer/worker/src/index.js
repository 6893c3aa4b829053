// A user's Worker: imports only "edgebatch" and runs a batch against the upstream in
// env.SIM_URL, answering with the results.
import { BatchProcessor, summarize } from 'edgebatch';

export default {
  async fetch(request, env) {
    const { docs } = await request.json();
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
