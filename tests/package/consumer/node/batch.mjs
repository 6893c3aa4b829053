// A Node user's script: the one import line, no init, a batch against the simulated API
// whose URL is in SIM_URL. Prints the results as JSON.
import { BatchProcessor, summarize } from 'edgebatch';

const bp = new BatchProcessor({
  concurrency: 4,
  provider: { name: 'anthropic', apiKey: 'sk-ant-consumer-test', baseUrl: process.env.SIM_URL },
});
const bodies = ['one', 'two', 'three', 'four', 'five'].map((doc) => ({
  model: 'sim-1',
  max_tokens: 64,
  messages: [{ role: 'user', content: `Summarize: ${doc}` }],
}));
const results = await bp.run(bodies);
console.log(JSON.stringify({ results, summary: summarize(results) }));
