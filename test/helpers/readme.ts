// The README as the tests read it: one section by its "## " title, and a failing test when that section is gone.
import { readFileSync } from 'node:fs';
import { expect } from 'vitest';

export const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

/** From the section's heading to the next "## " heading (or the end). */
export function readmeSection(title: string): string {
  const start = readme.indexOf(`\n## ${title}`);
  expect(start, `README lost its "${title}" section`).toBeGreaterThan(-1);
  const end = readme.indexOf('\n## ', start + 4);
  return readme.slice(start, end === -1 ? undefined : end);
}
