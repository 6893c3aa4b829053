// What one item of a batch may ask an upstream for, so that a token (leaked or not) cannot
// buy more than the Worker's owner agreed to: an allowed model, a capped output length, a
// capped size (input tokens are billed on every attempt), one completion, and no server-side
// tools (web search and the like are billed per use) unless EDGEBATCH_ALLOW_SERVER_TOOLS, and
// text content only (images and documents are billed by pixels and pages, which a byte cap does
// not bound: a small PDF can be hundreds of pages, a URL source anything) unless
// EDGEBATCH_ALLOW_MEDIA. Every refusal is a 400 naming the item and the rule.
import { badRequest } from './http.js';

/** Tool types a client runs itself (free upstream); any other `type` is a server tool. */
const CLIENT_TOOL_TYPES = new Set(['custom', 'function']);
/** Content blocks billed by their text (Anthropic's and OpenAI's); tool_result is looked into. */
const TEXT_BLOCKS = new Set(['text', 'tool_use', 'tool_result', 'thinking', 'redacted_thinking', 'refusal']);
/** Output caps by provider: the field that caps a reply's length, and the ones accepted. */
export const OUTPUT_FIELDS = {
  anthropic: ['max_tokens'],
  openai: ['max_completion_tokens', 'max_tokens'],
};

/**
 * @param {object} item a request body (already known to be a plain object)
 * @param {number} i its index, for the messages
 * @param {string} provider `anthropic` or `openai`
 * @param {{ models: string[], maxOutputTokens: number, maxItemBytes: number, serverTools: boolean,
 *   media: boolean, repeats?: Map<string, number> }} rules `repeats`: models of fallbacks on this
 *   upstream (validate.js repeatedModels)
 */
/** Text, or blocks of text only (looking into tool results): no images, documents, audio, files. */
function checkContent(content, at) {
  if (!Array.isArray(content)) return;
  content.forEach((block, k) => {
    const type = block && typeof block === 'object' && Object.hasOwn(block, 'type') ? block.type : undefined;
    if (!TEXT_BLOCKS.has(type)) {
      throw badRequest(`${at}[${k}] has type ${JSON.stringify(String(type)).slice(0, 40)}: only text content is allowed here ` +
        '(images and documents are billed by size, not bytes; EDGEBATCH_ALLOW_MEDIA)');
    }
    if (type === 'tool_result' && Object.hasOwn(block, 'content')) checkContent(block.content, `${at}[${k}].content`);
  });
}

export function checkItem(item, i, provider, rules) {
  const at = `items[${i}]`;
  const bytes = new TextEncoder().encode(JSON.stringify(item)).byteLength;
  if (bytes > rules.maxItemBytes) {
    throw badRequest(`${at} is ${bytes} bytes; at most ${rules.maxItemBytes} per item (EDGEBATCH_MAX_ITEM_BYTES)`);
  }
  const model = Object.hasOwn(item, 'model') ? item.model : undefined;
  if (!rules.models.includes('*') && !rules.models.includes(model)) {
    throw badRequest(`${at}.model must be one of ${rules.models.join(', ')} (EDGEBATCH_MODELS)`);
  }
  // options.fallbacks (validate.js repeatedModels): an alternative on this upstream with this
  // model would send the item to where it already failed, a cycle.
  const repeat = typeof model === 'string' ? rules.repeats?.get(model) : undefined;
  if (repeat !== undefined) {
    throw badRequest(`${at}.model ${JSON.stringify(model)} is options.fallbacks[${repeat}]'s model on the same upstream: ` +
      'that alternative would repeat this item\'s first choice');
  }
  const fields = OUTPUT_FIELDS[provider] ?? ['max_tokens'];
  const given = fields.filter((f) => Object.hasOwn(item, f));
  if (given.length === 0) {
    throw badRequest(`${at}.${fields[0]} is required here (at most ${rules.maxOutputTokens}, EDGEBATCH_MAX_OUTPUT_TOKENS)`);
  }
  for (const f of given) {
    const v = item[f];
    if (!Number.isInteger(v) || v < 1 || v > rules.maxOutputTokens) {
      throw badRequest(`${at}.${f} must be an integer in 1..=${rules.maxOutputTokens} (EDGEBATCH_MAX_OUTPUT_TOKENS)`);
    }
  }
  if (Object.hasOwn(item, 'n') && item.n !== 1) throw badRequest(`${at}.n must be 1 (one completion per item)`);
  if (!rules.media) {
    if (Object.hasOwn(item, 'system')) checkContent(item.system, `${at}.system`);
    const msgs = Object.hasOwn(item, 'messages') && Array.isArray(item.messages) ? item.messages : [];
    msgs.forEach((m, j) => {
      if (m && typeof m === 'object' && Object.hasOwn(m, 'content')) checkContent(m.content, `${at}.messages[${j}].content`);
    });
  }
  if (rules.serverTools) return;
  if (Object.hasOwn(item, 'web_search_options')) {
    throw badRequest(`${at}.web_search_options is not allowed: server-side tools are off (EDGEBATCH_ALLOW_SERVER_TOOLS)`);
  }
  const tools = Object.hasOwn(item, 'tools') ? item.tools : undefined;
  if (tools === undefined) return;
  if (!Array.isArray(tools)) throw badRequest(`${at}.tools must be an array`);
  tools.forEach((tool, t) => {
    const type = tool && typeof tool === 'object' && Object.hasOwn(tool, 'type') ? tool.type : undefined;
    if (type !== undefined && !CLIENT_TOOL_TYPES.has(type)) {
      throw badRequest(`${at}.tools[${t}] is a server-side tool (type ${JSON.stringify(String(type)).slice(0, 60)}); ` +
        'they are off here (EDGEBATCH_ALLOW_SERVER_TOOLS)');
    }
  });
}
