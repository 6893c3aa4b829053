// The Worker's post-processing module: on workerd (no threads) edgebatch runs it inline.
export function* entities(text, { index }) {
  const found = [];
  for (const word of String(text).split(/\s+/)) {
    if (/^[A-Z]/.test(word)) found.push(word);
    yield; // a slice boundary: the event loop runs between words
  }
  return { index, found };
}

export function strict(text) {
  if (text.includes('!')) throw new Error(`no exclamations: ${text}`);
  return text.length;
}
