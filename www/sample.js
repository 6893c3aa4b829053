// Sample documents for the demo: short, varied, deterministic (document n is always the same),
// so a run can be repeated and compared.

const SUBJECTS = [
  'The harbor authority', 'A regional bakery', 'The city library', 'A wind farm operator',
  'The school district', 'A bicycle courier firm', 'The water utility', 'A small vineyard',
  'The county hospital', 'A software startup', 'The railway museum', 'A fishing cooperative',
];
const EVENTS = [
  'reported a quarter of steady growth despite rising costs',
  'found a cracked beam during a routine inspection',
  'opened a second site after a year of planning',
  'lost a key supplier and had to change its schedule',
  'ran a pilot with volunteers that doubled participation',
  'upgraded its ageing equipment ahead of the winter season',
  'settled a long dispute over parking and deliveries',
  'missed its targets after an unusually wet month',
];
const DETAILS = [
  'Managers expect demand to keep rising through spring.',
  'Inventory ran low twice but no orders were lost.',
  'Staff turnover fell for the third month in a row.',
  'A review of safety procedures is due next week.',
  'Local press coverage brought in many new customers.',
  'The board asked for a cheaper plan by the end of the year.',
  'Energy bills were the largest single cost increase.',
  'Feedback from the public was mostly positive.',
];

/** Document `n` (1-based). */
export function sampleDocument(n) {
  const pick = (list, salt) => list[(n * salt + Math.floor(n / list.length)) % list.length];
  const first = (n * 3 + Math.floor(n / DETAILS.length)) % DETAILS.length;
  const second = (first + 1 + (n % (DETAILS.length - 1))) % DETAILS.length; // never the same
  return `Document ${n}: ${pick(SUBJECTS, 7)} ${pick(EVENTS, 5)}. ${DETAILS[first]} ${DETAILS[second]}`;
}

/** `count` sample documents, one per line. */
export function sampleDocuments(count) {
  return Array.from({ length: count }, (_, i) => sampleDocument(i + 1)).join('\n');
}

/**
 * The shared system prompt of the prompt-caching option: a house style for the summaries,
 * the same text for every request, long enough for every model's smallest cacheable prefix
 * (4,096 tokens for Haiku 4.5 and Opus 4.5; about 6,000 tokens at 4 characters a token, the
 * simulator's count, so a tokenizer that finds more characters per token still reaches it).
 */
export function sharedSystemPrompt() {
  const rules = [];
  for (const subject of SUBJECTS) {
    const name = subject.toLowerCase();
    for (const event of EVENTS) {
      rules.push(`If ${name} ${event}, name it first and keep its figures.`);
    }
    for (const detail of DETAILS) {
      rules.push(`When a report on ${name} adds "${detail}", keep it only if the sentence has room.`);
    }
  }
  return [
    'You summarize short reports for a regional newsletter. Follow this house style exactly.',
    'Write one sentence, in the past tense, with no preamble and no quotation marks.',
    ...rules.map((r, i) => `Rule ${i + 1}. ${r}`),
  ].join('\n');
}
