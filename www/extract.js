// The demo's post-processing stage: after a summary comes back, pick its entities (capitalised
// words). The page runs edgebatch's raw build, so the stage runs inline on the page's main
// thread; as a generator it gives the page back at each `yield`, between words.
export function* entities(value) {
  const found = new Set();
  for (const word of String(value?.text ?? '').split(/\s+/)) {
    const clean = word.replace(/[^\p{L}\p{N}-]/gu, '');
    if (/^\p{Lu}/u.test(clean)) found.add(clean);
    yield;
  }
  return { ...value, entities: [...found] };
}
