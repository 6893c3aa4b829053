// The axe-core audit the page tests share: axe-core from the root package.json's
// devDependencies, injected into the page and run there (as its docs say), with the WCAG 2
// A/AA rules (2.0, 2.1, 2.2) and the best practices. Returns the violations, one line each
// (rule, help, where), so a failing assert shows what to fix.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const SOURCE = (() => {
  let entry;
  try {
    entry = createRequire(import.meta.url).resolve('axe-core');
  } catch {
    throw new Error('axe-core is not installed: it is a devDependency of the root package.json (make setup runs npm ci)');
  }
  return readFileSync(join(dirname(entry), 'axe.min.js'), 'utf8');
})();

export const AXE_TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice'];

/**
 * Audits the whole document of `page` (a Playwright page) as it is now.
 * @param {import('playwright-core').Page} page
 * @returns {Promise<string[]>} the violations, empty when axe finds nothing
 */
export async function axe(page) {
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) await page.evaluate(SOURCE);
  const violations = await page.evaluate((tags) => window.axe.run(document, { runOnly: { type: 'tag', values: tags } })
    .then((r) => r.violations.map((v) => ({ id: v.id, help: v.help, nodes: v.nodes.map((n) => n.target.join(' ')) }))), AXE_TAGS);
  return violations.map((v) => `${v.id}: ${v.help} (${v.nodes.join(', ')})`);
}
