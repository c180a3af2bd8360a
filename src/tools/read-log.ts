// read_log: a page of an experiment's run or evaluate log, optionally filtered, bounded in bytes however large the log.
import { z } from 'zod';
import { defineTool } from './define.js';
import { MAX_LINE_BYTES, MAX_PAGE_LINES } from '../core/log-reader.js';
import { experimentIdField } from './wait-experiment.js';

export const readLog = defineTool({
  name: 'read_log',
  title: 'Read an experiment log',
  description:
    'Call to see what a run printed: a crash\'s traceback, the training curve, a warning. Without offset it returns the last `limit` lines; with offset (a byte offset from a previous page), lines from there. ' +
    `grep filters lines by a regular expression (RE2 syntax: no lookaround or backreferences). Lines longer than ${MAX_LINE_BYTES} bytes are cut; a page never exceeds 256 KiB, so a flooded log stays readable.`,
  kind: 'read',
  idempotent: true,
  input: {
    id: experimentIdField,
    offset: z.number().int().min(0).optional().describe('Byte offset to read from: 0, a page\'s nextOffset, or a line\'s offset; omit for the tail.'),
    limit: z.number().int().min(1).max(MAX_PAGE_LINES).optional().describe(`Lines to return (default 100, at most ${MAX_PAGE_LINES}).`),
    grep: z.string().max(500).optional().describe('RE2 regular expression (linear time); only matching lines are returned.'),
    phase: z.enum(['run', 'evaluate']).optional().describe('Which log: the run (default) or the trusted evaluate step.'),
  },
  output: {
    path: z.string(),
    workspace: z.string().nullable().describe('A failed run\'s workspace, kept for inspection.'),
    lines: z.array(z.object({ offset: z.number().int(), text: z.string() })).describe('Each line with the byte offset where it starts.'),
    nextOffset: z.number().int().nullable().describe('Pass as offset for the next page; null at the end of the log.'),
    totalBytes: z.number().int(),
    truncatedLines: z.number().int().describe('Lines on this page that were cut.'),
    scannedFrom: z.number().int(),
    scannedTo: z.number().int(),
  },
  async handler(args, { loop }) {
    const page = await loop.readLog(args);
    return { summary: `${page.lines.length} line(s)${args.grep ? ' matching' : ''} from a ${page.totalBytes}-byte log${page.nextOffset !== null ? `; more from offset ${page.nextOffset}` : ''}.`, ...page };
  },
  // The lines are the data; each opens with its byte offset, which read_log takes as offset.
  text: (page) => page.lines.map((l) => `${l.offset}: ${l.text}`),
});
