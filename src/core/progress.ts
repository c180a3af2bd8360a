// Intermediate values a run prints ("progress val_bpb=1.23 step=400"), read incrementally while it runs, for pruning.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import type { CurvePoint } from './statistics.js';

const NUMBER = '[+-]?(?:\\d+(?:\\.\\d*)?|\\.\\d+)(?:[eE][+-]?\\d+)?';

/** The default form, or the config's regex with named groups "value" and "step". */
export function progressRegex(metricName: string, pattern?: string): RegExp {
  if (pattern) return new RegExp(pattern);
  const name = metricName.replace(/[.*+?^${}()|[\]\\-]/g, '\\$&');
  return new RegExp(`^\\s*progress\\s+${name}=(?<value>${NUMBER})\\s+step=(?<step>${NUMBER})\\s*$`);
}

export function parseProgressLine(line: string, regex: RegExp): CurvePoint | null {
  const m = regex.exec(line);
  if (!m?.groups) return null;
  const value = Number(m.groups.value);
  const step = Number(m.groups.step);
  return Number.isFinite(value) && Number.isFinite(step) ? { step, value } : null;
}

/** Follows a growing log from where it last stopped, so a long run is read once, not once per check. */
export class ProgressTail {
  private offset = 0;
  private partial = '';
  readonly points: CurvePoint[] = [];

  constructor(
    private readonly path: string,
    private readonly regex: RegExp,
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
      const lines = (this.partial + buf.subarray(0, n).toString('utf8')).split(/\r\n|\r|\n/);
      this.partial = lines.pop() ?? '';
      for (const line of lines) {
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
    const last = this.partial && parseProgressLine(this.partial, this.regex);
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
