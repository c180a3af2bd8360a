// Intermediate values a run prints ("progress val_bpb=1.23 step=400"), read incrementally while it runs, for pruning.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { StringDecoder } from 'node:string_decoder';
import { compileSafeRegex, type SafeRegex } from './safe-regex.js';
import type { CurvePoint } from './statistics.js';

/** A progress line is short; a longer unterminated line is a flood and is skipped, so memory stays bounded. */
export const MAX_PROGRESS_LINE_CHARS = 64 * 1024;

const NUMBER = '[+-]?(?:\\d+(?:\\.\\d*)?|\\.\\d+)(?:[eE][+-]?\\d+)?';

/**
 * The default form, or the config's regex (RE2 syntax, linear time) with named groups "value" and "step".
 * Throws a config_invalid RatchetError for a pattern the engine cannot run.
 */
export function progressRegex(metricName: string, pattern?: string): SafeRegex {
  const hint = 'Fix metric.progressPattern in ratchet.json before starting the session.';
  if (pattern) return compileSafeRegex(pattern, { label: 'metric.progressPattern', code: 'config_invalid', hint });
  const name = metricName.replace(/[.*+?^${}()|[\]\\-]/g, '\\$&');
  return compileSafeRegex(`^\\s*progress\\s+${name}=(?<value>${NUMBER})\\s+step=(?<step>${NUMBER})\\s*$`, { label: 'the progress pattern', code: 'internal', hint });
}

export function parseProgressLine(line: string, regex: SafeRegex): CurvePoint | null {
  const m = regex.exec(line);
  if (!m) return null;
  const value = Number(m.named.value);
  const step = Number(m.named.step);
  return Number.isFinite(value) && Number.isFinite(step) ? { step, value } : null;
}

/** Follows a growing log from where it last stopped, so a long run is read once, not once per check. */
export class ProgressTail {
  private offset = 0;
  private partial = '';
  /** Inside a line longer than MAX_PROGRESS_LINE_CHARS: drop text until its end. */
  private skipping = false;
  /** Keeps a UTF-8 character split between two reads whole. */
  private readonly decoder = new StringDecoder('utf8');
  readonly points: CurvePoint[] = [];

  constructor(
    private readonly path: string,
    private readonly regex: SafeRegex,
    /** Bytes read per call at most, so one check never stalls on a flooded log. */
    private readonly maxBytesPerRead = 8 * 1024 * 1024,
  ) {}

  /** Reads what was appended since the last call and returns the new points. */
  read(): CurvePoint[] {
    let fd: number;
    try {
      fd = openSync(this.path, 'r');
    } catch {
      return [];
    }
    const fresh: CurvePoint[] = [];
    try {
      const size = fstatSync(fd).size;
      if (size <= this.offset) return [];
      const buf = Buffer.alloc(Math.min(size - this.offset, this.maxBytesPerRead));
      const n = readSync(fd, buf, 0, buf.length, this.offset);
      this.offset += n;
      const lines = (this.partial + this.decoder.write(buf.subarray(0, n))).split(/\r\n|\r|\n/);
      this.partial = lines.pop() ?? '';
      if (this.skipping && lines.length > 0) {
        lines.shift(); // the end of the over-long line
        this.skipping = false;
      }
      if (this.partial.length > MAX_PROGRESS_LINE_CHARS) {
        this.partial = '';
        this.skipping = true;
      }
      for (const line of lines) {
        if (line.length > MAX_PROGRESS_LINE_CHARS) continue;
        const p = parseProgressLine(line, this.regex);
        if (p) fresh.push(p);
      }
    } finally {
      closeSync(fd);
    }
    this.points.push(...fresh);
    return fresh;
  }

  /** Reads to the end of a finished log, the last unterminated line included. */
  readAll(): CurvePoint[] {
    while (this.read().length || this.hasMore()) {
      /* keep reading in bounded chunks */
    }
    const last = this.partial && !this.skipping && parseProgressLine(this.partial, this.regex);
    this.partial = '';
    if (last) this.points.push(last);
    return this.points;
  }

  private hasMore(): boolean {
    try {
      const fd = openSync(this.path, 'r');
      try {
        return fstatSync(fd).size > this.offset;
      } finally {
        closeSync(fd);
      }
    } catch {
      return false;
    }
  }
}
