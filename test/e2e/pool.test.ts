// The device pool over stdio: the built server on a fake nvidia-smi of 4 devices (the recorded h100x8, narrowed by the
// server's CUDA_VISIBLE_DEVICES): 4 runs in flight and a fifth queued, stale candidates carried or refused, and one
// decision's repeats spread over devices.
import { describe, it, expect, afterEach } from 'vitest';
import Database from 'better-sqlite3';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { makeRepo, baseConfig, type TestRepo } from '../helpers/repo.js';
import { connectServer, type ServerClient } from '../helpers/server.js';

const FAKE_SMI_DIR = fileURLToPath(new URL('../fixtures/nvidia-smi/', import.meta.url));
// A noisy score around V; each run sleeps first, so runs started together overlap.
const TRAIN = `const V = 1.0;
const SLEEP_MS = 700;
await new Promise((r) => setTimeout(r, SLEEP_MS));
console.log('score: ' + (V + (Math.random() - 0.5) * 0.2).toFixed(5));
`;

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function serve(config: Record<string, unknown>, opts: { train?: string; visible?: string } = {}): Promise<{ repo: TestRepo; server: ServerClient }> {
  const repo = makeRepo({ 'train.mjs': opts.train ?? TRAIN }, baseConfig({ sandbox: 'off', run: { command: 'node train.mjs', budgetSeconds: 60, graceSeconds: 1 }, metric: { name: 'score', direction: 'minimize' }, ...config }));
  cleanups.push(() => repo.cleanup());
  const state = mkdtempSync(join(tmpdir(), 'ratchet-smi-'));
  cleanups.push(() => rmSync(state, { recursive: true, force: true }));
  const server = await connectServer(repo.dir, {
    env: { PATH: `${FAKE_SMI_DIR}${delimiter}${process.env.PATH}`, FAKE_NVIDIA_SMI_FIXTURE: 'h100x8', FAKE_NVIDIA_SMI_STATE: state, CUDA_VISIBLE_DEVICES: opts.visible ?? '0,1,2,3' },
  });
  cleanups.push(() => server.close());
  return { repo, server };
}

const setV = (repo: TestRepo, v: string) => repo.write('train.mjs', repo.read('train.mjs').replace(/const V = [^;]+;/, `const V = ${v};`));

describe('the pool over stdio, 4 fake devices', () => {
  it('runs 4 candidates at once, each on its own device, queues a fifth, and status shows the pool\'s 4 slots', async () => {
    const { repo, server } = await serve({ parallel: 8, gpu: { required: true, perRun: 1 }, decision: { rule: 'greedy' } });
    const started = await server.ok('start_session', { tag: 'pool' });
    await server.finish(started.baseline.id);
    repo.write('train.mjs', repo.read('train.mjs').replace('const SLEEP_MS = 700;', 'const SLEEP_MS = 4000;'));
    const ids: number[] = [];
    for (let i = 1; i <= 5; i++) {
      setV(repo, `1.0 - ${i} / 100`);
      ids.push((await server.ok('run_experiment', { description: `V - ${i}%`, wait_seconds: 0 })).experiment.id);
    }
    const parallel = (await server.ok('status')).parallel;
    expect(parallel.slots).toBe(4); // parallel 8, bounded by what the pool holds
    expect(parallel.inFlight.map((e: { id: number }) => e.id)).toEqual(ids.slice(0, 4));
    expect(parallel.queued).toEqual([ids[4]]);
    const ended = await Promise.all(ids.map((id) => server.finish(id)));
    expect(ended.every((e) => e.state === 'measured')).toBe(true);
    expect(new Set(ended.slice(0, 4).map((e) => e.gpus.join(','))).size).toBe(4);
  }, 120_000);

  it('spreads one decision\'s repeats over free devices at once, each device measuring both sides', async () => {
    const { repo, server } = await serve({ parallel: 1, gpu: { required: true, perRun: 1 }, decision: { rule: 'significant', maxRepeats: 4, baselineRepeats: 2 } });
    // The noise is a fixed sequence, each run claiming the next term, so that whether the decision takes repeats does
    // not depend on chance: the baseline's two runs give a noise of about 0.07, and the candidate's first run, 0.1
    // better, passes the screening look (which can never accept) with room to prove itself in the repeats.
    const claims = mkdtempSync(join(tmpdir(), 'ratchet-claims-'));
    cleanups.push(() => rmSync(claims, { recursive: true, force: true }));
    repo.write('train.mjs', `import { openSync, closeSync } from 'node:fs';
const V = 1.0;
const NOISE = [0.05, -0.05, 0, 0.04, -0.04, 0.02, -0.02, 0.03, -0.03, 0.01, -0.01, 0, 0, 0, 0, 0, 0, 0, 0, 0];
let k = 0;
for (;; k++) { try { closeSync(openSync(${JSON.stringify(claims)} + '/run-' + k, 'wx')); break; } catch {} }
await new Promise((r) => setTimeout(r, 700));
console.log('score: ' + (V + NOISE[k % NOISE.length]).toFixed(5));
`);
    repo.commitAll('a fixed noise sequence');
    const started = await server.ok('start_session', { tag: 'rep' });
    await server.finish(started.baseline.id);
    type Row = { id: number; commit: string; gpus: string; started_at: string; ended_at: string };
    setV(repo, '0.9');
    const id = (await server.ok('run_experiment', { description: 'V - 0.1', wait_seconds: 0 })).experiment.id;
    const e = await server.finish(id);
    expect(e.state).toBe('measured');
    const db = new Database(join(repo.dir, '.ratchet', 'ratchet.db'), { readonly: true });
    const runs = db.prepare('SELECT id, "commit", gpus, started_at, ended_at FROM experiments WHERE (id = ? OR repeat_of = ?) AND state = ? ORDER BY id').all(id, id, 'measured') as Row[];
    db.close();
    expect(runs.length).toBeGreaterThan(2);
    const device = (r: Row) => (JSON.parse(r.gpus) as { indices: number[] }).indices.join(',');
    const devices = new Set(runs.map(device));
    expect(devices.size).toBeGreaterThan(1);
    // Two of its runs went at the same time.
    const overlap = runs.some((a) => runs.some((b) => a.id < b.id && b.started_at < a.ended_at));
    expect(overlap).toBe(true);
    // Every device that ran two or more of them measured both the candidate and the best.
    for (const d of devices) {
      const on = runs.filter((r) => device(r) === d);
      if (on.length >= 2) expect(new Set(on.map((r) => r.commit === e.commit)).size).toBe(2);
    }
  }, 120_000);

  it('a keep makes the candidates in flight stale: a clean change is carried onto the new best and measured again, a conflicting one is refused with its path', async () => {
    const { repo, server } = await serve({ parallel: 4, gpu: { required: true, perRun: 1 }, decision: { rule: 'greedy' } });
    // Two parts of the score on lines far apart, so a change to one carries cleanly over a kept change to the other.
    repo.write('train.mjs', `const A = 0.5;\n// a line between\n// and another\nconst B = 0.5;\nawait new Promise((r) => setTimeout(r, 1500));\nconsole.log('score: ' + (A + B).toFixed(5));\n`);
    repo.commitAll('two parts');
    const started = await server.ok('start_session', { tag: 'stale' });
    await server.finish(started.baseline.id);
    const submit = async (a: string, b: string, description: string) => {
      repo.write('train.mjs', repo.read('train.mjs').replace(/const A = [^;]+;/, `const A = ${a};`).replace(/const B = [^;]+;/, `const B = ${b};`));
      return (await server.ok('run_experiment', { description, wait_seconds: 0 })).experiment.id as number;
    };
    const first = await submit('0.3', '0.5', 'lower A');
    const clash = await submit('0.2', '0.5', 'lower A more'); // the same line as the first
    const clean = await submit('0.5', '0.3', 'lower B'); // another line
    const running = (await server.ok('status')).parallel.inFlight.map((e: { id: number }) => e.id);
    expect(running).toEqual([first, clash, clean]);
    for (const id of [first, clash, clean]) expect((await server.finish(id)).state).toBe('measured');
    await server.ok('keep', { id: first });

    const conflict = await server.call('keep', { id: clash });
    expect(conflict.isError).toBe(true);
    expect(conflict.content[0]!.text).toContain('[stale_candidate]');
    expect(conflict.content[0]!.text).toContain('conflicts with the new best in train.mjs');

    const carried = await server.call('keep', { id: clean });
    expect(carried.isError).toBe(true);
    const again = (JSON.parse(/^Details: (.*)$/m.exec(carried.content[0]!.text)![1]!) as { remeasuredAs: number }).remeasuredAs;
    const remeasured = await server.finish(again);
    expect(remeasured.metric).toBeCloseTo(0.6); // both changes, measured together on the new best
    await server.ok('keep', { id: again });
    const best = repo.git('show', 'ratchet/stale:train.mjs');
    expect(best).toContain('const A = 0.3;');
    expect(best).toContain('const B = 0.3;');
    const list = (await server.ok('list_experiments', { limit: 10 })).experiments as { id: number; verdict: string | null }[];
    expect(list.find((e) => e.id === clash)?.verdict).toBe('reverted'); // kept as evidence, decided
  }, 120_000);

  it('two repos\' servers on one machine never run on one device at once: the second\'s run waits, queued, for the first\'s to end', async () => {
    const trace = mkdtempSync(join(tmpdir(), 'ratchet-two-repos-'));
    cleanups.push(() => rmSync(trace, { recursive: true, force: true }));
    // Each run notes its repo, its device and when it ran; both servers see only GPU 0, the same device.
    const train = (name: string) => `import { appendFileSync } from 'node:fs';
const start = Date.now();
await new Promise((r) => setTimeout(r, 2500));
appendFileSync(${JSON.stringify(join(trace, 'runs'))}, JSON.stringify({ repo: '${name}', cuda: process.env.CUDA_VISIBLE_DEVICES, start, end: Date.now() }) + '\\n');
console.log('score: 1.0');
`;
    const config = { parallel: 2, gpu: { required: true, perRun: 1 }, decision: { rule: 'greedy' } };
    const a = await serve(config, { train: train('a'), visible: '0' });
    const b = await serve(config, { train: train('b'), visible: '0' });
    const first = (await a.server.ok('start_session', { tag: 'a' })).baseline;
    expect(first.state).toBe('running');
    const second = (await b.server.ok('start_session', { tag: 'b' })).baseline;
    expect(second.state).toBe('queued');
    expect((await b.server.ok('status')).parallel.queued).toEqual([second.id]);
    expect((await a.server.finish(first.id)).state).toBe('measured');
    expect((await b.server.finish(second.id)).state).toBe('measured');
    const runs = readFileSync(join(trace, 'runs'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { repo: string; cuda: string; start: number; end: number });
    expect(runs.map((r) => [r.repo, r.cuda]).sort()).toEqual([['a', '0'], ['b', '0']]);
    const [x, y] = runs;
    expect(x!.end <= y!.start || y!.end <= x!.start).toBe(true);
  }, 120_000);
});
