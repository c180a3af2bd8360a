// Several experiments at once from one agent (ratchet.json `parallel`): slots and a FIFO queue, waiting for the next to end,
// and a candidate whose best moved meanwhile carried onto the new best (or refused with its conflict), through the real loop.
import { describe, it, expect } from 'vitest';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ResearchLoop } from '../../src/core/loop.js';
import { statusLines } from '../../src/status-text.js';
import { silentLogger } from '../../src/log.js';
import { makeRepo, baseConfig, type TestRepo } from '../helpers/repo.js';
import { cleanedUpAfterEach, finished, rejection, startWithBaseline } from '../helpers/loop.js';

// Each run waits for its own gate file (named by the run's experiment id) before it prints, or exits 3 when it finds
// <id>.crash, so a test decides when and how each ends.
const TRAIN = `// gated synthetic experiment
const A = 0;
const B = 0;
const C = 0;
import { existsSync } from 'node:fs';
const gate = process.env.GATE_DIR + '/' + process.env.RATCHET_EXPERIMENT_ID;
while (process.env.GATE_DIR && !existsSync(gate) && !existsSync(process.env.GATE_DIR + '/all')) {
  if (existsSync(gate + '.crash')) process.exit(3);
  await new Promise((r) => setTimeout(r, 20));
}
console.log('score: ' + (10 - A - B - C));
`;

const { repos, loops } = cleanedUpAfterEach();

function setup(parallel: number) {
  const gates = mkdtempSync(join(tmpdir(), 'ratchet-gates-'));
  const repo = makeRepo(
    { 'train.mjs': TRAIN },
    baseConfig({ parallel, sandbox: 'off', run: { command: 'node train.mjs', budgetSeconds: 60, graceSeconds: 1, env: { GATE_DIR: gates } } }),
  );
  repos.push({ ...repo, cleanup: () => (repo.cleanup(), rmSync(gates, { recursive: true, force: true })) } as TestRepo);
  const loop = new ResearchLoop({ repo: repo.dir, logger: silentLogger() });
  loops.push(loop);
  const open = (id: number | 'all') => writeFileSync(join(gates, String(id)), '');
  /** From now on each run waits for its own gate. */
  const shut = () => rmSync(join(gates, 'all'), { force: true });
  const crash = (id: number) => writeFileSync(join(gates, `${id}.crash`), '');
  return { repo, loop, open, shut, crash };
}

function edit(repo: TestRepo, name: 'A' | 'B' | 'C', value: number) {
  repo.write('train.mjs', repo.read('train.mjs').replace(new RegExp(`const ${name} = [^;]+;`), `const ${name} = ${value};`));
}

/** Two candidates built on the same best, both measured, the first kept: the second is then stale. */
async function keepFirstOfTwo(loop: ResearchLoop, repo: TestRepo, first: ['A' | 'B' | 'C', number], second: ['A' | 'B' | 'C', number]) {
  await startWithBaseline(loop);
  const base = repo.read('train.mjs');
  edit(repo, ...first);
  const a = await loop.runExperiment({ description: first.join('=') });
  repo.write('train.mjs', base);
  edit(repo, ...second);
  const b = await loop.runExperiment({ description: second.join('=') });
  await finished(loop, a.id);
  await finished(loop, b.id);
  await loop.keep({ id: a.id });
  return { a, b, stale: await rejection(loop.keep({ id: b.id })) };
}

describe('parallel experiments', () => {
  it('runs up to `parallel` at once, queues the rest first in first out, and starts the next as a slot frees', async () => {
    const { repo, loop, open, shut } = setup(2);
    open('all');
    await startWithBaseline(loop);
    shut();
    const ids: number[] = [];
    for (const [name, value] of [['A', 1], ['B', 1], ['C', 1]] as const) {
      edit(repo, name, value);
      ids.push((await loop.runExperiment({ description: `${name}=${value}` })).id);
    }
    const states = () => ids.map((id) => loop.ledger.experiment(id)!.state);
    expect(states()).toEqual(['running', 'running', 'queued']);
    const status = await loop.status();
    expect(status.parallel).toMatchObject({ slots: 2, queued: [ids[2]] });
    expect(status.parallel!.inFlight.map((e) => e.id)).toEqual([ids[0], ids[1]]);
    expect(status.next).toContain(`In flight: ${ids[0]}, ${ids[1]}; queued: ${ids[2]}`);
    expect(statusLines(status).join('\n')).toMatch(new RegExp(`Parallel: 2 of 2 slot\\(s\\) busy \\(#${ids[0]} run \\d+s, #${ids[1]} run \\d+s\\); queued #${ids[2]}`));
    // The second ends first: wait_experiment {next: true} returns it, and the queued one takes its slot.
    open(ids[1]!);
    const next = await loop.waitNext(true, 30);
    expect(next.id).toBe(ids[1]);
    for (let i = 0; i < 200 && loop.ledger.experiment(ids[2]!)!.state === 'queued'; i++) await new Promise((r) => setTimeout(r, 50));
    expect(loop.ledger.experiment(ids[2]!)!.state).toBe('running');
    open(ids[0]!);
    open(ids[2]!);
    for (const id of ids) expect((await finished(loop, id)).state).toBe('measured');
    // Each candidate was snapshotted when it was submitted: the third holds all three edits, the first only its own.
    expect((await loop.readMetric(ids[0])).experiment.metric).toBe(9);
    expect((await loop.readMetric(ids[2])).experiment.metric).toBe(7);
  });

  it('wait_experiment {next: true} reports a candidate that crashed between two calls, once, and not one already shown', async () => {
    const { repo, loop, open, shut, crash } = setup(2);
    open('all');
    await startWithBaseline(loop);
    shut();
    edit(repo, 'A', 1);
    const a = await loop.runExperiment({ description: 'A=1, crashes' });
    edit(repo, 'B', 1);
    const b = await loop.runExperiment({ description: 'B=1' });
    crash(a.id);
    for (let i = 0; i < 200 && loop.ledger.experiment(a.id)!.state === 'running'; i++) await new Promise((r) => setTimeout(r, 50));
    expect(loop.ledger.experiment(a.id)!.state).toBe('crashed');
    // The crash needs no decision, yet it is news: it comes back before the one still running, and only once.
    expect(await loop.waitNext(true, 0)).toMatchObject({ id: a.id, state: 'crashed' });
    open(b.id);
    expect(await loop.waitNext(true, 30)).toMatchObject({ id: b.id, state: 'measured' });
    await loop.revert({ id: b.id });
    expect((await rejection(loop.waitNext(true, 0))).code).toBe('not_decidable');
    // A crash the agent already saw through wait_experiment {id} is not reported again.
    edit(repo, 'C', 1);
    const c = await loop.runExperiment({ description: 'C=1, crashes' });
    crash(c.id);
    expect((await finished(loop, c.id)).state).toBe('crashed');
    expect((await rejection(loop.waitNext(true, 0))).code).toBe('not_decidable');
  });

  it('a candidate whose best moved is carried onto the new best and measured again; keep refuses the stale one and names the new id', async () => {
    const { repo, loop, open } = setup(2);
    open('all');
    // Two lines apart from A's: git merges edits that an unchanged line separates.
    const { a, b, stale } = await keepFirstOfTwo(loop, repo, ['A', 2], ['C', 3]);
    expect(stale.code).toBe('stale_candidate');
    const again = stale.details!.remeasuredAs as number;
    expect(stale.message).toContain(`experiment ${again}`);
    expect(loop.ledger.experiment(b.id)!.decision).toBe('reverted');
    const carried = await finished(loop, again);
    expect(carried.parentCommit).toBe(loop.ledger.experiment(a.id)!.commit);
    // Both changes are in the carried candidate: 10 - 2 - 3.
    expect(carried.metric).toBe(5);
    await loop.keep({ id: again });
    expect(loop.ledger.activeSession()!.bestExperimentId).toBe(again);
  });

  it('a stale candidate that conflicts with the new best is refused with the conflicting path and kept as evidence', async () => {
    const { repo, loop, open } = setup(2);
    open('all');
    const { b, stale: conflict } = await keepFirstOfTwo(loop, repo, ['A', 2], ['A', 4]);
    expect(conflict.code).toBe('stale_candidate');
    expect(conflict.details!.conflicts).toEqual(['train.mjs']);
    expect(loop.ledger.experiment(b.id)!.decision).toBe('reverted');
    expect(loop.ledger.experiment(b.id)!.decisionReason).toMatch(/conflicts with the new best in train.mjs/);
  });

  it('revert {id} of one of several leaves a tree that already holds the next idea; revert {} puts it back at the best', async () => {
    const { repo, loop, open } = setup(2);
    open('all');
    await startWithBaseline(loop);
    edit(repo, 'A', 1);
    const a = await loop.runExperiment({ description: 'A=1' });
    edit(repo, 'B', 1); // the next idea, in the tree while A runs
    await finished(loop, a.id);
    const r = await loop.revert({ id: a.id });
    expect(r.resetTo).toBeNull();
    expect(r.experiment?.decision).toBe('reverted');
    expect(repo.read('train.mjs')).toContain('const B = 1;');
    const all = await loop.revert({});
    expect(all.resetTo).toBe(loop.ledger.activeSession()!.bestCommit);
    expect(repo.read('train.mjs')).toContain('const B = 0;');
    expect(existsSync(join(repo.dir, 'train.mjs'))).toBe(true);
    // The idea in the tree was never submitted: it is saved under a ref of its own.
    expect(repo.git('show', `${all.savedWorktree}:train.mjs`)).toContain('const B = 1;');
    // Submitted, it is saved under its experiment's ref already, and revert {} makes no second copy.
    edit(repo, 'C', 1);
    const c = await loop.runExperiment({ description: 'C=1' });
    expect((await loop.revert({})).savedWorktree).toBeNull();
    expect(repo.read('train.mjs')).toContain('const C = 0;');
    await finished(loop, c.id);
  });

  it('parallel 1 keeps the one-at-a-time rules: a second run is refused while one is in flight', async () => {
    const { repo, loop, open, shut } = setup(1);
    open('all');
    await startWithBaseline(loop);
    shut();
    edit(repo, 'A', 1);
    const a = await loop.runExperiment({ description: 'A=1' });
    edit(repo, 'B', 1);
    expect((await rejection(loop.runExperiment({ description: 'B=1' }))).code).toBe('busy');
    open(a.id);
    await finished(loop, a.id);
  });

  it('on 4 fake GPUs: 4 candidates run at once, each on a device of its own, a fifth waits for the first lease given back', async () => {
    const fake = fileURLToPath(new URL('../fixtures/nvidia-smi/nvidia-smi', import.meta.url));
    const before = process.env.FAKE_NVIDIA_SMI_FIXTURE;
    process.env.FAKE_NVIDIA_SMI_FIXTURE = 'a100x4';
    try {
      const gates = mkdtempSync(join(tmpdir(), 'ratchet-gates-'));
      const train = TRAIN.replace("console.log('score: '", "console.log('cuda ' + process.env.CUDA_VISIBLE_DEVICES); console.log('score: '");
      const repo = makeRepo(
        { 'train.mjs': train },
        baseConfig({ parallel: 8, sandbox: 'off', gpu: { required: true, perRun: 1 }, run: { command: 'node train.mjs', budgetSeconds: 60, graceSeconds: 1, env: { GATE_DIR: gates } } }),
      );
      repos.push({ ...repo, cleanup: () => (repo.cleanup(), rmSync(gates, { recursive: true, force: true })) } as TestRepo);
      const loop = new ResearchLoop({ repo: repo.dir, logger: silentLogger(), nvidiaSmi: fake });
      loops.push(loop);
      writeFileSync(join(gates, 'all'), '');
      await startWithBaseline(loop);
      rmSync(join(gates, 'all'));
      const ids: number[] = [];
      for (let i = 1; i <= 5; i++) {
        edit(repo, 'A', i);
        ids.push((await loop.runExperiment({ description: `A=${i}` })).id);
      }
      // parallel 8, but the pool holds 4 runs: the fifth waits.
      expect(ids.map((id) => loop.ledger.experiment(id)!.state)).toEqual(['running', 'running', 'running', 'running', 'queued']);
      const devices = ids.slice(0, 4).map((id) => loop.ledger.experiment(id)!.gpus!.indices.join(','));
      expect(new Set(devices).size).toBe(4);
      writeFileSync(join(gates, String(ids[0])), '');
      await finished(loop, ids[0]!);
      for (let i = 0; i < 200 && loop.ledger.experiment(ids[4]!)!.state === 'queued'; i++) await new Promise((r) => setTimeout(r, 50));
      expect(loop.ledger.experiment(ids[4]!)!.state).toBe('running');
      // The fifth took the device the first gave back.
      expect(loop.ledger.experiment(ids[4]!)!.gpus!.indices.join(',')).toBe(devices[0]);
      writeFileSync(join(gates, 'all'), '');
      for (const id of ids) expect((await finished(loop, id)).state).toBe('measured');
      const log = (await loop.readLog({ id: ids[1]! })).lines.map((l) => l.text).join('\n');
      expect(log).toContain(`cuda ${devices[1]}`);
    } finally {
      if (before === undefined) delete process.env.FAKE_NVIDIA_SMI_FIXTURE;
      else process.env.FAKE_NVIDIA_SMI_FIXTURE = before;
    }
  });
});
