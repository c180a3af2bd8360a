// Metric parsing: the default summary and METRIC formats, custom patterns, and bounded log tails.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseMetrics, readMetricText, type MetricSpec } from '../../src/core/metric.js';

const KARPATHY_SUMMARY = [
  'step 00950 (99.7%) | loss: 3.212345 | lrm: 0.05 | dt: 312.45ms | tok/sec: 1,676,543 | mfu: 39.8 | remaining: 1s',
  '---',
  'val_bpb:          0.997900',
  'training_seconds: 300.1',
  'total_seconds:    325.9',
  'peak_vram_mb:     45060.2',
  'mfu_percent:      39.80',
  'total_tokens_M:   499.6',
  'num_steps:        953',
  'num_params_M:     50.3',
  'depth:            8',
  '',
].join('\n');

const spec = (name: string, extra: Partial<MetricSpec> = {}): MetricSpec => ({ name, secondary: [], ...extra });

describe('parseMetrics', () => {
  it("reads Karpathy's summary block, primary and secondary", () => {
    const r = parseMetrics(KARPATHY_SUMMARY, spec('val_bpb', { secondary: ['peak_vram_mb', 'num_steps', 'training_seconds', 'depth', 'mfu_percent'] }));
    expect(r.value).toBe(0.9979);
    expect(r.line).toBe('val_bpb:          0.997900');
    expect(r.secondary).toEqual({ peak_vram_mb: 45060.2, num_steps: 953, training_seconds: 300.1, depth: 8, mfu_percent: 39.8 });
  });

  it('reads the METRIC name=value form, with or without spaces around "="', () => {
    expect(parseMetrics('warmup\nMETRIC accuracy=0.875\n', spec('accuracy')).value).toBe(0.875);
    expect(parseMetrics('  METRIC  accuracy = 0.5 \n', spec('accuracy')).value).toBe(0.5);
    expect(parseMetrics('METRIC accuracy_top5=0.99\n', spec('accuracy')).value).toBeNull();
  });

  it('takes the last report, across both forms', () => {
    const text = 'val_bpb: 1.5\nval_bpb: 1.2\nMETRIC val_bpb=1.1\nother: 3\n';
    expect(parseMetrics(text, spec('val_bpb'))).toMatchObject({ value: 1.1, line: 'METRIC val_bpb=1.1' });
    expect(parseMetrics('METRIC val_bpb=1.1\nval_bpb:   0.9\n', spec('val_bpb')).value).toBe(0.9);
  });

  it('matches the name exactly at the start of the line', () => {
    expect(parseMetrics('my_val_bpb: 1\nval_bpb_ema: 2\nxval_bpb: 3\n', spec('val_bpb'))).toEqual({ value: null, secondary: {}, line: null, count: 0 });
    expect(parseMetrics('step 5 val_bpb: 0.5\n', spec('val_bpb')).value).toBeNull();
    expect(parseMetrics('\t  val_bpb: 0.5\n', spec('val_bpb')).value).toBe(0.5);
    expect(parseMetrics('VAL_BPB: 0.5\n', spec('val_bpb')).value).toBeNull();
  });

  it('treats metric names with regex characters literally', () => {
    expect(parseMetrics('val.loss: 2\nvalxloss: 1\n', spec('val.loss')).value).toBe(2);
    expect(parseMetrics('valxloss: 1\n', spec('val.loss')).value).toBeNull();
    expect(parseMetrics('top-1: 0.7\n', spec('top-1')).value).toBe(0.7);
  });

  it('parses ints, decimals, exponents and signs', () => {
    const cases: [string, number][] = [
      ['42', 42],
      ['-0.5', -0.5],
      ['+3.25', 3.25],
      ['.5', 0.5],
      ['1e-3', 0.001],
      ['2.5E+04', 25000],
      ['-1.5e2', -150],
    ];
    for (const [raw, expected] of cases) expect(parseMetrics(`loss: ${raw}\n`, spec('loss')).value).toBe(expected);
  });

  it('rejects nan, inf, overflow and non-numbers, and a final nan hides an earlier good value', () => {
    for (const raw of ['nan', 'NaN', 'inf', '-inf', 'Infinity', '1e999', '0x10', '1,234', '0.5 (est)', '', 'None', '1.2.3']) {
      const r = parseMetrics(`loss: ${raw}\n`, spec('loss'));
      expect(r.value, raw).toBeNull();
      expect(r.line, raw).toBe(`loss: ${raw}`);
    }
    expect(parseMetrics('val_bpb: 0.99\nval_bpb: nan\n', spec('val_bpb')).value).toBeNull();
    expect(parseMetrics('x\n', spec('val_bpb', { secondary: ['peak_vram_mb'] })).secondary).toEqual({});
    expect(parseMetrics('peak_vram_mb: nan\n', spec('val_bpb', { secondary: ['peak_vram_mb'] })).secondary).toEqual({});
  });

  it('handles CRLF and bare-CR (progress bar) line endings', () => {
    const crlf = KARPATHY_SUMMARY.replace(/\n/g, '\r\n');
    const r = parseMetrics(crlf, spec('val_bpb', { secondary: ['depth'] }));
    expect(r).toEqual({ value: 0.9979, secondary: { depth: 8 }, line: 'val_bpb:          0.997900', count: 1 });
    expect(parseMetrics('50%|#####\r100%|##########\rval_bpb: 0.8\r', spec('val_bpb')).value).toBe(0.8);
  });

  it('uses a custom pattern: last match wins, CRLF does not break "$", secondaries keep the default forms', () => {
    const text = 'eval loss=2.5 acc=0.1\r\neval loss=2.25 acc=0.2\r\npeak_vram_mb: 100\r\n';
    const r = parseMetrics(text, spec('loss', { pattern: 'loss=([0-9.]+) acc=[0-9.]+$', secondary: ['peak_vram_mb'] }));
    expect(r).toEqual({ value: 2.25, secondary: { peak_vram_mb: 100 }, line: 'eval loss=2.25 acc=0.2', count: 2 });
    expect(parseMetrics('score -> nan\n', spec('score', { pattern: 'score -> (\\S+)' }))).toEqual({ value: null, secondary: {}, line: 'score -> nan', count: 1 });
    expect(parseMetrics('score: 1\n', spec('score', { pattern: 'score=(\\d+)' })).value).toBeNull();
  });

  it('reports a broken custom pattern as a config error', () => {
    expect(() => parseMetrics('x', spec('x', { pattern: '(unclosed' }))).toThrow(/not a valid regular expression/);
    expect(() => parseMetrics('x', spec('x', { pattern: '(?<=loss=)([0-9.]+)' }))).toThrow(/^metric\.pattern: uses lookaround/);
  });

  it('counts how often the metric was reported, so a run that prints its own metric line twice can be flagged', () => {
    expect(parseMetrics(KARPATHY_SUMMARY, spec('val_bpb')).count).toBe(1);
    expect(parseMetrics('val_bpb: 0.1\nMETRIC val_bpb=0.2\nval_bpb: nan\n', spec('val_bpb'))).toMatchObject({ value: null, count: 3 });
    expect(parseMetrics('loss=1\nloss=2\nloss=3\n', spec('loss', { pattern: '^loss=(\\d)$' }))).toMatchObject({ value: 3, count: 3 });
    expect(parseMetrics('nothing here\n', spec('loss', { pattern: 'loss=(\\d)' })).count).toBe(0);
  });

  it('reads a pattern with nested quantifiers over a flooded log at once (a backtracking engine would hang)', () => {
    const flood = `${'a'.repeat(40)}!\n`.repeat(20000) + 'aaaa\n';
    const r = parseMetrics(flood, spec('x', { pattern: '^((a+)+)$' }));
    expect(r).toMatchObject({ line: 'aaaa', count: 1, value: null });
    expect(parseMetrics(`${'a'.repeat(60)}\nscore 7\n`, spec('score', { pattern: '(?:.*a){20}|score (\\d)' }))).toMatchObject({ value: 7, count: 2 });
  });
});

describe('readMetricText', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'ratchet-metric-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('reads a small log whole', () => {
    const log = join(dir, 'run.log');
    writeFileSync(log, KARPATHY_SUMMARY);
    expect(readMetricText(log)).toBe(KARPATHY_SUMMARY);
  });

  it('reads only the tail of a flooded log, from a line boundary', () => {
    const log = join(dir, 'run.log');
    // ~40 MiB of noise, including metric lines that must fall outside the tail.
    const noise = 'val_bpb: 9.0 noise noise noise noise noise noise noise noise noise noise\n'.repeat(8192);
    writeFileSync(log, 'val_bpb: 0.1\n');
    for (let i = 0; i < 70; i++) appendFileSync(log, noise);
    appendFileSync(log, KARPATHY_SUMMARY);

    const text = readMetricText(log, 64 * 1024);
    expect(Buffer.byteLength(text)).toBeLessThanOrEqual(64 * 1024);
    expect(text.endsWith(KARPATHY_SUMMARY)).toBe(true);
    expect(text.startsWith('val_bpb: 9.0 noise')).toBe(true);
    expect(parseMetrics(text, spec('val_bpb')).value).toBe(0.9979);
    expect(parseMetrics(readMetricText(log), spec('val_bpb')).value).toBe(0.9979);
  });

  it('drops a partial first line so it cannot fake a match', () => {
    const log = join(dir, 'run.log');
    // The cut lands inside "my_val_bpb: 0.1"; read whole, that tail would look like "val_bpb: 0.1".
    writeFileSync(log, 'my_val_bpb: 0.1\nend\n');
    const text = readMetricText(log, 'val_bpb: 0.1\nend\n'.length);
    expect(text).toBe('end\n');
    expect(parseMetrics(text, spec('val_bpb')).value).toBeNull();
  });

  it('keeps multi-byte text intact at the cut and returns "" for a tail with no line break', () => {
    const log = join(dir, 'run.log');
    writeFileSync(log, `${'é'.repeat(1000)}\nvalue: 1 ✓\n`);
    expect(readMetricText(log, 100)).toBe('value: 1 ✓\n');
    writeFileSync(log, 'x'.repeat(5000));
    expect(readMetricText(log, 100)).toBe('');
  });

  it('reads a missing log as empty and rejects a nonsensical size', () => {
    expect(readMetricText(join(dir, 'never-written.log'))).toBe('');
    expect(() => readMetricText(join(dir, 'x.log'), 0)).toThrow(/positive integer/);
  });
});
