// A page's script, bundled by Vite or esbuild: the one import line, then a batch whose tasks
// call the simulated API named in ?sim=. The outcome goes to window.__edgebatch.
import { BatchProcessor } from 'edgebatch';

const sim = new URLSearchParams(location.search).get('sim');
const bp = new BatchProcessor({ concurrency: 3, maxRetries: 4 });
try {
  const results = await bp.map(['alpha', 'beta', 'gamma', 'delta'], async (doc, { signal }) => {
    const res = await fetch(`${sim}/v1/messages`, {
      method: 'POST',
      signal,
      headers: { 'content-type': 'application/json', 'x-api-key': 'sk-ant-consumer-test', 'anthropic-version': '2023-06-01' },
      body: JSON.stringify({ model: 'sim-1', max_tokens: 32, messages: [{ role: 'user', content: doc }] }),
    });
    if (!res.ok) throw Object.assign(new Error(await res.text()), { status: res.status, headers: res.headers });
    return (await res.json()).content[0].text;
  });
  // The stage on Web Workers: workerpool must resolve in the page's build too.
  const shouted = await bp.map(['alpha', 'beta'], async (doc) => doc, {
    postProcess: { module: new URL('./shout.js', import.meta.url), export: 'shout', threads: 2 },
  });
  window.__edgebatch = {
    ok: results.filter((r) => r.ok).length,
    total: results.length,
    texts: results.map((r) => r.value),
    post: shouted.map((r) => (r.ok ? r.value : r.error.message)),
  };
} catch (err) {
  window.__edgebatch = { error: String(err && err.stack || err) };
}
document.getElementById('out').textContent = JSON.stringify(window.__edgebatch);
