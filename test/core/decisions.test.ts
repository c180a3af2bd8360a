// The significant rule end to end: calibration, interleaved repeats, each verdict path, forced keeps and pruning,
// driven through the real loop with a seeded synthetic experiment whose true score and noise are known.
import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ResearchLoop } from '../../src/core/loop.js';
import { silentLogger } from '../../src/log.js';
import { makeRepo, baseConfig, setConstant, type TestRepo } from '../helpers/repo.js';
import { cleanedUpAfterEach, finished, rejection, startWithBaseline } from '../helpers/loop.js';

/**
 * Prints `score: SCORE + noise`, the noise drawn from N(0, SIGMA) seeded by SEED and the run's
 * experiment id, so every run differs but a test replays identically. With STEPS > 0 it first
 * prints a learning curve that converges to the final value.
 */
const NOISY_TRAIN = `// seeded synthetic experiment
const SCORE = 1.0;
const SIGMA = 0.01;
const SEED = 7;
const STEPS = 0;
const STEP_MS = 0;
const CRASH_ON_RUN = 0;
const VRAM = 1024;
const run = Number(process.env.RATCHET_EXPERIMENT_ID ?? 0);
if (CRASH_ON_RUN && run >= CRASH_ON_RUN) { console.error('out of memory'); process.exit(1); }
let s = (SEED * 1000003 + run * 7919) >>> 0;
const rand = () => { s = (s + 0x6d2b79f5) >>> 0; let t = s; t = Math.imul(t ^ (t >>> 15), t | 1); t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return ((t ^ (t >>> 14)) >>> 0) / 4294967296; };
const gauss = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
const noise = SIGMA * gauss();
for (let k = 1; k <= STEPS; k++) {
  await new Promise((r) => setTimeout(r, STEP_MS));
  console.log('progress score=' + (SCORE + noise + 2 * Math.exp(-k / 5)).toFixed(6) + ' step=' + k);
}
console.log('score: ' + (SCORE + noise).toFixed(6));
console.log('peak_vram_mb: ' + VRAM * run);
`;

const { repos, loops } = cleanedUpAfterEach();

function setup(decision: Record<string, unknown>, constants: Record<string, string> = {}, extra: Record<string, unknown> = {}, script = NOISY_TRAIN) {
  let train = script;
  for (const [name, value] of Object.entries(constants)) train = train.replace(new RegExp(`const ${name} = [^;]+;`), `const ${name} = ${value};`);
  const repo = makeRepo({ 'train.mjs': train, 'evaluate.mjs': '// unused\n' }, baseConfig({ decision: { rule: 'significant', ...decision }, ...extra }));
  repos.push(repo);
  const loop = new ResearchLoop({ repo: repo.dir, logger: silentLogger() });
  loops.push(loop);
  return { repo, loop };
}

async function tryCandidate(repo: TestRepo, loop: ResearchLoop, score: string) {
  setConstant(repo, 'SCORE', score);
  const e = await loop.runExperiment({ description: `score ${score}` });
  return finished(loop, e.id);
}

describe('calibration', () => {
  it('measures the baseline baselineRepeats times and reports its noise', async () => {
    const { loop } = setup({ baselineRepeats: 4 });
    const baseline = await startWithBaseline(loop);
    expect(baseline.state).toBe('measured');
    expect(baseline.runs).toBe(4);
    const noise = (await loop.status()).noise!;
    expect(noise.samples).toBe(4);
    expect(noise.sd).toBeGreaterThan(0);
    expect(noise.mad).toBeGreaterThan(0);
    expect(noise.cv).toBeCloseTo(noise.sd! / Math.abs(noise.mean!), 10);
    expect(noise.df).toBe(3);
    expect(noise.minDetectableEffect).toBeGreaterThan(noise.sd!);
    // The best's figure is the calibration mean, not any single run.
    expect((await loop.status()).session?.bestMetric).toBeCloseTo(noise.mean!, 10);
    expect((await loop.status()).runsSpent).toBe(4);
  });

  it('defaults to three runs under significant and one under greedy', async () => {
    const significant = setup({});
    expect((await startWithBaseline(significant.loop)).runs).toBe(3);
    const greedy = setup({ rule: 'greedy' });
    expect((await startWithBaseline(greedy.loop)).runs).toBe(1);
    expect((await greedy.loop.status()).noise?.sd).toBeNull();
  });
});

describe('verdicts', () => {
  it('improved: a clear gain is kept after interleaved best and candidate runs, and the tree holds the candidate', async () => {
    const { repo, loop } = setup({});
    await startWithBaseline(loop);
    const e = await tryCandidate(repo, loop, '0.9');
    expect(e.state).toBe('measured');
    const report = (await loop.readMetric(e.id));
    expect(report.decision?.verdict).toBe('improved');
    expect(report.keepable).toBe(true);
    // The best was re-measured in this experiment, interleaved with the candidate.
    expect(report.decision!.best.n).toBeGreaterThanOrEqual(1);
    expect(report.decision!.runs[0]!.side).toBe('candidate');
    expect(report.decision!.runs[1]!.side).toBe('best');
    expect(report.decision!.effect).toBeGreaterThan(0.05);
    expect(report.decision!.effectInterval![0]).toBeGreaterThan(0);
    expect(repo.read('train.mjs')).toContain('const SCORE = 0.9;');
    const kept = await loop.keep({ id: e.id });
    expect(kept.experiment.decision).toBe('kept');
    expect(kept.experiment.forced).toBe(false);
    expect(repo.git('status', '--porcelain')).toBe('');
  });

  it('worse: a clearly worse candidate is rejected after a single run against the best\'s earlier runs', async () => {
    const { repo, loop } = setup({});
    await startWithBaseline(loop);
    const e = await tryCandidate(repo, loop, '1.5');
    const report = (await loop.readMetric(e.id));
    expect(report.decision?.verdict).toBe('worse');
    expect(e.runs).toBe(1);
    const err = await rejection(loop.keep({ id: e.id }));
    expect(err.message).toMatch(/not an improvement/);
    // Even force cannot keep a worse result.
    expect((await rejection(loop.keep({ id: e.id, force: true, reason: 'simpler' }))).message).toMatch(/not an improvement/);
  });

  it('inconclusive: a change within the noise is refused, then kept only by force with a reason, recorded as forced', async () => {
    const { repo, loop } = setup({ maxRepeats: 3 });
    await startWithBaseline(loop);
    const e = await tryCandidate(repo, loop, '0.999');
    const report = (await loop.readMetric(e.id));
    expect(report.decision?.verdict).toBe('inconclusive');
    expect(report.keepable).toBe(false);
    expect(report.decision!.effectInterval![0]).toBeLessThan(0);
    expect(report.decision!.effectInterval![1]).toBeGreaterThan(0);
    expect((await rejection(loop.keep({ id: e.id }))).message).toMatch(/inconclusive/);
    expect((await rejection(loop.keep({ id: e.id, force: true }))).message).toMatch(/force needs a reason/);
    const kept = await loop.keep({ id: e.id, force: true, reason: 'same score, simpler code' });
    expect(kept.experiment.forced).toBe(true);
    expect(kept.experiment.reason).toMatch(/forced: same score/);
  });

  it('stops early: a neutral change ends before maxRepeats pairs once an improvement has become unlikely', async () => {
    const { repo, loop } = setup({ maxRepeats: 10 });
    await startWithBaseline(loop);
    const e = await tryCandidate(repo, loop, '1.004');
    const report = (await loop.readMetric(e.id));
    expect(report.decision?.verdict).not.toBe('improved');
    expect(report.decision!.runsSpent).toBeLessThan(20);
    expect(report.decision!.runsSpent).toBe(e.runs);
  });

  it('is not fooled by one run: a candidate that reads better on its first run is re-measured against the best before any keep', async () => {
    const { repo, loop } = setup({});
    await startWithBaseline(loop);
    const e = await tryCandidate(repo, loop, '0.97');
    const report = (await loop.readMetric(e.id));
    expect(e.runs).toBeGreaterThan(1);
    expect(report.decision!.best.n).toBeGreaterThan(0);
    // Whatever the verdict, it rests on the best as re-measured now, never on its stored figure.
    expect(report.decision!.runs.filter((r) => r.side === 'best').length).toBe(report.decision!.best.n);
  });

  it('a fine-grained metric is taken as exact once one commit gave five identical runs, then one run rejects', async () => {
    const { repo, loop } = setup({}, { SIGMA: '0', SCORE: '1.012345' });
    await startWithBaseline(loop);
    expect((await loop.status()).noise?.sd).toBe(0);
    // Three calibration runs are not enough: the best is re-measured twice (five identical runs) before the pair decides.
    const better = await tryCandidate(repo, loop, '0.912345');
    const report = (await loop.readMetric(better.id)).decision!;
    expect(report.verdict).toBe('improved');
    expect(report.why).toMatch(/deterministic/);
    expect(better.runs).toBe(4);
    await loop.keep({ id: better.id });
    const worse = await tryCandidate(repo, loop, '1.212345');
    expect((await loop.readMetric(worse.id)).decision?.verdict).toBe('worse');
    expect(worse.runs).toBe(1);
  });

  it('a pass rate that read 0, 0, 0 is not exact: one lucky run of a neutral edit is not kept', async () => {
    // Binary assertions: the score moves in steps of 10; this edit reads 10 on its first run only (run id 4), by luck.
    const passRate = "const LUCKY = 4;\nconst run = Number(process.env.RATCHET_EXPERIMENT_ID ?? 0);\nconsole.log('score: ' + (run === LUCKY ? 10 : 0));\n";
    const { repo, loop } = setup({}, {}, { metric: { name: 'score', direction: 'maximize' } }, passRate);
    await startWithBaseline(loop);
    expect((await loop.status()).noise?.sd).toBe(0);
    setConstant(repo, 'LUCKY', '4 /* neutral edit */');
    const e = await finished(loop, (await loop.runExperiment({ description: 'neutral' })).id);
    const report = (await loop.readMetric(e.id)).decision!;
    expect(report.verdict).not.toBe('improved');
    expect(e.runs).toBeGreaterThan(2);
    expect(report.why).not.toMatch(/deterministic/);
    expect((await rejection(loop.keep({ id: e.id }))).code).toBe('not_decidable');
  });
});

describe('constraints and secondary figures', () => {
  it('a candidate over a constraint on its first run ends at once as worse, naming the constraint', async () => {
    const { repo, loop } = setup({}, {}, { metric: { name: 'score', direction: 'minimize', secondary: ['peak_vram_mb'], constraints: [{ metric: 'peak_vram_mb', max: 10000 }] } });
    await startWithBaseline(loop);
    setConstant(repo, 'VRAM', '100000'); // run 4 reports 400000 MB
    const e = await tryCandidate(repo, loop, '0.9'); // a clear gain on the metric, which must not buy repeats
    expect(e.runs).toBe(1);
    const report = await loop.readMetric(e.id);
    expect(report.decision?.verdict).toBe('worse');
    expect(report.decision?.why).toMatch(/constraint.*peak_vram_mb=400000 \(max 10000\)/);
    expect(report.constraints.filter((c) => !c.ok).map((c) => c.metric)).toEqual(['peak_vram_mb']);
    expect((await rejection(loop.keep({ id: e.id }))).message).toMatch(/violates constraint.*peak_vram_mb/);
  });

  it('a repeated experiment reports the mean of its runs\' secondary figures in read_metric, list_experiments and results.tsv', async () => {
    const { repo, loop } = setup({});
    const baseline = await startWithBaseline(loop);
    // Calibration runs 1, 2, 3 print 1024, 2048, 3072: the mean is 2048 MB (2.0 GB), the first run alone 1.0 GB.
    expect(baseline.secondary.peak_vram_mb).toBe(2048);
    expect((await loop.listExperiments({})).experiments.find((x) => x.id === baseline.id)?.secondary.peak_vram_mb).toBe(2048);
    expect(readFileSync(loop.resultsTsvPath, 'utf8').split('\n')[1]).toMatch(/\t2\.0\tkeep\t/);
    const e = await tryCandidate(repo, loop, '0.9');
    const own = loop.ledger.runsOf(e.id).filter((r) => r.commit === e.commit);
    expect(own.length).toBeGreaterThan(1);
    const mean = own.reduce((a, r) => a + 1024 * r.id, 0) / own.length;
    expect((await loop.readMetric(e.id)).experiment.secondary.peak_vram_mb).toBeCloseTo(mean, 9);
    expect(mean).not.toBe(1024 * e.id);
  });
});

describe('repeats are runs', () => {
  it('records each repeat as a run of its own with its log, and a crashing candidate repeat fails the experiment', async () => {
    const { repo, loop } = setup({});
    await startWithBaseline(loop);
    // Only the candidate's content crashes, and only from run id 5 on: its first run (id 4) measures,
    // the best's re-measurements (5, 6) measure, its own repeat (7) crashes.
    setConstant(repo, 'CRASH_ON_RUN', '5');
    const e = await tryCandidate(repo, loop, '0.95');
    expect(e.state).toBe('crashed');
    expect(e.reason).toMatch(/repeat #7 crashed/);
    const runs = loop.ledger.runsOf(e.id);
    expect(runs.map((r) => r.kind)).toEqual(['candidate', 'repeat', 'repeat', 'repeat']);
    expect(runs.slice(1).map((r) => r.state)).toEqual(['measured', 'measured', 'crashed']);
    expect(readFileSync(join(repo.dir, '.ratchet', 'runs', '7', 'run.log'), 'utf8')).toContain('out of memory');
    // The working tree holds the candidate again, ready for revert.
    expect(repo.read('train.mjs')).toContain('const CRASH_ON_RUN = 5;');
    await loop.revert({ id: e.id });
    expect(repo.read('train.mjs')).toContain('const SCORE = 1.0;');
  });
});

describe('pruning', () => {
  it('stops a candidate whose learning curve is clearly worse than the best\'s after the warm-up, and never keeps it', async () => {
    const { repo, loop } = setup({ prune: true, pruneWarmup: 0.25 }, { STEPS: '20', STEP_MS: '50' });
    await startWithBaseline(loop);
    // The best's curves are on record from its calibration runs.
    const baselineId = (await loop.status()).session!.bestExperimentId!;
    expect(loop.ledger.progress(baselineId)).toHaveLength(20);
    const bad = await tryCandidate(repo, loop, '1.5');
    expect(bad.state).toBe('pruned');
    expect(bad.reason).toMatch(/^pruned: at step \d+/);
    const step = Number(/at step (\d+)/.exec(bad.reason!)![1]);
    expect(step).toBeGreaterThanOrEqual(5);
    expect(step).toBeLessThan(20);
    expect((await loop.readMetric(bad.id)).keepable).toBe(false);
    expect((await rejection(loop.keep({ id: bad.id, force: true, reason: 'x' }))).message).toMatch(/pruned, not measured/);
    expect(readFileSync(loop.resultsTsvPath, 'utf8')).toMatch(/pruned\tscore 1\.5/);
    await loop.revert({ id: bad.id });

    // A better candidate runs its curve to the end.
    const good = await tryCandidate(repo, loop, '0.9');
    expect(good.state).toBe('measured');
    expect((await loop.readMetric(good.id)).decision?.verdict).toBe('improved');
  });
});

describe('plateau', () => {
  it('status says so once plateauWindow experiments in a row brought no keep', async () => {
    const { repo, loop } = setup({ plateauWindow: 2 }, { SIGMA: '0' });
    await startWithBaseline(loop);
    expect((await loop.status()).plateau?.reached).toBe(false);
    for (const score of ['1.1', '1.2']) {
      const e = await tryCandidate(repo, loop, score);
      await loop.revert({ id: e.id });
    }
    const status = (await loop.status());
    expect(status.plateau?.reached).toBe(true);
    expect(status.plateau?.experimentsSinceKeep).toBe(2);
    expect(status.next).toMatch(/no kept improvement/);
  });
});

describe('the working tree during repeats', () => {
  it('leaves edits made while repeats run in the agent\'s tree, and measures the real best and candidate from their commits', async () => {
    const { repo, loop } = setup({}, { SIGMA: '0', SCORE: '1.012345', STEPS: '10', STEP_MS: '100' });
    await startWithBaseline(loop);
    setConstant(repo, 'SCORE', '0.912345');
    const { id } = await loop.runExperiment({ description: 'better' });
    // Wait until the best is being re-measured, then edit as an impatient agent would.
    while (loop.ledger.experiment(id)!.phase !== 'repeats') await new Promise((r) => setTimeout(r, 50));
    repo.write('notes/idea.md', 'next idea\n');
    const e = await finished(loop, id);
    const report = (await loop.readMetric(id)).decision!;
    expect(report.verdict).toBe('improved');
    // The best re-measured as the best, not as the candidate or the edit.
    expect(report.best.mean).toBe(1.012345);
    expect(report.candidate.mean).toBe(0.912345);
    // Each repeat ran in its own workspace: the agent's tree was never swapped, and its new edit is still there.
    expect(repo.read('notes/idea.md')).toBe('next idea\n');
    expect(repo.read('train.mjs')).toContain('const SCORE = 0.912345;');
    await loop.keep({ id: e.id });
    expect(repo.git('status', '--porcelain')).toBe('?? notes/');
  });

  it('cancelling an experiment in its repeats stops the run in progress and restores the candidate', async () => {
    const { repo, loop } = setup({}, { SIGMA: '0.01', STEPS: '30', STEP_MS: '100' });
    await startWithBaseline(loop);
    setConstant(repo, 'SCORE', '0.97');
    const { id } = await loop.runExperiment({ description: 'slow' });
    while (loop.ledger.experiment(id)!.phase !== 'repeats') await new Promise((r) => setTimeout(r, 50));
    const cancelled = await loop.cancelExperiment(id);
    expect(cancelled.state).toBe('cancelled');
    const runs = loop.ledger.runsOf(id);
    expect(runs.every((r) => r.state !== 'running' && r.state !== 'queued')).toBe(true);
    expect(repo.read('train.mjs')).toContain('const SCORE = 0.97;');
    expect((await loop.status()).running).toBeNull();
    await loop.revert({ id });
    expect(repo.read('train.mjs')).toContain('const SCORE = 1.0;');
  });
});
