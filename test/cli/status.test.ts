// `ratchet status`: a short human summary by default, the status tool's JSON with --json; the formatter on the states a night goes through.
import { describe, it, expect, beforeAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ResearchLoop } from '../../src/core/loop.js';
import type { Status } from '../../src/core/views.js';
import { silentLogger } from '../../src/log.js';
import { statusLines, statusText } from '../../src/status-text.js';
import { cleanedUpAfterEach, finished, startWithBaseline } from '../helpers/loop.js';
import { makeRepo, TRAIN, baseConfig, setConstant, type TestRepo } from '../helpers/repo.js';

const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));
const ratchet = (args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, CLAUDE_PROJECT_DIR: '' } });
const { repos, loops } = cleanedUpAfterEach();

function setup(config: Record<string, unknown> = {}): { repo: TestRepo; loop: ResearchLoop } {
  const repo = makeRepo({ 'train.mjs': TRAIN }, baseConfig({ sandbox: 'off', ...config }));
  const loop = new ResearchLoop({ repo: repo.dir, logger: silentLogger() });
  repos.push(repo);
  loops.push(loop);
  return { repo, loop };
}

/** Baseline 1, a kept 0.5, then a worse 0.8 left awaiting keep or revert. */
async function nightSoFar(loop: ResearchLoop, repo: TestRepo): Promise<void> {
  await startWithBaseline(loop);
  setConstant(repo, 'SCORE', '0.5');
  const better = await finished(loop, (await loop.runExperiment({ description: 'halve the score' })).id);
  await loop.keep({ id: better.id });
  setConstant(repo, 'SCORE', '0.8');
  await finished(loop, (await loop.runExperiment({ description: 'a worse idea' })).id);
}

describe('ratchet status (CLI)', () => {
  it('prints a short summary by default and the status JSON with --json', async () => {
    const { repo, loop } = setup();
    await nightSoFar(loop, repo);

    const human = ratchet(['status', '--repo', repo.dir]);
    expect(human.status, human.stderr).toBe(0);
    const lines = human.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^Session t1 on ratchet\/t1, started \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/);
    expect(lines).toContain('Best: score 0.5 (experiment 2) vs baseline 1: -0.5 (-50%), lower is better; rule: greedy');
    expect(lines).toContain('Experiments: 3 (3 measured); 3 run(s)');
    expect(lines).toContain('Awaiting decision: experiment 3');
    expect(lines).toContain('Integrity: ok');
    expect(lines.at(-1)).toBe('Next: Experiment 3 awaits a decision: read_metric, then keep or revert.');
    expect(lines.length).toBeLessThanOrEqual(10);
    expect(human.stdout).not.toContain('{');

    const json = ratchet(['status', '--repo', repo.dir, '--json']);
    expect(json.status, json.stderr).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ session: { tag: 't1', bestMetric: 0.5, baselineMetric: 1 }, awaitingDecision: 3, counts: { measured: 3 } });
  });

  it('says what to do without a session, and names a bad config key', () => {
    const { repo } = setup();
    const none = ratchet(['status', '--repo', repo.dir]);
    expect(none.status).toBe(0);
    expect(none.stdout).toContain('No session yet.');
    expect(none.stdout).toContain('Next: Call start_session');
    repo.write('ratchet.json', JSON.stringify({ editable: ['x'], run: { command: 'x', budgetSeconds: 'soon' }, metric: { name: 'm', direction: 'minimize' } }));
    const bad = ratchet(['status', '--repo', repo.dir]);
    expect(bad.status).toBe(0);
    expect(bad.stdout).toMatch(/^Config: ratchet.json is invalid:\n\s+- run\.budgetSeconds/m);
    expect(bad.stdout).toContain('Next: Fix ratchet.json');
  });
});

describe('statusLines', () => {
  let base: Status;

  beforeAll(async () => {
    const { repo, loop } = setup();
    await nightSoFar(loop, repo);
    base = await loop.status();
  });

  it('shows the running experiment, a plateau, the cap that finished the session, the limits and integrity findings', () => {
    const s = {
      ...base,
      awaitingDecision: null,
      running: { id: 4, phase: 'run', elapsedSeconds: 12, budgetSeconds: 300, lastLogLine: 'step 40 loss 2.1' },
      plateau: { reached: true, experimentsSinceKeep: 10, window: 10, message: 'The last 10 experiments brought no kept improvement.' },
      integrity: { ok: false, findings: ['ledger row 3 changed', 'ref refs/ratchet/t1/2 moved'] },
      finished: { reason: 'maxExperiments reached (20)', at: '2026-01-01T06:00:00.000Z', stopped: false, cap: 'maxExperiments' },
      limits: {
        experiments: { used: 20, limit: 20, reached: true },
        runs: { used: 31, limit: null, reached: false },
        deadline: { used: 7 * 3600 + 58 * 60 + 30, limit: 8 * 3600, reached: false, at: '2026-01-01T08:00:00.000Z' },
        consecutiveCrashes: { used: 1, limit: 3, reached: false },
        cost: { used: 2.5, limit: 10, reached: false, unit: 'gpu-hours' },
      },
    };
    const lines = statusLines(s);
    expect(lines).toContain('Running: experiment 4, run 12s of 300s | step 40 loss 2.1');
    expect(lines).toContain('Plateau: The last 10 experiments brought no kept improvement.');
    expect(lines).toContain('Finished: maxExperiments reached (20) (2026-01-01T06:00:00.000Z)');
    // A cap without a limit (runs) is not shown.
    expect(lines).toContain('Limits: experiments 20 of 20 (reached), time 7h 58m of 8h 00m, crashes in a row 1 of 3, cost 2.5 gpu-hours of 10 gpu-hours');
    expect(lines).toContain('Integrity: 2 finding(s): ledger row 3 changed; ref refs/ratchet/t1/2 moved');
    expect(lines.some((l) => l.startsWith('Awaiting decision'))).toBe(false);
  });

  it('for a maximized metric says higher is better; without the rule or the next step when asked', () => {
    const s = { ...base, session: { ...base.session!, direction: 'maximize' as const, metricName: 'accuracy', bestMetric: 0.9, baselineMetric: 0.8, bestExperimentId: 7 } };
    const lines = statusLines(s, { next: false });
    expect(lines).toContain('Best: accuracy 0.9 (experiment 7) vs baseline 0.8: +0.1 (+12.5%), higher is better');
    expect(lines.some((l) => l.startsWith('Next:'))).toBe(false);
    expect(statusText(s, { rule: 'significant' })).toMatch(/higher is better; rule: significant\n[\s\S]*Next: .+\n$/);
  });

  it('a session whose best is not measured yet', () => {
    const s = { ...base, session: { ...base.session!, bestMetric: null, baselineMetric: null, bestExperimentId: null } };
    expect(statusLines(s)).toContain('Best: score not measured yet (lower is better)');
  });
});
