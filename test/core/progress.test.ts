// Intermediate values read from a growing log: the default form, a configured pattern, and lines split across reads.
import { describe, it, expect } from 'vitest';
import { appendFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MAX_PROGRESS_LINE_CHARS, ProgressTail, parseProgressLine, progressRegex } from '../../src/core/progress.js';

describe('progress lines', () => {
  it('reads the default form for the metric only, and rejects non-numbers', () => {
    const re = progressRegex('val_bpb');
    expect(parseProgressLine('progress val_bpb=1.25 step=300', re)).toEqual({ step: 300, value: 1.25 });
    expect(parseProgressLine('  progress val_bpb=-2e-3 step=7  ', re)).toEqual({ step: 7, value: -0.002 });
    expect(parseProgressLine('progress loss=1.25 step=300', re)).toBeNull();
    expect(parseProgressLine('progress val_bpb=nan step=3', re)).toBeNull();
    expect(parseProgressLine('val_bpb: 1.0', re)).toBeNull();
  });

  it('reads a configured pattern through its named groups', () => {
    const re = progressRegex('val_bpb', 'step (?<step>\\d+) \\| val (?<value>[0-9.]+)');
    expect(parseProgressLine('step 40 | val 3.5', re)).toEqual({ step: 40, value: 3.5 });
  });

  it('runs a pattern with nested quantifiers in linear time, and refuses lookaround by name', () => {
    const re = progressRegex('loss', '^(?:(a+)+)x(?<step>\\d+) (?<value>\\d+)$');
    expect(parseProgressLine(`${'a'.repeat(48)}!`, re)).toBeNull();
    expect(parseProgressLine('aaax3 4', re)).toEqual({ step: 3, value: 4 });
    expect(() => progressRegex('loss', '(?<=step )(?<step>\\d+) (?<value>\\d+)')).toThrow(/^metric\.progressPattern: uses lookaround/);
  });

  it('skips a flood line with no end instead of holding it in memory, and reads on after it', () => {
    const log = join(mkdtempSync(join(tmpdir(), 'ratchet-progress-')), 'run.log');
    writeFileSync(log, `progress score=1 step=1\n${'x'.repeat(MAX_PROGRESS_LINE_CHARS * 3)}`);
    const tail = new ProgressTail(log, progressRegex('score'), 64 * 1024);
    tail.read();
    tail.read();
    appendFileSync(log, 'progress score=9 step=9\nprogress score=2 step=2\n');
    expect(tail.readAll().map((p) => p.step)).toEqual([1, 2]);
  });

  it('follows a growing log, joining a line split between two reads', () => {
    const log = join(mkdtempSync(join(tmpdir(), 'ratchet-progress-')), 'run.log');
    const tail = new ProgressTail(log, progressRegex('score'));
    expect(tail.read()).toEqual([]); // no log yet
    writeFileSync(log, 'warming up\nprogress score=3 step=1\nprogress sco');
    expect(tail.read()).toEqual([{ step: 1, value: 3 }]);
    appendFileSync(log, 're=2.5 step=2\n');
    expect(tail.read()).toEqual([{ step: 2, value: 2.5 }]);
    appendFileSync(log, 'progress score=2 step=3');
    expect(tail.read()).toEqual([]); // unterminated: the run may still be writing it
    expect(tail.readAll().map((p) => p.step)).toEqual([1, 2, 3]);
  });

  it('reads a large log in bounded chunks', () => {
    const log = join(mkdtempSync(join(tmpdir(), 'ratchet-progress-')), 'run.log');
    writeFileSync(log, Array.from({ length: 5000 }, (_, i) => `progress score=${i} step=${i}\n`).join(''));
    const points = new ProgressTail(log, progressRegex('score'), 1024).readAll();
    expect(points).toHaveLength(5000);
    expect(points[4999]).toEqual({ step: 4999, value: 4999 });
  });
});
