// Paged, size-bounded reading of run logs, which may be hundreds of megabytes after an output flood.
import { createReadStream, existsSync, statSync } from 'node:fs';
import { createInterface } from 'node:readline';

export const MAX_LINE_CHARS = 2000;
export const MAX_PAGE_LINES = 500;

export interface LogPage {
  lines: { n: number; text: string }[];
  totalLines: number;
  matchedLines: number;
  nextOffset: number | null;
  sizeBytes: number;
}

/**
 * Lines [offset, offset+limit) of the log, after an optional grep; without offset, the last `limit`
 * lines. Long lines are cut so one minified blob cannot blow up a tool result.
 */
export async function readLogPage(path: string, opts: { offset?: number; limit: number; grep?: RegExp }): Promise<LogPage> {
  if (!existsSync(path)) return { lines: [], totalLines: 0, matchedLines: 0, nextOffset: null, sizeBytes: 0 };
  const limit = Math.min(Math.max(1, opts.limit), MAX_PAGE_LINES);
  const tail: { n: number; text: string }[] = [];
  const page: { n: number; text: string }[] = [];
  let total = 0;
  let matched = 0;
  const rl = createInterface({ input: createReadStream(path, { encoding: 'utf8' }), crlfDelay: Infinity });
  for await (const raw of rl) {
    const n = ++total;
    if (opts.grep && !opts.grep.test(raw)) continue;
    const entry = { n, text: raw.length > MAX_LINE_CHARS ? `${raw.slice(0, MAX_LINE_CHARS)}… [${raw.length - MAX_LINE_CHARS} more chars]` : raw };
    if (opts.offset === undefined) {
      tail.push(entry);
      if (tail.length > limit) tail.shift();
    } else if (matched >= opts.offset && page.length < limit) {
      page.push(entry);
    }
    matched++;
  }
  const lines = opts.offset === undefined ? tail : page;
  const start = opts.offset ?? Math.max(0, matched - limit);
  const next = start + lines.length;
  return { lines, totalLines: total, matchedLines: matched, nextOffset: next < matched ? next : null, sizeBytes: statSync(path).size };
}
