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
