// Karpathy's results.tsv (commit, metric, memory_gb, status, description): appended per final experiment, rewritten only when it must be.
import { appendFileSync, closeSync, fstatSync, openSync, readFileSync, readSync, renameSync, writeFileSync } from 'node:fs';
import type Database from 'better-sqlite3';
import type { ExperimentRow } from './rows.js';

export type ResultsSource = Pick<ExperimentRow, 'kind' | 'state' | 'decision' | 'commit' | 'metric' | 'secondary' | 'peakMemoryBytes' | 'description'>;

/** Decided, crashed, timed out, pruned or cancelled (or a measured baseline): the row's line will not change. */
export function isFinalForResults(e: Pick<ExperimentRow, 'kind' | 'state' | 'decision'>): boolean {
  if (e.kind === 'repeat' || e.state === 'refused' || e.state === 'queued' || e.state === 'running') return false;
  return !(e.state === 'measured' && e.decision === null && e.kind !== 'baseline');
}

const NAMED: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r', '\v': '\\v', '\f': '\\f' };
// C0 and C1 controls, DEL, and the Unicode line and paragraph separators: anything that could end or split a line.
const UNSAFE = /[\\\u0000-\u001f\u007f-\u009f\u2028\u2029]/g;

/** One field on one line, reversibly: backslash escapes for the named controls, \uXXXX for the rest. */
export function escapeField(s: string): string {
  return s.replace(UNSAFE, (c) => NAMED[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

export function unescapeField(s: string): string {
  const back: Record<string, string> = { '\\': '\\', t: '\t', n: '\n', r: '\r', v: '\v', f: '\f' };
  return s.replace(/\\(u[0-9a-f]{4}|[\\tnrvf])/g, (_, c: string) => (c.length === 5 ? String.fromCharCode(parseInt(c.slice(1), 16)) : back[c]!));
}

export const resultsHeader = (metricName: string) => ['commit', escapeField(metricName), 'memory_gb', 'status', 'description'].join('\t') + '\n';

export function resultsLine(e: ResultsSource): string {
  const status = e.state === 'pruned' ? 'discard' : e.state !== 'measured' ? 'crash' : e.decision === 'kept' || e.kind === 'baseline' ? 'keep' : 'discard';
  return [(e.commit ?? '').slice(0, 7), formatMetric(e.metric), memoryGb(e).toFixed(1), status, escapeField(e.description)].join('\t') + '\n';
}

/** Karpathy's six decimals, except where they would round a real value to zero. */
function formatMetric(value: number | null): string {
  if (value === null) return '0.000000';
  return value !== 0 && Math.abs(value) < 1e-3 ? value.toExponential(6) : value.toFixed(6);
}

/** GPU memory when the run reported it (as Karpathy's peak_vram_mb), else the process tree's peak RSS. */
function memoryGb(e: ResultsSource): number {
  if (typeof e.secondary.peak_vram_mb === 'number') return e.secondary.peak_vram_mb / 1024;
  return e.peakMemoryBytes ? e.peakMemoryBytes / 1024 ** 3 : 0;
}

/** What this process last wrote to a file, to tell whether an append still lands where expected. */
interface Written {
  sessionId: number;
  metricName: string;
  epoch: number;
  lastId: number;
  lines: number;
  size: number;
  tail: Buffer;
}

const TAIL_BYTES = 256;
export type ResultsWrite = 'appended' | 'rewritten' | 'unchanged';

type SourceRow = { id: number; kind: string; state: string; decision: string | null; commit: string | null; metric: number | null; secondary: string; peak_memory_bytes: number | null; description: string };

/**
 * Keeps results files in step with the ledger. An append is trusted only when the file still ends with the
 * bytes this process wrote and the line count matches the session's running total; anything else rewrites.
 */
export class ResultsFiles {
  private readonly written = new Map<string, Written>();
  private readonly after: Database.Statement;
  private readonly newest: Database.Statement;
  private readonly finalCount: Database.Statement;

  constructor(private readonly db: Database.Database, private readonly epochOf: (sessionId: number) => number) {
    const cols = 'id, kind, state, decision, "commit", metric, secondary, peak_memory_bytes, description';
    this.after = db.prepare(`SELECT ${cols} FROM experiments WHERE session_id = ? AND kind != 'repeat' AND id > ? ORDER BY id`);
    this.newest = db.prepare(`SELECT ${cols} FROM experiments WHERE session_id = ? AND kind != 'repeat' ORDER BY id DESC`);
    this.finalCount = db.prepare('SELECT COALESCE(SUM(n), 0) FROM session_totals WHERE session_id = ? AND in_results = 1').pluck();
  }

  sync(sessionId: number, metricName: string, file: string): ResultsWrite {
    const total = this.finalCount.get(sessionId) as number;
    let was = this.written.get(file);
    if (!was || was.sessionId !== sessionId || was.metricName !== metricName) {
      // A new process (or another session's file): adopt a file that already holds exactly the final lines, instead of rewriting it.
      was = this.adopt(file, sessionId, metricName, total);
      if (was) this.written.set(file, was);
    }
    if (was && was.sessionId === sessionId && was.metricName === metricName && was.epoch === this.epochOf(sessionId) && endsWith(file, was)) {
      const rows = this.finalRows(sessionId, was.lastId);
      if (was.lines + rows.length === total) {
        if (!rows.length) return 'unchanged';
        const text = rows.map((r) => resultsLine(r)).join('');
        appendFileSync(file, text);
        this.remember(file, { ...was, lastId: rows[rows.length - 1]!.id, lines: was.lines + rows.length }, was.tail, text);
        return 'appended';
      }
    }
    const rows = this.finalRows(sessionId, 0);
    const text = resultsHeader(metricName) + rows.map((r) => resultsLine(r)).join('');
    const tmp = `${file}.tmp`;
    writeFileSync(tmp, text);
    renameSync(tmp, file);
    const base = { sessionId, metricName, epoch: this.epochOf(sessionId), lastId: rows.at(-1)?.id ?? 0, lines: rows.length, size: 0 };
    this.remember(file, base, Buffer.alloc(0), text);
    return 'rewritten';
  }

  /** The full text, for callers that want it without a file. */
  text(sessionId: number, metricName: string): string {
    return resultsHeader(metricName) + this.finalRows(sessionId, 0).map((r) => resultsLine(r)).join('');
  }

  /** The file as it stands, when its header, line count and last line are what the ledger says; else undefined. */
  private adopt(file: string, sessionId: number, metricName: string, total: number): Written | undefined {
    let buf: Buffer;
    try {
      buf = readFileSync(file);
    } catch {
      return undefined;
    }
    const header = Buffer.from(resultsHeader(metricName));
    if (!buf.subarray(0, header.length).equals(header)) return undefined;
    let lines = 0;
    for (let i = buf.indexOf(10); i !== -1; i = buf.indexOf(10, i + 1)) lines++;
    if (lines !== total + 1) return undefined;
    const last = this.lastFinalRow(sessionId);
    const tail = Buffer.from(last ? resultsLine(last) : '');
    if (!buf.subarray(buf.length - tail.length).equals(tail)) return undefined;
    const base = { sessionId, metricName, epoch: this.epochOf(sessionId), lastId: last?.id ?? 0, lines: total, size: buf.length };
    return { ...base, tail: buf.subarray(Math.max(0, buf.length - TAIL_BYTES)) };
  }

  private lastFinalRow(sessionId: number): (ResultsSource & { id: number }) | undefined {
    for (const r of this.newest.iterate(sessionId) as IterableIterator<SourceRow>) {
      const row = toSource(r);
      if (row) return row; // returning ends the iteration and resets the statement
    }
    return undefined;
  }

  private finalRows(sessionId: number, afterId: number): (ResultsSource & { id: number })[] {
    const out: (ResultsSource & { id: number })[] = [];
    for (const r of this.after.iterate(sessionId, afterId) as IterableIterator<SourceRow>) {
      const row = toSource(r);
      if (row) out.push(row);
    }
    return out;
  }

  private remember(file: string, base: Omit<Written, 'tail'>, oldTail: Buffer, appended: string): void {
    const added = Buffer.from(appended);
    const tail = Buffer.concat([oldTail, added]);
    this.written.set(file, { ...base, size: base.size + added.length, tail: tail.subarray(Math.max(0, tail.length - TAIL_BYTES)) });
  }
}

/** The row's results.tsv source when it is final, else null. */
function toSource(r: SourceRow): (ResultsSource & { id: number }) | null {
  const e = { id: r.id, kind: r.kind, state: r.state, decision: r.decision } as Pick<ExperimentRow, 'id' | 'kind' | 'state' | 'decision'>;
  if (!isFinalForResults(e)) return null;
  let secondary: Record<string, number> = {};
  try {
    secondary = JSON.parse(r.secondary || '{}') as Record<string, number>;
  } catch {
    // An unparsable column was written outside ratchet; the tamper check reports it, the file still gets a line.
  }
  return { ...e, commit: r.commit, metric: r.metric, secondary, peakMemoryBytes: r.peak_memory_bytes, description: r.description };
}

/** The file is still exactly as long as we left it and ends with the bytes we wrote. */
function endsWith(file: string, w: Written): boolean {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return false;
  }
  try {
    if (fstatSync(fd).size !== w.size) return false;
    const buf = Buffer.alloc(w.tail.length);
    readSync(fd, buf, 0, buf.length, w.size - w.tail.length);
    return buf.equals(w.tail);
  } finally {
    closeSync(fd);
  }
}
