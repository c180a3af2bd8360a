// Pass rates through the real loop: a metric step that prints case results is decided by the paired test, needs no
// calibration runs, records its cases in the chained ledger, and says what the session can detect and how to detect less.
import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { ResearchLoop } from '../../src/core/loop.js';
import { silentLogger } from '../../src/log.js';
import { makeRepo, baseConfig, type TestRepo } from '../helpers/repo.js';
import { cleanedUpAfterEach, finished, startWithBaseline } from '../helpers/loop.js';

// The simulated eval and its modules are copied into each repo: a checkout under /tmp is out of the sandbox's sight.
const BENCH = join(import.meta.dirname, '../../bench/decisions');
const SIM_FILES = Object.fromEntries(['synthetic-skill.mjs', 'prng.mjs', 'skill-truth.mjs'].map((f) => [`sim/${f}`, readFileSync(join(BENCH, f), 'utf8')]));
const { repos, loops } = cleanedUpAfterEach();

function setup(env: Record<string, string> = {}, decision: Record<string, unknown> = {}) {
  const repo = makeRepo(
    { 'skill.json': '{"lift": 0}\n', ...SIM_FILES },
    baseConfig({
      editable: ['skill.json'],
      protected: ['sim/**'],
      run: { command: 'node sim/synthetic-skill.mjs', budgetSeconds: 20, graceSeconds: 1, env: { BENCH_SEED: '3', ...env } },
      metric: { name: 'pass_rate', direction: 'maximize', secondary: [] },
      decision: { rule: 'significant', ...decision },
    }),
  );
  repos.push(repo);
  const loop = new ResearchLoop({ repo: repo.dir, logger: silentLogger() });
  loops.push(loop);
  return { repo, loop };
}

async function tryLift(repo: TestRepo, loop: ResearchLoop, lift: number) {
  repo.write('skill.json', JSON.stringify({ lift }));
  const e = await loop.runExperiment({ description: `lift ${lift}` });
  return finished(loop, e.id);
}

describe('pass rates with case results', () => {
  it('the baseline needs one run; status gives the detectable gain from the binomial model and what would lower it', async () => {
    const { loop } = setup();
    const baseline = await startWithBaseline(loop);
    expect(baseline.runs).toBe(1);
    const noise = (await loop.status()).noise!;
    expect(noise.basis).toBe('cases');
    expect(noise.minDetectableEffect).toBeGreaterThan(2);
    expect(noise.minDetectableEffect).toBeLessThan(25);
    expect(noise.suggestions.join('\n')).toMatch(/maxRepeats 5 → 10/);
    expect(noise.suggestions.join('\n')).toMatch(/--trials 6/);
  });

  it('an explicit baselineRepeats is still honoured', async () => {
    const { loop } = setup({}, { baselineRepeats: 2 });
    expect((await startWithBaseline(loop)).runs).toBe(2);
  });

  it('a real +20-point gain is kept by the paired test, with Wilson intervals and the assertions that moved', async () => {
    const { repo, loop } = setup();
    await startWithBaseline(loop);
    const e = await tryLift(repo, loop, 20);
    const report = await loop.readMetric(e.id);
    const d = report.decision!;
    expect(d.verdict).toBe('improved');
    expect(report.keepable).toBe(true);
    expect(d.paired).toBeTruthy();
    expect(d.paired!.screening).toBe(false);
    expect(d.paired!.pBetter).toBeLessThanOrEqual(d.paired!.alpha);
    expect(d.paired!.better).toBeGreaterThan(d.paired!.worse);
    expect(d.paired!.candidate.passRate!).toBeGreaterThan(d.paired!.best.passRate!);
    const [lo, hi] = d.paired!.candidate.interval!;
    expect(lo).toBeLessThan(d.paired!.candidate.passRate!);
    expect(hi).toBeGreaterThan(d.paired!.candidate.passRate!);
    expect(d.paired!.assertions.filter((a) => a.change === 'better').length).toBeGreaterThan(0);
    expect(d.effect!).toBeGreaterThan(5);
    expect(d.why).toMatch(/sign-flip test/);
    await loop.keep({ id: e.id });
  });

  it('a harmful edit is rejected at the screening look, on its one run', async () => {
    const { repo, loop } = setup();
    await startWithBaseline(loop);
    const e = await tryLift(repo, loop, -30);
    const report = await loop.readMetric(e.id);
    expect(report.decision!.verdict).toBe('worse');
    expect(report.decision!.paired!.screening).toBe(true);
    expect(e.runs).toBe(1);
  });

  it('neutral edits: at most one of 12 kept, and never on a zero-width interval (the pass rate is not taken as exact)', async () => {
    // Each null decision keeps with probability at most 1 - confidence (2.5% in test/core/paired.test.ts's simulation).
    const { repo, loop } = setup();
    await startWithBaseline(loop);
    let kept = 0;
    for (let i = 0; i < 12; i++) {
      // The same true rates under a new commit each time: the note changes the file, not the skill.
      repo.write('skill.json', JSON.stringify({ lift: 0, note: i }));
      const e = await finished(loop, (await loop.runExperiment({ description: `neutral ${i}` })).id);
      const report = await loop.readMetric(e.id);
      const interval = report.decision!.effectInterval;
      if (interval) expect(interval[1] - interval[0]).toBeGreaterThan(0);
      if (report.keepable) kept++;
      await loop.revert({ id: e.id });
    }
    expect(kept).toBeLessThanOrEqual(1);
  });

  it('case results are stored in the chained ledger, so editing one is tampering', async () => {
    const { loop, repo } = setup();
    const baseline = await startWithBaseline(loop);
    await loop.settle();
    const db = new Database(join(repo.dir, '.ratchet', 'ratchet.db'));
    const row = db.prepare('SELECT trials FROM case_results WHERE experiment_id = ?').get(baseline.id) as { trials: string };
    expect(JSON.parse(row.trials)).toHaveLength(30);
    db.prepare("UPDATE case_results SET trials = replace(trials, '\"fail\"', '\"pass\"') WHERE experiment_id = ?").run(baseline.id);
    db.close();
    const integrity = (await loop.status()).integrity;
    expect(integrity.ok).toBe(false);
    expect(integrity.findings.join('\n')).toMatch(/case_results/);
  });
});
