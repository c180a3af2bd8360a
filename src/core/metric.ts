// Reads the metric (and secondary metrics) a run printed: "<name>: <number>", "METRIC <name>=<number>" or a custom regex.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { RatchetError } from './errors.js';
import { compileSafeRegex } from './safe-regex.js';

export interface MetricSpec {
  name: string;
  /** Regex (RE2 syntax) with a capture group around the number; the last match in the text wins. */
  pattern?: string;
  secondary: string[];
}

export interface ParsedMetrics {
  /** null when the metric is missing or its last report is not a finite number (nan, inf, text). */
  value: number | null;
  /** Finite secondary values only; a missing or non-finite one is left out. */
  secondary: Record<string, number>;
  /** The line the primary value was read from, kept for the record even when it held no number. */
  line: string | null;
  /**
   * How many times the primary metric was reported in the text (every match, number or not).
   * More than one, without an evaluate step, means the run printed its own metric line more than once.
   */
  count: number;
}

export const DEFAULT_TAIL_BYTES = 1024 * 1024;

/** A plain decimal or exponent number with an optional sign; nan and inf are deliberately not numbers here. */
const NUMBER = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;

export function parseMetrics(text: string, spec: MetricSpec): ParsedMetrics {
  const lines = text.split(/\r\n|\r|\n/);
  const primary = spec.pattern !== undefined ? lastPatternMatch(text, spec.pattern) : lastReport(lines, spec.name);
  const secondary: Record<string, number> = {};
  for (const name of spec.secondary) {
    const value = lastReport(lines, name).last?.value ?? null;
    if (value !== null) secondary[name] = value;
  }
  return { value: primary.last?.value ?? null, secondary, line: primary.last?.line ?? null, count: primary.count };
}

/**
 * The last `maxBytes` of the log, starting at a line boundary so a partial first line cannot
 * fake a match; a flooded multi-gigabyte log costs one bounded read. A missing log reads as empty.
 */
export function readMetricText(logPath: string, maxBytes = DEFAULT_TAIL_BYTES): string {
  if (!Number.isSafeInteger(maxBytes) || maxBytes <= 0) {
    throw new RatchetError('invalid_argument', `maxBytes must be a positive integer, got ${maxBytes}.`, 'Pass a byte count such as 1048576.');
  }
  let fd: number;
  try {
    fd = openSync(logPath, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw err;
  }
  try {
    const size = fstatSync(fd).size;
    const start = Math.max(0, size - maxBytes);
    const buf = Buffer.alloc(size - start);
    let read = 0;
    while (read < buf.length) {
      const n = readSync(fd, buf, read, buf.length - read, start + read);
      if (n === 0) break;
      read += n;
    }
    const bytes = buf.subarray(0, read);
    if (start === 0) return bytes.toString('utf8');
    // Newline bytes never occur inside a multi-byte UTF-8 sequence, so cutting there keeps the text valid.
    const cut = firstLineBreak(bytes);
    return cut < 0 ? '' : bytes.subarray(cut + 1).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

interface Reports {
  /** The last report decides even when it is not a number: a run that printed a good value and then diverged to nan must read as missing. */
  last: { value: number | null; line: string } | null;
  count: number;
}

/** Reports of `name` in either default form. The regex is built here from an escaped name, so it cannot backtrack badly. */
function lastReport(lines: string[], name: string): Reports {
  const escaped = escapeRegExp(name);
  const report = new RegExp(`^\\s*(?:${escaped}\\s*:|METRIC\\s+${escaped}\\s*=)(.*)$`);
  let last: Reports['last'] = null;
  let count = 0;
  for (const line of lines) {
    const m = report.exec(line);
    if (!m) continue;
    count++;
    last = { value: toNumber(m[1] ?? ''), line };
  }
  return { last, count };
}

function lastPatternMatch(text: string, pattern: string): Reports {
  // Multiline so ^ and $ work per line; CRLF is folded first so "$" is not stuck behind a "\r".
  const regex = compileSafeRegex(pattern, {
    multiline: true,
    label: 'metric.pattern',
    code: 'config_invalid',
    hint: 'Fix metric.pattern in ratchet.json before starting the session.',
  });
  const normalized = text.replace(/\r\n?/g, '\n');
  let last: ReturnType<typeof regex.exec> = null;
  let count = 0;
  for (const m of regex.matchAll(normalized)) {
    last = m;
    count++;
  }
  if (!last) return { last: null, count };
  const captured = last.groups.find((g) => g !== undefined) ?? '';
  return { last: { value: toNumber(captured), line: lineAround(normalized, last.index) }, count };
}

function toNumber(raw: string): number | null {
  const s = raw.trim();
  if (!NUMBER.test(s)) return null;
  const n = Number(s);
  // 1e999 parses to Infinity; an overflowing metric is no more trustworthy than "inf".
  return Number.isFinite(n) ? n : null;
}

function lineAround(text: string, index: number): string {
  const start = text.lastIndexOf('\n', index - 1) + 1;
  const end = text.indexOf('\n', index);
  return text.slice(start, end < 0 ? text.length : end);
}

function firstLineBreak(bytes: Buffer): number {
  const lf = bytes.indexOf(0x0a);
  const cr = bytes.indexOf(0x0d);
  if (lf < 0) return cr;
  if (cr < 0) return lf;
  return Math.min(lf, cr);
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\-]/g, '\\$&');
}
