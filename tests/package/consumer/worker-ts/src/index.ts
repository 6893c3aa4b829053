// A TypeScript Worker: the one import, typed results; and the raw entry with the wasm
// imported as a module, for a Worker that must control loading.
import { BatchProcessor, type ItemResult } from 'edgebatch';
import { initSync } from 'edgebatch/raw';
import wasm from 'edgebatch/edgebatch_bg.wasm';

const compiled: WebAssembly.Module = wasm;
initSync({ module: compiled });

interface Env {
  SIM_URL: string;
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const bp = new BatchProcessor({ concurrency: 2 });
    const results: ItemResult<number>[] = await bp.map([1, 2], async (n: number) => n + env.SIM_URL.length);
    const sum = results.reduce((total, r) => total + (r.ok ? r.value : 0), 0);
    return Response.json({ sum, url: request.url });
  },
};
