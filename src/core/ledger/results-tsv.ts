// Karpathy's results.tsv (commit, metric, memory_gb, status, description): appended per final experiment, rewritten only when it must be.
import { appendFileSync, closeSync, existsSync, fstatSync, openSync, readFileSync, readSync, renameSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type Database from 'better-sqlite3';
import { summarize } from '../statistics.js';
import type { ExperimentRow } from './rows.js';

export type ResultsSource = Pick<ExperimentRow, 'kind' | 'state' | 'decision' | 'forced' | 'commit' | 'metric' | 'secondary' | 'peakMemoryBytes' | 'description'> & {
  /** Peak GPU memory measured while the run went (GpuUsage.peakMemoryMib), when it held a GPU. */
  gpuPeakMib?: number | null;
};

/**
 * What happened, in words the notebook and a person both read. `keep`, `discard` and `crash` mean what they mean in
 * Karpathy's file (his analysis notebook counts and plots exactly those); the others say what `crash` used to hide.
 */
export type ResultsStatus = 'keep' | 'keep (forced)' | 'discard' | 'crash' | 'timeout' | 'cancelled' | 'pruned' | 'refused';

export function resultsStatus(e: Pick<ExperimentRow, 'kind' | 'state' | 'decision' | 'forced'>): ResultsStatus {
  switch (e.state) {
    case 'crashed':
      return 'crash';
    case 'timed_out':
      return 'timeout';
    case 'cancelled':
      return 'cancelled';
    case 'pruned':
      return 'pruned';
    case 'refused':
      return 'refused';
    default:
      if (e.kind === 'baseline' || e.decision === 'kept') return e.forced ? 'keep (forced)' : 'keep';
      return 'discard';
  }
}

/** Decided, crashed, timed out, pruned, cancelled or refused (or a measured baseline): the row's line will not change. */
export function isFinalForResults(e: Pick<ExperimentRow, 'kind' | 'state' | 'decision'>): boolean {
  if (e.kind === 'repeat' || e.state === 'queued' || e.state === 'running') return false;
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

/** Karpathy's six decimals: used until the session knows its noise, and when the metric never varied. */
export const DEFAULT_DECIMALS = 6;
const MAX_DECIMALS = 12;

/**
 * The decimals the session's noise justifies: one digit past the leading digit of the calibration runs' standard
 * deviation, as a measurement is written to one digit past its uncertainty (sd 0.0032 → 4 decimals, 3.4155;
 * sd 0.4 → 2 decimals). Without a noise figure (a single calibration run, or a metric that never varied) Karpathy's six.
 */
export function decimalsForNoise(sd: number | null | undefined): number {
  if (sd === null || sd === undefined || !Number.isFinite(sd) || sd <= 0) return DEFAULT_DECIMALS;
  return Math.min(MAX_DECIMALS, Math.max(0, 1 - Math.floor(Math.log10(sd))));
}

/**
 * One line, with `decimals` from decimalsForNoise. Without them the figure is written in full: that is the Ledger's
 * check for a change to a line already written, where any change to the figure must count.
 */
export function resultsLine(e: ResultsSource, decimals?: number): string {
  const metric = decimals === undefined ? String(e.metric ?? 0) : formatMetric(e.metric, decimals);
  return [(e.commit ?? '').slice(0, 7), metric, memoryGb(e).toFixed(1), resultsStatus(e), escapeField(e.description)].join('\t') + '\n';
}

/** A run with no figure reads 0 (Karpathy's convention for a crash); at six decimals a tiny real value keeps its digits. */
function formatMetric(value: number | null, decimals: number): string {
  if (value === null) return (0).toFixed(decimals);
  if (decimals === DEFAULT_DECIMALS && value !== 0 && Math.abs(value) < 1e-3) return value.toExponential(6);
  return value.toFixed(decimals);
}

/** GPU memory measured while the run went; else as the run reported it (Karpathy's peak_vram_mb); else the process tree's peak RSS. */
function memoryGb(e: ResultsSource): number {
  if (typeof e.gpuPeakMib === 'number') return e.gpuPeakMib / 1024;
  if (typeof e.secondary.peak_vram_mb === 'number') return e.secondary.peak_vram_mb / 1024;
  return e.peakMemoryBytes ? e.peakMemoryBytes / 1024 ** 3 : 0;
}

/**
 * Refusals have no commit or figure, so why each was refused goes to a second file beside results.tsv:
 * results.tsv → refusals.tsv, results-<tag>.tsv → refusals-<tag>.tsv.
 */
export function refusalsPathFor(resultsFile: string): string {
  const name = basename(resultsFile);
  return join(dirname(resultsFile), name.startsWith('results') ? `refusals${name.slice('results'.length)}` : `refusals-${name}`);
}

export const refusalsHeader = ['id', 'created_at', 'description', 'reason'].join('\t') + '\n';

/** What this process last wrote to a file, to tell whether an append still lands where expected. */
interface Written {
  sessionId: number;
  metricName: string;
  decimals: number;
  epoch: number;
  lastId: number;
  lines: number;
  size: number;
  tail: Buffer;
}

const TAIL_BYTES = 256;
export type ResultsWrite = 'appended' | 'rewritten' | 'unchanged';

type SourceRow = {
  id: number;
  kind: string;
  state: string;
  decision: string | null;
  forced: number;
  commit: string | null;
  metric: number | null;
  secondary: string;
  peak_memory_bytes: number | null;
  description: string;
  gpu_peak_mib: number | null;
};

/**
 * Keeps results files in step with the ledger. An append is trusted only when the file still ends with the
 * bytes this process wrote and the line count matches the session's running total; anything else rewrites.
 */
export class ResultsFiles {
  private readonly written = new Map<string, Written>();
  private readonly after: Database.Statement;
  private readonly newest: Database.Statement;
  private readonly finalCount: Database.Statement;
  private readonly baseline: Database.Statement;
  private readonly calibration: Database.Statement;
  private readonly refused: Database.Statement;
  private readonly refusedCount: Database.Statement;
  private readonly decimalsMemo = new Map<string, number>();
  /** How many refusals this process last wrote to each refusals file. */
  private readonly refusalsWritten = new Map<string, number>();

  constructor(private readonly db: Database.Database, private readonly epochOf: (sessionId: number) => number) {
    // The run's own GPU samples, as gpuUsage reads them: its processes' peak, else its GPUs'.
    const gpuPeak = "(SELECT COALESCE(MAX(g.memory_mib), MAX(g.device_memory_mib)) FROM gpu_samples g WHERE g.experiment_id = experiments.id AND g.phase = 'run') AS gpu_peak_mib";
    const cols = `id, kind, state, decision, forced, "commit", metric, secondary, peak_memory_bytes, description, ${gpuPeak}`;
    this.after = db.prepare(`SELECT ${cols} FROM experiments WHERE session_id = ? AND kind != 'repeat' AND id > ? ORDER BY id`);
    this.newest = db.prepare(`SELECT ${cols} FROM experiments WHERE session_id = ? AND kind != 'repeat' ORDER BY id DESC`);
    // Refusals have a line too; the running totals count them apart from the experiments that ran.
    this.finalCount = db
      .prepare("SELECT COALESCE(SUM(n), 0) FROM session_totals WHERE session_id = ? AND (in_results = 1 OR (is_repeat = 0 AND state = 'refused'))")
      .pluck();
    this.baseline = db.prepare("SELECT id, kind, state, decision FROM experiments WHERE session_id = ? AND kind = 'baseline' ORDER BY id LIMIT 1");
    this.calibration = db.prepare('SELECT s.value FROM samples s JOIN experiments e ON e.id = s.experiment_id WHERE (e.id = ? OR e.repeat_of = ?) AND s.name = ?').pluck();
    this.refusedCount = db.prepare("SELECT COALESCE(SUM(n), 0) FROM session_totals WHERE session_id = ? AND is_repeat = 0 AND state = 'refused'").pluck();
    this.refused = db.prepare("SELECT id, created_at, description, reason FROM experiments WHERE session_id = ? AND kind != 'repeat' AND state = 'refused' ORDER BY id");
  }

  sync(sessionId: number, metricName: string, file: string): ResultsWrite {
    const total = this.finalCount.get(sessionId) as number;
    const decimals = this.decimals(sessionId, metricName);
    let was = this.written.get(file);
    if (!was || was.sessionId !== sessionId || was.metricName !== metricName) {
      // A new process (or another session's file): adopt a file that already holds exactly the final lines, instead of rewriting it.
      was = this.adopt(file, sessionId, metricName, total, decimals);
      if (was) this.written.set(file, was);
    }
    this.syncRefusals(sessionId, refusalsPathFor(file));
    const same = was && was.sessionId === sessionId && was.metricName === metricName && was.decimals === decimals;
    if (was && same && was.epoch === this.epochOf(sessionId) && endsWith(file, was)) {
      const rows = this.finalRows(sessionId, was.lastId);
      if (was.lines + rows.length === total) {
        if (!rows.length) return 'unchanged';
        const text = rows.map((r) => resultsLine(r, decimals)).join('');
        appendFileSync(file, text);
        this.remember(file, { ...was, lastId: rows[rows.length - 1]!.id, lines: was.lines + rows.length }, was.tail, text);
        return 'appended';
      }
    }
    const rows = this.finalRows(sessionId, 0);
    const text = resultsHeader(metricName) + rows.map((r) => resultsLine(r, decimals)).join('');
    const tmp = `${file}.tmp`;
    writeFileSync(tmp, text);
    renameSync(tmp, file);
    const base = { sessionId, metricName, decimals, epoch: this.epochOf(sessionId), lastId: rows.at(-1)?.id ?? 0, lines: rows.length, size: 0 };
    this.remember(file, base, Buffer.alloc(0), text);
    return 'rewritten';
  }

  /** The full text, for callers that want it without a file. */
  text(sessionId: number, metricName: string): string {
    const decimals = this.decimals(sessionId, metricName);
    return resultsHeader(metricName) + this.finalRows(sessionId, 0).map((r) => resultsLine(r, decimals)).join('');
  }

  /** The refusals file's text: one line per refused attempt, with why. */
  refusalsText(sessionId: number): string {
    const rows = this.refused.all(sessionId) as { id: number; created_at: string; description: string; reason: string | null }[];
    return refusalsHeader + rows.map((r) => [r.id, r.created_at, escapeField(r.description), escapeField(r.reason ?? '')].join('\t') + '\n').join('');
  }

  /**
   * The session's decimals, fixed once the baseline's calibration is final, so a line once written never changes
   * because the noise estimate moved; until then (no line holds a figure yet) Karpathy's six.
   */
  decimals(sessionId: number, metricName: string): number {
    const key = `${sessionId}\0${metricName}`;
    const known = this.decimalsMemo.get(key);
    if (known !== undefined) return known;
    const b = this.baseline.get(sessionId) as Pick<ExperimentRow, 'id' | 'kind' | 'state' | 'decision'> | undefined;
    if (!b || !isFinalForResults(b)) return DEFAULT_DECIMALS;
    const decimals = decimalsForNoise(summarize(this.calibration.all(b.id, b.id, metricName) as number[]).sd);
    this.decimalsMemo.set(key, decimals);
    return decimals;
  }

  /** Refusals are few: the file is rewritten whenever their number changed, and only once there is one. */
  private syncRefusals(sessionId: number, file: string): void {
    const count = this.refusedCount.get(sessionId) as number;
    if (count === 0 || (this.refusalsWritten.get(file) === count && existsSync(file))) return;
    const tmp = `${file}.tmp`;
    writeFileSync(tmp, this.refusalsText(sessionId));
    renameSync(tmp, file);
    this.refusalsWritten.set(file, count);
  }

  /** The file as it stands, when its header, line count and last line are what the ledger says; else undefined. */
  private adopt(file: string, sessionId: number, metricName: string, total: number, decimals: number): Written | undefined {
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
    const tail = Buffer.from(last ? resultsLine(last, decimals) : '');
    if (!buf.subarray(buf.length - tail.length).equals(tail)) return undefined;
    const base = { sessionId, metricName, decimals, epoch: this.epochOf(sessionId), lastId: last?.id ?? 0, lines: total, size: buf.length };
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
  const e = { id: r.id, kind: r.kind, state: r.state, decision: r.decision, forced: r.forced === 1 } as Pick<ExperimentRow, 'id' | 'kind' | 'state' | 'decision' | 'forced'>;
  if (!isFinalForResults(e)) return null;
  let secondary: Record<string, number> = {};
  try {
    secondary = JSON.parse(r.secondary || '{}') as Record<string, number>;
  } catch {
    // An unparsable column was written outside ratchet; the tamper check reports it, the file still gets a line.
  }
  return { ...e, commit: r.commit, metric: r.metric, secondary, peakMemoryBytes: r.peak_memory_bytes, description: r.description, gpuPeakMib: r.gpu_peak_mib };
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
