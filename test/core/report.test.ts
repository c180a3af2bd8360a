// The morning report and its chart, from a ledger written by the real loop: report.md, the SVG and PNG, report.html,
// `ratchet report`, the MCP resources over stdio, and the honest results.tsv the same night leaves.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { Resvg } from '@resvg/resvg-js';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ResearchLoop } from '../../src/core/loop.js';
import { Ledger, ledgerPath } from '../../src/core/ledger.js';
import { chartPng, chartSvg, MAX_POINTS, PNG_ZOOM, rasterOptions, thinned } from '../../src/core/report/chart.js';
import { gatherReport, reportHtml, reportMarkdown, type ReportData } from '../../src/core/report/report.js';
import { topicOf } from '../../src/core/report/ideas.js';
import { silentLogger } from '../../src/log.js';
import { makeRepo, baseConfig, setConstant, type TestRepo } from '../helpers/repo.js';
import { finished, rejection } from '../helpers/loop.js';

const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));

/** `score: SCORE + noise`, the noise seeded by the run's experiment id: every run differs, every test run replays the same night. */
const NOISY_TRAIN = `// seeded synthetic experiment
const SCORE = 1.0;
const CRASH = 0;
const run = Number(process.env.RATCHET_EXPERIMENT_ID ?? 0);
if (CRASH) { console.error('CUDA out of memory'); process.exit(1); }
let s = (7 * 1000003 + run * 7919) >>> 0;
const rand = () => { s = (s + 0x6d2b79f5) >>> 0; let t = s; t = Math.imul(t ^ (t >>> 15), t | 1); t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return ((t ^ (t >>> 14)) >>> 0) / 4294967296; };
const noise = 0.01 * Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
console.log('score: ' + (SCORE + noise).toFixed(6));
`;

let repo: TestRepo;
let ledger: Ledger;
let data: ReportData;
let sessionId: number;
const ids: Record<string, number> = {};

/** One idea, run to its verdict, kept when keepable and reverted otherwise. */
async function attempt(loop: ResearchLoop, description: string, constants: Record<string, string>) {
  for (const [name, value] of Object.entries(constants)) setConstant(repo, name, value);
  const e = await finished(loop, (await loop.runExperiment({ description })).id);
  if ((await loop.readMetric(e.id)).keepable) await loop.keep({ id: e.id });
  else await loop.revert({});
  ids[description] = e.id;
  return e;
}

beforeAll(async () => {
  repo = makeRepo({ 'train.mjs': NOISY_TRAIN, 'evaluate.mjs': '// unused\n', 'README.md': 'readme\n' }, baseConfig({ decision: { rule: 'significant', baselineRepeats: 3, maxRepeats: 3 } }));
  const loop = new ResearchLoop({ repo: repo.dir, logger: silentLogger() });
  try {
    const { baseline } = await loop.startSession({ tag: 'night' });
    await finished(loop, baseline.id);
    await attempt(loop, 'Lower the learning rate to 0.5', { SCORE: '0.9' });
    await attempt(loop, 'Raise the learning rate to 2', { SCORE: '1.2' });
    await attempt(loop, 'increase learning rate slightly', { SCORE: '1.1' });
    await attempt(loop, 'Double the batch size', { CRASH: '1' });
    // An edit outside the surface is refused, and recorded.
    setConstant(repo, 'SCORE', '0.5');
    repo.write('README.md', 'the evaluator is wrong\n');
    expect((await rejection(loop.runExperiment({ description: 'Fix the evaluator' }))).code).toBe('surface_violation');
    repo.write('README.md', 'readme\n');
    await attempt(loop, 'Widen the embedding to 64', { SCORE: '0.8' });
    await loop.settle();
  } finally {
    loop.close();
  }
  ledger = new Ledger(ledgerPath(repo.dir));
  sessionId = ledger.sessionByTag('night')!.id;
  data = gatherReport(ledger, sessionId);
});

afterAll(() => {
  ledger?.close();
  repo?.cleanup();
});

/** Width and height from a PNG's IHDR chunk, after checking the signature. */
function pngSize(png: Buffer): { width: number; height: number } {
  expect(png.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))).toBe(true);
  expect(png.subarray(12, 16).toString('latin1')).toBe('IHDR');
  return { width: png.readUInt32BE(16), height: png.readUInt32BE(20) };
}

/** RGBA pixels of an SVG rendered as chartPng renders it. */
function pixels(svg: string): Buffer {
  return new Resvg(svg, rasterOptions()).render().pixels;
}

function countColours(rgba: Buffer): { distinct: number; near: (r: number, g: number, b: number) => number; dark: number } {
  const seen = new Set<number>();
  let dark = 0;
  for (let i = 0; i < rgba.length; i += 4) {
    seen.add(rgba.readUInt32BE(i));
    if (rgba[i]! < 90 && rgba[i + 1]! < 90 && rgba[i + 2]! < 90) dark++;
  }
  const near = (r: number, g: number, b: number) => {
    let n = 0;
    for (let i = 0; i < rgba.length; i += 4) if (Math.abs(rgba[i]! - r) + Math.abs(rgba[i + 1]! - g) + Math.abs(rgba[i + 2]! - b) < 30) n++;
    return n;
  };
  return { distinct: seen.size, near, dark };
}

describe('the report data', () => {
  it('holds the night as the loop recorded it', () => {
    expect(data.kept.map((k) => k.id)).toEqual([ids['Lower the learning rate to 0.5'], ids['Widen the embedding to 64']]);
    expect(data.crashes.map((c) => c.id)).toEqual([ids['Double the batch size']]);
    expect(data.crashes[0]!.lastLogLine).toContain('CUDA out of memory');
    expect(data.refusals).toHaveLength(1);
    expect(data.refusals[0]!.reason).toContain('README.md');
    expect(data.ideas).toBe(6);
    expect(data.decimals).toBe(4); // calibration sd ≈ 0.009: one digit past its leading digit
    expect(data.improvement).toBeGreaterThan(0.15);
    expect(data.best!.interval![0]).toBeLessThan(data.best!.mean!);
    expect(data.runningSeconds).toBeGreaterThan(0);
    expect(data.runningSeconds).toBeLessThanOrEqual(data.wallSeconds);
    // Both learning-rate ideas that failed read as one topic.
    expect(topicOf('Raise the learning rate to 2')).toBe('learning rate');
    expect(data.rejected.find((g) => g.topic === 'learning rate')!.items.map((x) => x.id)).toEqual([ids['Raise the learning rate to 2'], ids['increase learning rate slightly']]);
  });
});

describe('report.md', () => {
  it('has the headline, the time, the kept table, rejected ideas, crashes, refusals, noise, plateau and caps', () => {
    const md = reportMarkdown(data);
    expect(md).toMatch(/^# Morning report: session night\n/);
    expect(md).toMatch(/\*\*score 1\.\d{4} → 0\.8\d{3}\*\* \(lower is better\): improved by 0\.\d{4}/);
    for (const section of ['## Time', '## Kept changes', '## Tried and rejected', '## Crashes', '## Refusals', '## Noise', '## Plateau', '## Caps', '## Progress']) expect(md).toContain(`\n${section}\n`);
    expect(md).toContain(`| ${ids['Widen the embedding to 64']} | Widen the embedding to 64 | 0.8`);
    expect(md).toContain('- **learning rate** (2): ');
    expect(md).toMatch(/\| Double the batch size \| crashed \| .*CUDA out of memory/);
    expect(md).toContain('Fix the evaluator: edit surface violated by README.md');
    expect(md).toContain('![progress: every run over experiment number](progress.png)');
    // Nothing the agent wrote can break a table row.
    const tricky = reportMarkdown({ ...data, kept: [{ ...data.kept[0]!, description: 'a | b\nc' }] });
    expect(tricky).toContain('a \\| b c');
  });

  it('shows the caps when status reports them', () => {
    const md = reportMarkdown({ ...data, caps: { finished: { reason: 'maxExperiments reached (6 of 6)', at: '2026-01-01T06:00:00.000Z' }, limits: { maxExperiments: { used: 6, limit: 6 } } } });
    expect(md).toContain('Finished: maxExperiments reached (6 of 6)');
    expect(md).toContain('- maxExperiments: 6 of 6');
  });
});

describe('the chart', () => {
  let svg: string;
  beforeAll(async () => {
    svg = await chartSvg(ledger, sessionId);
  });

  it('draws a point per measured run, the running best, the noise band and the labels of the keeps', () => {
    const runs = ledger.measurements(sessionId, 'score').length;
    expect(runs).toBeGreaterThan(8);
    const group = /<g class="mark-symbol role-mark runs_marks"[^>]*>([\s\S]*?)<\/g>/.exec(svg);
    expect(group).not.toBeNull();
    expect(group![1]!.match(/<path /g)).toHaveLength(runs);
    expect(svg).toContain('running_best_marks');
    expect(svg).toContain('noise_band_marks');
    expect(svg).toContain('Widen the embedding to 64');
    expect(svg).toContain('ratchet night: 6 experiments, 2 kept improvements');
  });

  it('renders to a PNG of the expected size that is not blank, with its text drawn', () => {
    const png = chartPng(svg);
    const width = Number(/<svg[^>]* width="(\d+)"/.exec(svg)![1]);
    const height = Number(/<svg[^>]* height="(\d+)"/.exec(svg)![1]);
    expect(pngSize(png)).toEqual({ width: width * PNG_ZOOM, height: height * PNG_ZOOM });
    const drawn = countColours(pixels(svg));
    expect(drawn.distinct).toBeGreaterThan(50);
    expect(drawn.near(0x2e, 0xcc, 0x71)).toBeGreaterThan(20); // the kept points' green
    // The same chart without its text has far fewer dark pixels: the fonts were found and the text drawn.
    const bare = countColours(pixels(svg.replace(/<text[^>]*>[\s\S]*?<\/text>/g, '')));
    expect(drawn.dark).toBeGreaterThan(bare.dark + 500);
  });

  it('draws a chart and a report for a session that has measured nothing yet', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ratchet-report-empty-'));
    const fresh = new Ledger(join(dir, 'ratchet.db'));
    try {
      const session = fresh.createSession({ tag: 'new', branch: 'ratchet/new', baseCommit: 'c0', bestCommit: 'c0', config: baseConfig(), pins: [] });
      fresh.createExperiment({ sessionId: session.id, kind: 'baseline', parentCommit: 'c0', description: 'baseline' });
      const empty = await chartSvg(fresh, session.id);
      expect(empty).toContain('ratchet new: 1 experiment, 0 kept improvements');
      expect(pngSize(chartPng(empty)).width).toBeGreaterThan(0);
      const md = reportMarkdown(gatherReport(fresh, session.id));
      expect(md).toContain('**score: no baseline yet**');
      expect(md).toContain('No change was kept');
    } finally {
      fresh.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('puts it in a self-contained report.html', () => {
    const html = reportHtml(data, svg);
    expect(html).toMatch(/^<!doctype html>/);
    expect(html).toContain('<style>');
    expect(html).toContain('<svg');
    expect(html).toContain('<h2>Kept changes</h2>');
    expect(html).not.toMatch(/https?:\/\/|<link|<script|\ssrc=/i);
    expect(reportHtml({ ...data, tag: '<b>' }, svg)).toContain('&lt;b&gt;');
  });
});

describe('ratchet report and the MCP resources', () => {
  it('writes report.md, report.html, progress.png and progress.svg, and says what to do without a session', () => {
    const out = mkdtempSync(join(tmpdir(), 'ratchet-report-'));
    try {
      const r = spawnSync(process.execPath, [CLI, 'report', '--repo', repo.dir, '--out', out], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toContain('Report of session night');
      for (const f of ['report.md', 'report.html', 'progress.png', 'progress.svg']) expect(existsSync(join(out, f))).toBe(true);
      expect(readFileSync(join(out, 'report.md'), 'utf8')).toContain('## Kept changes');
      expect(pngSize(readFileSync(join(out, 'progress.png'))).width).toBeGreaterThan(1000);
      const missing = spawnSync(process.execPath, [CLI, 'report', '--repo', repo.dir, '--tag', 'nope'], { encoding: 'utf8' });
      expect(missing.status).toBe(1);
      expect(missing.stderr).toContain('no session "nope"');
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });

  it('serves the report and the chart as resources over stdio', async () => {
    const client = new Client({ name: 'report-test', version: '1.0.0' });
    await client.connect(new StdioClientTransport({ command: process.execPath, args: [CLI, 'serve', '--repo', repo.dir], stderr: 'ignore' }));
    try {
      const { resources } = await client.listResources();
      expect(resources.map((r) => r.uri)).toEqual(expect.arrayContaining(['ratchet://report', 'ratchet://chart.png', 'ratchet://chart.svg']));
      const report = (await client.readResource({ uri: 'ratchet://report' })).contents[0] as { mimeType: string; text: string };
      expect(report.mimeType).toBe('text/markdown');
      expect(report.text).toContain('# Morning report: session night');
      expect(report.text).toContain('](ratchet://chart.png)');
      const png = (await client.readResource({ uri: 'ratchet://chart.png' })).contents[0] as { mimeType: string; blob: string };
      expect(png.mimeType).toBe('image/png');
      expect(pngSize(Buffer.from(png.blob, 'base64')).width).toBeGreaterThan(1000);
      const svg = (await client.readResource({ uri: 'ratchet://chart.svg' })).contents[0] as { mimeType: string; text: string };
      expect(svg.mimeType).toBe('image/svg+xml');
      expect(svg.text).toMatch(/^<svg /);
    } finally {
      await client.close();
    }
  });

  it('answers a resource read without any session with what to do', async () => {
    const empty = makeRepo({ 'train.mjs': NOISY_TRAIN }, baseConfig());
    const client = new Client({ name: 'report-test', version: '1.0.0' });
    await client.connect(new StdioClientTransport({ command: process.execPath, args: [CLI, 'serve', '--repo', empty.dir], stderr: 'ignore' }));
    try {
      await expect(client.readResource({ uri: 'ratchet://report' })).rejects.toThrow(/no session to report on yet[\s\S]*start_session/);
    } finally {
      await client.close();
      empty.cleanup();
    }
  });
});

describe('results.tsv after the night', () => {
  it('says keep, discard, crash and refused, rounds to the noise, and lists the refusal with its reason', () => {
    const rows = readFileSync(join(repo.dir, '.ratchet', 'results.tsv'), 'utf8').trimEnd().split('\n').map((l) => l.split('\t'));
    expect(rows[0]).toEqual(['commit', 'score', 'memory_gb', 'status', 'description']);
    expect(rows.slice(1).map((r) => `${r[3]} ${r[4]}`)).toEqual([
      'keep baseline',
      'keep Lower the learning rate to 0.5',
      'discard Raise the learning rate to 2',
      'discard increase learning rate slightly',
      'crash Double the batch size',
      'refused Fix the evaluator',
      'keep Widen the embedding to 64',
    ]);
    for (const r of rows.slice(1)) expect(r[1]).toMatch(/^\d+\.\d{4}$/);
    const refusals = readFileSync(join(repo.dir, '.ratchet', 'refusals.tsv'), 'utf8');
    expect(refusals).toContain('Fix the evaluator\tedit surface violated by README.md');
    expect(execFileSync('git', ['status', '--porcelain'], { cwd: repo.dir }).toString()).toBe('');
  });
});

describe('a chart of a long night', () => {
  it('draws at most MAX_POINTS points: every kept and baseline run, the rest thinned evenly, and says how many were left out', () => {
    const points = Array.from({ length: 5_000 }, (_, i) => ({
      experiment: i + 1,
      value: 1 - i * 1e-5,
      category: (i < 3 ? 'baseline (calibration)' : i % 150 === 0 ? 'kept' : i % 2 ? 'discarded' : 'best re-measured') as Parameters<typeof thinned>[0][number]['category'],
    }));
    const { drawn, left } = thinned(points);
    expect(drawn.length).toBeLessThanOrEqual(MAX_POINTS);
    expect(drawn.length + left).toBe(points.length);
    const kept = points.filter((p) => p.category === 'kept' || p.category === 'baseline (calibration)');
    for (const p of kept) expect(drawn).toContainEqual(p);
    expect(drawn.map((p) => p.experiment)).toEqual([...drawn.map((p) => p.experiment)].sort((a, b) => a - b));
    // Evenly: the thinned runs reach across the whole night, not just its start.
    const thinnedRuns = drawn.filter((p) => p.category === 'discarded');
    expect(Math.max(...thinnedRuns.map((p) => p.experiment))).toBeGreaterThan(4_500);
    // A short night is drawn whole.
    expect(thinned(points.slice(0, 100))).toEqual({ drawn: points.slice(0, 100), left: 0 });
  });
});
