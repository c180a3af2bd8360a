// read_log: a page of an experiment's run or evaluate log, optionally filtered, bounded in size.
import { z } from 'zod';
import { defineTool } from './define.js';
import { MAX_PAGE_LINES } from '../core/log-reader.js';
import { experimentIdField } from './wait-experiment.js';

export const readLog = defineTool({
  name: 'read_log',
  title: 'Read an experiment log',
  description:
    'Call to see what a run printed: a crash\'s traceback, the training curve, a warning. Without offset it returns the last `limit` lines; with offset, lines from there. ' +
    'grep filters lines by a regular expression. Lines longer than 2000 characters are cut.',
  kind: 'read',
  idempotent: true,
  input: {
    id: experimentIdField,
    offset: z.number().int().min(0).optional().describe('Index of the first line to return (0-based, counted after grep); omit for the tail. Returned lines carry their 1-based line number n in the file.'),
    limit: z.number().int().min(1).max(MAX_PAGE_LINES).optional().describe(`Lines to return (default 100, at most ${MAX_PAGE_LINES}).`),
    grep: z.string().max(500).optional().describe('JavaScript regular expression; only matching lines are returned.'),
    phase: z.enum(['run', 'evaluate']).optional().describe('Which log: the run (default) or the trusted evaluate step.'),
  },
  output: {
    path: z.string(),
    lines: z.array(z.object({ n: z.number().int(), text: z.string() })),
    totalLines: z.number().int(),
    matchedLines: z.number().int(),
    nextOffset: z.number().int().nullable(),
    sizeBytes: z.number().int(),
  },
  async handler(args, { loop }) {
    const page = await loop.readLog(args);
    return { summary: `${page.lines.length} line(s) of ${page.matchedLines}${args.grep ? ' matching' : ''} (${page.totalLines} in the log).`, ...page };
  },
});
