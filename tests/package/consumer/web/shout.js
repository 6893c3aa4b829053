// The page's post-processing module, run in a Web Worker by the package's pool.
export function shout(text) {
  const where = typeof WorkerGlobalScope !== 'undefined' && self instanceof WorkerGlobalScope ? 'worker' : 'main';
  return `${where}: ${String(text).slice(0, 7).toUpperCase()}`;
}
