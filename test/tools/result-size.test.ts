// Tool results stay small in the agent's context: a 20-experiment session over stdio, each result's text measured against its budget.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { fileURLToPath } from 'node:url';
import { makeRepo, TRAIN, EVALUATE, baseConfig, setConstant, type TestRepo } from '../helpers/repo.js';

const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));
const PER_LISTED_EXPERIMENT = 300;
const TYPICAL_RESULT = 1500;
const EXPERIMENTS = 20;

type Result = { isError?: boolean; structuredContent?: Record<string, any>; content: { type: string; text: string }[] };

/** Per kind of call: the largest text it returned, and how many calls were measured. */
const sizes = new Map<string, { bytes: number; count: number }>();

function measure(name: string, r: Result): void {
  const bytes = Buffer.byteLength(r.content.map((c) => c.text).join(''), 'utf8');
  const seen = sizes.get(name) ?? { bytes: 0, count: 0 };
  sizes.set(name, { bytes: Math.max(seen.bytes, bytes), count: seen.count + 1 });
}

async function connect(repo: TestRepo) {
  const client = new Client({ name: 'sizes', version: '1.0.0' });
  await client.connect(new StdioClientTransport({ command: process.execPath, args: [CLI, 'serve', '--repo', repo.dir], stderr: 'ignore' }));
  // The Client checks each structuredContent against the tool's output schema, so a lean text never costs a valid result.
  const call = async (name: string, args: Record<string, unknown> = {}, label = name) => {
    const r = (await client.callTool({ name, arguments: args }, undefined, { timeout: 60_000 })) as Result;
    expect(r.isError, r.content[0]?.text).toBeFalsy();
    measure(label, r);
    expect(r.content[0]!.text.split('\n')[0], `${name}: the text opens with the summary`).toBe(r.structuredContent!.summary);
    return r;
  };
  const finish = async (id: number, label = 'wait_experiment') => {
    for (;;) {
      const r = await call('wait_experiment', { id, wait_seconds: 10 }, label);
      if (r.structuredContent!.experiment.state !== 'running') return r.structuredContent!.experiment as { id: number; state: string };
    }
  };
  return { client, call, finish };
}

function report(): string {
  const rows = [...sizes.entries()].map(([name, s]) => `  ${name.padEnd(34)} ${String(s.bytes).padStart(6)} B  (largest of ${s.count})`);
  return ['Tool result text sizes (bytes of text content):', ...rows].join('\n');
}

afterAll(() => console.log(report()));

describe('result sizes over a 20-experiment session (greedy rule)', () => {
  let repo: TestRepo;
  let s: Awaited<ReturnType<typeof connect>>;

  beforeAll(async () => {
    repo = makeRepo({ 'train.mjs': TRAIN, 'evaluate.mjs': EVALUATE }, baseConfig({ sandbox: 'off' }));
    s = await connect(repo);
  });

  afterAll(async () => {
    await s.client.close();
    repo.cleanup();
  });

  it('keeps list_experiments under 300 bytes per experiment and the loop\'s results under 1.5 KB', async () => {
    const started = await s.call('start_session', { tag: 'sizes' });
    await s.finish(started.structuredContent!.baseline.id);
    let best = 1;
    for (let i = 1; i <= EXPERIMENTS; i++) {
      // Every other idea helps; one in seven crashes; descriptions as long as agents write them, one at the 500-character cap.
      const crash = i % 7 === 0;
      const score = i % 2 === 0 ? best * 0.97 : best * 1.02;
      setConstant(repo, 'SCORE', score.toFixed(6));
      if (crash) setConstant(repo, 'MODE', "'crash'");
      const description = i === 10 ? `try ${'a much longer schedule '.repeat(30)}`.slice(0, 500) : `idea ${i}: scale the learning rate by ${(1 + i / 100).toFixed(2)} and warm up over ${i * 10} steps`;
      const run = await s.call('run_experiment', { description, hypothesis: 'A shorter warmup lets the higher rate act sooner; the loss curve suggests headroom.', wait_seconds: 0 }, 'run_experiment (running)');
      const id = run.structuredContent!.experiment.id as number;
      const e = await s.finish(id, crash ? 'wait_experiment (crashed)' : 'wait_experiment');
      const metric = await s.call('read_metric', { id }, crash ? 'read_metric (crashed, log tail)' : 'read_metric');
      if (crash) {
        expect(e.state).toBe('crashed');
        expect(metric.content[0]!.text).toContain('Traceback: boom');
        setConstant(repo, 'MODE', "'normal'");
        await s.call('revert', { id });
      } else if (metric.structuredContent!.keepable) {
        await s.call('keep', { id });
        best = score;
      } else {
        await s.call('revert', { id });
      }
    }
    // One run that finishes within wait_seconds, so run_experiment returns the measured result.
    setConstant(repo, 'SCORE', (best * 0.9).toFixed(6));
    const done = await s.call('run_experiment', { description: 'one more, waited for', wait_seconds: 30 }, 'run_experiment (measured)');
    expect(done.structuredContent!.experiment.state).toBe('measured');
    await s.call('keep', { id: done.structuredContent!.experiment.id });
    await s.call('read_log', { id: done.structuredContent!.experiment.id });
    await s.call('status');

    const list = await s.call('list_experiments', { limit: 50 });
    const listed = list.structuredContent!.experiments as { id: number; state: string; verdict: string | null; metric: number | null; description: string }[];
    expect(listed.length).toBe(EXPERIMENTS + 2);
    const perExperiment = Math.ceil(sizes.get('list_experiments')!.bytes / listed.length);
    sizes.set('list_experiments per experiment', { bytes: perExperiment, count: listed.length });
    expect(Object.keys(listed[0]!).sort()).toEqual(['description', 'id', 'metric', 'state', 'verdict']);
    expect(listed.at(-1)).toMatchObject({ state: 'measured', verdict: 'baseline', metric: 1 });
    expect(listed.find((e) => e.state === 'crashed')).toMatchObject({ verdict: null, metric: null });
    expect(perExperiment).toBeLessThanOrEqual(PER_LISTED_EXPERIMENT);

    for (const name of ['run_experiment (running)', 'run_experiment (measured)', 'wait_experiment', 'read_metric', 'keep', 'revert', 'status', 'start_session']) {
      expect(sizes.get(name)!.bytes, name).toBeLessThanOrEqual(TYPICAL_RESULT);
    }
    // A crash carries its log tail: bigger, but bounded.
    expect(sizes.get('read_metric (crashed, log tail)')!.bytes).toBeLessThanOrEqual(4 * TYPICAL_RESULT);
  }, 300_000);
});

describe('result sizes under the significant rule', () => {
  // Noisy runs, so read_metric carries intervals, repeats and the calibrated noise.
  const NOISY = `const SCORE = 1.0;\nconsole.log('score: ' + (SCORE + (Math.random() - 0.5) * 0.01).toFixed(6));\n`;
  let repo: TestRepo;
  let s: Awaited<ReturnType<typeof connect>>;

  beforeAll(async () => {
    repo = makeRepo({ 'train.mjs': NOISY }, baseConfig({ sandbox: 'off', metric: { name: 'score', direction: 'minimize' }, decision: { rule: 'significant', maxRepeats: 3 } }));
    s = await connect(repo);
  });

  afterAll(async () => {
    await s.client.close();
    repo.cleanup();
  });

  it('keeps read_metric with its statistical decision under 1.5 KB', async () => {
    const started = await s.call('start_session', { tag: 'significant' });
    await s.finish(started.structuredContent!.baseline.id, 'wait_experiment (significant)');
    for (const [score, description] of [['0.9', 'a clear gain'], ['1.0', 'no change at all']] as const) {
      setConstant(repo, 'SCORE', score);
      const run = await s.call('run_experiment', { description, wait_seconds: 0 }, 'run_experiment (significant)');
      const id = run.structuredContent!.experiment.id as number;
      await s.finish(id, 'wait_experiment (significant)');
      const metric = await s.call('read_metric', { id }, 'read_metric (significant)');
      expect(metric.structuredContent!.decision.rule).toBe('significant');
      expect(metric.content[0]!.text).toMatch(/decision: (improved|inconclusive|worse);/);
      await s.call(metric.structuredContent!.keepable ? 'keep' : 'revert', { id }, 'keep or revert (significant)');
    }
    await s.call('status', {}, 'status (significant)');
    for (const name of ['run_experiment (significant)', 'wait_experiment (significant)', 'read_metric (significant)', 'keep or revert (significant)', 'status (significant)']) {
      expect(sizes.get(name)!.bytes, name).toBeLessThanOrEqual(TYPICAL_RESULT);
    }
  });
});
