// The runs of one decision on several devices at once: batches that overlap, sides balanced per device, spare devices
// of the root's model only and given back at the end, one device as before, and cancel and restart mid-batch.
import { afterEach, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ResearchLoop } from '../../src/core/loop.js';
import type { ExperimentRow } from '../../src/core/ledger.js';
import type { LoopContext } from '../../src/core/context.js';
import type { Executor } from '../../src/core/executor/executor.js';
import { Leases } from '../../src/core/pool/leases.js';
import { batchSides, nextSide, type Side } from '../../src/core/statistics.js';
import { silentLogger } from '../../src/log.js';
import { baseConfig, makeRepo, setConstant } from '../helpers/repo.js';
import { cleanedUpAfterEach, finished, startWithBaseline } from '../helpers/loop.js';

const FAKE_NVIDIA_SMI = fileURLToPath(new URL('../fixtures/nvidia-smi/nvidia-smi', import.meta.url));

/**
 * Prints `score: SCORE + noise`, the noise seeded by the run's experiment id, and appends where and when it ran to
 * TRACE_DIR/trace. A run of a commit measured before (a repeat) waits, with BARRIER set, until another run overlaps it
 * (at most 5 s), so runs that can overlap do; it waits while TRACE_DIR/shut exists, so a test holds a batch in flight.
 */
const TRAIN = `// seeded noisy run that records where and when it ran
import { appendFileSync, existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
const SCORE = 1.0;
const SIGMA = 0.01;
const dir = process.env.TRACE_DIR;
const run = Number(process.env.RATCHET_EXPERIMENT_ID);
const start = Date.now();
const again = existsSync(dir + '/seen-' + SCORE);
writeFileSync(dir + '/seen-' + SCORE, '');
writeFileSync(dir + '/going-' + run, '');
// Another run overlaps this one if it is going now, or ended after this one started.
const going = () => readdirSync(dir).some((f) => f.startsWith('going-') && f !== 'going-' + run);
const endedSince = () => existsSync(dir + '/trace') && readFileSync(dir + '/trace', 'utf8').split('\\n').some((l) => l && JSON.parse(l).end > start);
const others = () => going() || endedSince();
const pause = () => new Promise((r) => setTimeout(r, 20));
while (process.env.BARRIER && again && !others() && Date.now() - start < 5000) await pause();
while (again && existsSync(dir + '/shut')) await pause();
let s = (run * 7919 + 12345) >>> 0;
const rand = () => { s = (s + 0x6d2b79f5) >>> 0; let t = s; t = Math.imul(t ^ (t >>> 15), t | 1); t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return ((t ^ (t >>> 14)) >>> 0) / 4294967296; };
const noise = SIGMA * Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
rmSync(dir + '/going-' + run);
appendFileSync(dir + '/trace', JSON.stringify({ run, cuda: process.env.CUDA_VISIBLE_DEVICES, score: SCORE, start, end: Date.now() }) + '\\n');
console.log('score: ' + (SCORE + noise).toFixed(6));
`;

interface Trace {
  run: number;
  cuda: string;
  score: number;
  start: number;
  end: number;
}

const { repos, loops } = cleanedUpAfterEach();
const traceDirs: string[] = [];
const savedFixture = process.env.FAKE_NVIDIA_SMI_FIXTURE;
afterEach(() => {
  if (savedFixture === undefined) delete process.env.FAKE_NVIDIA_SMI_FIXTURE;
  else process.env.FAKE_NVIDIA_SMI_FIXTURE = savedFixture;
  for (const dir of traceDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function setup(fixture: string, opts: { pool?: number[]; env?: Record<string, string>; parallel?: number } = {}) {
  process.env.FAKE_NVIDIA_SMI_FIXTURE = fixture;
  const trace = mkdtempSync(join(tmpdir(), 'ratchet-trace-'));
  traceDirs.push(trace);
  const repo = makeRepo(
    { 'train.mjs': TRAIN },
    baseConfig({
      editable: ['train.mjs'],
      metric: { name: 'score', direction: 'minimize' },
      decision: { rule: 'significant', maxRepeats: 6, baselineRepeats: 3 },
      parallel: opts.parallel ?? 1,
      gpu: { required: true, perRun: 1, ...(opts.pool ? { pool: opts.pool } : {}) },
      // The runs write to the trace folder, which a sandbox would hide.
      sandbox: 'off',
      run: { command: 'node train.mjs', budgetSeconds: 60, graceSeconds: 1, env: { TRACE_DIR: trace, ...(opts.env ?? { BARRIER: '1' }) } },
    }),
  );
  repos.push(repo);
  const open = () => new ResearchLoop({ repo: repo.dir, logger: silentLogger(), nvidiaSmi: FAKE_NVIDIA_SMI });
  const loop = open();
  loops.push(loop);
  const traces = (): Trace[] =>
    existsSync(join(trace, 'trace'))
      ? readFileSync(join(trace, 'trace'), 'utf8')
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as Trace)
      : [];
  return { repo, loop, open, trace, traces };
}

/** A candidate a little better than the best, within the noise: its decision takes several runs. */
async function closeCall(repo: ReturnType<typeof setup>['repo'], loop: ResearchLoop, opts: { shut?: string } = {}) {
  const score = '0.99';
  await startWithBaseline(loop);
  if (opts.shut) writeFileSync(join(opts.shut, 'shut'), '');
  setConstant(repo, 'SCORE', score);
  return (await loop.runExperiment({ description: `score ${score}` })).id;
}

const overlaps = (a: Trace, b: Trace) => a.start < b.end && b.start < a.end;
const live = (loop: ResearchLoop) => new Leases(loop.ledger.db).live();
const sideOf = (root: ExperimentRow, r: ExperimentRow) => (r.commit === root.commit ? 'candidate' : 'best');

async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 600 && !check(); i++) await new Promise((r) => setTimeout(r, 50));
  expect(check()).toBe(true);
}

describe('batchSides', () => {
  /** Batches over `devices` devices until `runs` runs, each device's sides in order; the root's run is device 0's first. */
  function simulate(devices: number, runs: number, sizes: (done: number) => number): { perDevice: Side[][]; levels: number[] } {
    const perDevice: Side[][] = Array.from({ length: devices }, (_, i) => (i === 0 ? ['candidate'] : []));
    const levels: number[] = [];
    let done = 1;
    while (done < runs) {
      const size = sizes(done);
      const all = perDevice.flat();
      const sides = batchSides({ candidate: all.filter((x) => x === 'candidate').length, best: all.filter((x) => x === 'best').length }, perDevice.slice(0, size));
      sides.forEach((side, i) => perDevice[i]!.push(side));
      done += size;
      const after = perDevice.flat();
      levels.push(after.filter((x) => x === 'candidate').length - after.filter((x) => x === 'best').length);
    }
    return { perDevice, levels };
  }

  it('on one device is nextSide\'s ABBA order', () => {
    const { perDevice } = simulate(1, 12, () => 1);
    expect(perDevice[0]).toEqual(Array.from({ length: 12 }, (_, i) => nextSide(i)));
  });

  it('on four devices levels the sides at every batch, and each device measures both sides in each two of its runs', () => {
    // The first batch is odd (the root's run is ahead), the others even, as repeatUntilDecided sizes them.
    const { perDevice, levels } = simulate(4, 16, (done) => (done === 1 ? 3 : 4));
    expect(levels).toEqual([0, 0, 0, 0]);
    for (const sides of perDevice) {
      for (let i = 0; i + 1 < sides.length; i += 2) expect(new Set([sides[i], sides[i + 1]]).size).toBe(2);
    }
  });

  it('a device new to the decision takes the side the batch still needs', () => {
    expect(batchSides({ candidate: 1, best: 0 }, [['candidate'], [], []])).toEqual(['best', 'candidate', 'best']);
    expect(batchSides({ candidate: 2, best: 2 }, [['candidate', 'best'], ['candidate'], ['best'], []])).toEqual(['best', 'best', 'candidate', 'candidate']);
  });
});

describe('parallel repeats', () => {
  it('on 4 devices of one model: runs of a decision overlap, each device measures both sides alike, and the spare leases go back', async () => {
    const { repo, loop, traces } = setup('a100x4');
    const id = await closeCall(repo, loop);
    const e = await finished(loop, id);
    expect(e.state).toBe('measured');
    const root = loop.ledger.experiment(id)!;
    const runs = loop.ledger.runsOf(id);
    expect(runs.every((r) => r.state === 'measured')).toBe(true);
    // At least one batch beside the root's run, never past maxRepeats pairs, and the last look on whole pairs.
    expect(runs.length).toBeGreaterThanOrEqual(4);
    expect(runs.length).toBeLessThanOrEqual(2 * 6);
    expect(runs.filter((r) => sideOf(root, r) === 'candidate').length).toBe(runs.filter((r) => sideOf(root, r) === 'best').length);

    const mine = traces().filter((t) => runs.some((r) => r.id === t.run));
    expect(mine).toHaveLength(runs.length);
    expect(mine.some((a) => mine.some((b) => a !== b && overlaps(a, b)))).toBe(true);
    // Each run saw the devices its row records.
    for (const t of mine) expect(t.cuda).toBe(runs.find((r) => r.id === t.run)!.gpus!.indices.join(','));

    // Per device, in run order (the root's own run first on its device), every two runs measured both sides.
    const byDevice = new Map<string, string[]>();
    for (const r of runs) byDevice.set(r.gpus!.indices.join(','), [...(byDevice.get(r.gpus!.indices.join(',')) ?? []), sideOf(root, r)]);
    expect(byDevice.size).toBeGreaterThan(2);
    for (const sides of byDevice.values()) {
      for (let i = 0; i + 1 < sides.length; i += 2) expect(new Set([sides[i], sides[i + 1]]).size).toBe(2);
    }

    // The spare devices were leased by the repeats themselves, and nothing is held once the decision is made.
    const holders = (loop.ledger.db.prepare('SELECT DISTINCT experiment_id AS id FROM leases').all() as { id: number | null }[]).map((l) => l.id);
    expect(runs.filter((r) => r.repeatOf === id && holders.includes(r.id)).length).toBeGreaterThan(0);
    expect(live(loop)).toEqual([]);
  });

  it('on 1 device: the runs go one after another in ABBA order, as before', async () => {
    const { repo, loop, traces } = setup('a100x4', { pool: [1], env: {} });
    const id = await closeCall(repo, loop);
    expect((await finished(loop, id)).state).toBe('measured');
    const root = loop.ledger.experiment(id)!;
    const runs = loop.ledger.runsOf(id);
    expect(runs.length).toBeGreaterThan(2);
    expect(runs.map((r) => sideOf(root, r))).toEqual(runs.map((_, i) => nextSide(i)));
    expect(new Set(runs.map((r) => r.gpus!.indices.join(',')))).toEqual(new Set(['1']));
    const mine = traces()
      .filter((t) => runs.some((r) => r.id === t.run))
      .sort((a, b) => a.start - b.start);
    for (let i = 1; i < mine.length; i++) expect(mine[i]!.start).toBeGreaterThanOrEqual(mine[i - 1]!.end);
    expect(live(loop)).toEqual([]);
  });

  it('on a host with two GPU models: the decision runs only on the model its experiment ran on', async () => {
    const { repo, loop, traces } = setup('a100x2-h100x2');
    const id = await closeCall(repo, loop);
    expect((await finished(loop, id)).state).toBe('measured');
    const runs = loop.ledger.runsOf(id);
    expect(runs.length).toBeGreaterThan(2);
    for (const r of runs) expect(r.gpus).toMatchObject({ model: 'NVIDIA H100 80GB HBM3' });
    expect(new Set(runs.map((r) => r.gpus!.indices.join(',')))).toEqual(new Set(['2', '3']));
    const mine = traces().filter((t) => runs.some((r) => r.id === t.run));
    expect(mine.some((a) => mine.some((b) => a !== b && overlaps(a, b)))).toBe(true);
    expect(live(loop)).toEqual([]);
  });

  it('cancelling the experiment stops every repeat of the batch in flight and gives back every device', async () => {
    const { repo, loop, trace } = setup('a100x4');
    const id = await closeCall(repo, loop, { shut: trace });
    const running = () => loop.ledger.runsOf(id).filter((r) => r.repeatOf === id && r.state === 'running');
    await until(() => running().length >= 2);
    // Status shows the experiment, through its oldest run in flight.
    expect((await loop.status()).running).toMatchObject({ id, phase: 'run' });
    expect((await loop.cancelExperiment(id)).state).toBe('cancelled');
    await until(() => loop.ledger.runsOf(id).every((r) => r.state !== 'running' && r.state !== 'queued'));
    const repeats = loop.ledger.runsOf(id).filter((r) => r.repeatOf === id);
    expect(repeats.length).toBeGreaterThanOrEqual(2);
    expect(repeats.map((r) => r.state)).toEqual(repeats.map(() => 'cancelled'));
    await until(() => live(loop).length === 0);
  });

  it('after a restart mid-batch: every repeat in flight is followed to its end, one never started is cancelled, and the decision completes', async () => {
    const { repo, loop, open, trace } = setup('a100x4');
    const id = await closeCall(repo, loop, { shut: trace });
    const running = (l: ResearchLoop) => l.ledger.runsOf(id).filter((r) => r.repeatOf === id && r.state === 'running');
    await until(() => running(loop).length >= 2);
    const inFlight = running(loop).map((r) => r.id);
    loop.close();

    const again = open();
    loops.push(again);
    await again.claim();
    // A repeat recorded just before the old server died, never started.
    const root = again.ledger.experiment(id)!;
    const never = again.ledger.createExperiment({ sessionId: root.sessionId, kind: 'repeat', repeatOf: id, commit: root.commit!, parentCommit: root.parentCommit, description: `candidate repeated for #${id}`, host: root.host });
    await again.recover();
    rmSync(join(trace, 'shut'));
    const ended = await finished(again, id);
    expect(ended.state, ended.reason ?? '').toBe('measured');
    const runs = again.ledger.runsOf(id);
    for (const r of inFlight) expect(runs.find((x) => x.id === r)!.state).toBe('measured');
    expect(runs.find((r) => r.id === never.id)).toMatchObject({ state: 'cancelled', reason: 'ratchet restarted before this repeat started' });
    expect(live(again)).toEqual([]);
  });

  it('a server closed while it starts a batch leaves the repeat it was starting to the next server: cancelled as never started, not crashed', async () => {
    const { repo, loop, open } = setup('a100x4');
    const id = await closeCall(repo, loop);
    // The second repeat's start closes the server under it, as a shutdown does to its git and executor mid-launch.
    const ctx = (loop as unknown as { ctx: LoopContext }).ctx;
    const executorFor = ctx.executorFor.bind(ctx);
    let interrupted: number | null = null;
    let started = 0;
    ctx.executorFor = (config) => {
      const executor = executorFor(config);
      const wrapped = Object.create(executor) as Executor;
      wrapped.start = async (step) => {
        const run = Number(step.env.RATCHET_EXPERIMENT_ID);
        if (loop.ledger.experiment(run)!.repeatOf === id && ++started === 2) {
          interrupted = run;
          loop.close();
          throw new Error('git cat-file answered unexpectedly: nothing (it exited)');
        }
        return executor.start(step);
      };
      return wrapped;
    };
    await until(() => interrupted !== null);
    expect(loop.ledger.experiment(interrupted!)!.state).toBe('queued');

    const again = open();
    loops.push(again);
    await again.claim();
    await again.recover();
    const ended = await finished(again, id);
    expect(ended.state, ended.reason ?? '').toBe('measured');
    expect(again.ledger.experiment(interrupted!)).toMatchObject({ state: 'cancelled', reason: 'ratchet restarted before this repeat started' });
    expect(live(again)).toEqual([]);
  });

  it('with slots unfilled under `parallel`, a decision leaves their devices free, so the next candidates start at once', async () => {
    const { repo, loop, trace } = setup('a100x4', { parallel: 3 });
    const id = await closeCall(repo, loop, { shut: trace });
    const repeats = () => loop.ledger.runsOf(id).filter((r) => r.repeatOf === id);
    // 4 devices, 2 kept for the 2 slots no experiment fills: the batch (recorded whole, then started) is the experiment's own device alone.
    await until(() => repeats().length > 0 && repeats().every((r) => r.state === 'running'));
    expect(repeats()).toHaveLength(1);
    const others: number[] = [];
    for (const score of ['1.5', '1.6']) {
      setConstant(repo, 'SCORE', score);
      const e = await loop.runExperiment({ description: `score ${score}` });
      expect(e.state).toBe('running');
      others.push(e.id);
    }
    const own = loop.ledger.experiment(id)!.gpus!.indices.join(',');
    for (const e of others) expect(loop.ledger.experiment(e)!.gpus!.indices.join(',')).not.toBe(own);
    rmSync(join(trace, 'shut'));
    for (const e of [id, ...others]) expect((await finished(loop, e)).state).toBe('measured');
    expect(live(loop)).toEqual([]);
  });
});

describe('batchSides: the coin for new devices', () => {
  it('decides which new device takes which side, and never changes how many of each the batch has', () => {
    expect(batchSides({ candidate: 1, best: 0 }, [['candidate'], [], []], true)).toEqual(['best', 'best', 'candidate']);
    expect(batchSides({ candidate: 1, best: 0 }, [['candidate'], [], []], false)).toEqual(['best', 'candidate', 'best']);
    // A device that ran before keeps its own ABBA order whatever the coin says.
    expect(batchSides({ candidate: 2, best: 2 }, [['candidate', 'best'], ['candidate'], ['best'], []], true)[0]).toBe('best');
  });
});
