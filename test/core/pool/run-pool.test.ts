// The pool through the loop: real repos, ledgers and supervised runs, GPUs from the fake nvidia-smi replaying recorded formats.
import { afterEach, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { ResearchLoop } from '../../../src/core/loop.js';
import { Leases } from '../../../src/core/pool/leases.js';
import { silentLogger } from '../../../src/log.js';
import { baseConfig, makeRepo, setConstant, TRAIN } from '../../helpers/repo.js';
import { cleanedUpAfterEach, finished, rejection, startWithBaseline } from '../../helpers/loop.js';

const { repos, loops } = cleanedUpAfterEach();
const FAKE_NVIDIA_SMI = fileURLToPath(new URL('../../fixtures/nvidia-smi/nvidia-smi', import.meta.url));
const GPU7 = 'GPU-27f5b8c3-6a0e-4d41-8c9b-e1d3a7f4025c';
const MIG = 'MIG-e13a7d58-2f6c-5b94-8d0e-6a4f1c3b7d29';
/** The built device claims, for a process that stands for another repo's server. */
const CLAIMS = fileURLToPath(new URL('../../../dist/core/pool/device-claims.js', import.meta.url));

/** A run that says which devices it sees, lists itself as a GPU process, and ends once the sampler has looked at it. */
const GPU_TRAIN = `// synthetic GPU run
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
const SCORE = 1.0;
const MODE = 'normal';
const state = process.env.FAKE_NVIDIA_SMI_STATE;
console.log('cuda: ' + process.env.CUDA_VISIBLE_DEVICES + ' order ' + process.env.CUDA_DEVICE_ORDER);
if (MODE === 'lose') {
  // The GPU falls off the bus under the run, which hangs as CUDA programs do then.
  writeFileSync(state + '/fixture', 'lost-gpu');
  setInterval(() => {}, 1000);
  await new Promise(() => {});
}
const looks = () => (existsSync(state + '/queries') ? readFileSync(state + '/queries', 'utf8') : '').split('\\n').filter((l) => l.startsWith('--query-compute-apps')).length;
writeFileSync(state + '/apps', process.pid + ', 3000\\n');
const before = looks();
// Two looks after this one listed itself: the first of them has been recorded once the second starts.
while (looks() < before + 2) await new Promise((r) => setTimeout(r, 20));
console.log('score: ' + SCORE.toFixed(6));
`;

const saved = { ...process.env };
const stateDirs: string[] = [];
afterEach(() => {
  for (const key of ['FAKE_NVIDIA_SMI_FIXTURE', 'FAKE_NVIDIA_SMI_STATE', 'CUDA_VISIBLE_DEVICES']) {
    if (saved[key] === undefined) delete process.env[key];
    else process.env[key] = saved[key];
  }
  for (const dir of stateDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A repo whose runs lease from the fake's recording `fixture`; its state folder lets a run change what nvidia-smi says. */
function gpuSetup(fixture: string, gpu: Record<string, unknown>) {
  const state = mkdtempSync(join(tmpdir(), 'ratchet-smi-state-'));
  stateDirs.push(state);
  process.env.FAKE_NVIDIA_SMI_FIXTURE = fixture;
  process.env.FAKE_NVIDIA_SMI_STATE = state;
  const config = baseConfig({
    editable: ['train.mjs'],
    run: { command: 'node train.mjs', budgetSeconds: 20, graceSeconds: 1, env: { FAKE_NVIDIA_SMI_STATE: state } },
    metric: { name: 'score', direction: 'minimize' },
    gpu: { required: true, perRun: 1, ...gpu },
    // The run writes to the state folder, which a sandbox would hide.
    sandbox: 'off',
  });
  const repo = makeRepo({ 'train.mjs': GPU_TRAIN }, config);
  repos.push(repo);
  const loop = new ResearchLoop({ repo: repo.dir, logger: silentLogger(), nvidiaSmi: FAKE_NVIDIA_SMI, gpuSampleMs: 25 });
  loops.push(loop);
  return { repo, loop };
}

function cpuSetup() {
  const repo = makeRepo({ 'train.mjs': TRAIN, 'README.md': 'readme\n' }, baseConfig({ run: { command: 'node train.mjs', budgetSeconds: 1, graceSeconds: 1 } }));
  repos.push(repo);
  const loop = new ResearchLoop({ repo: repo.dir, logger: silentLogger() });
  loops.push(loop);
  return { repo, loop };
}

const live = (loop: ResearchLoop) => new Leases(loop.ledger.db).live().map((l) => [l.resource, l.experimentId]);

describe('GPU leases', () => {
  it('leases a device from gpu.pool for the run, shows it only that one, samples it, and gives it back', async () => {
    const { loop } = gpuSetup('h100x8', { pool: [7] });
    const { baseline: started } = await loop.startSession({ tag: 't1' });
    expect(live(loop)).toEqual([[`gpu:${GPU7}`, started.id]]);
    const baseline = await finished(loop, started.id);
    expect(baseline.state).toBe('measured');
    expect(live(loop)).toEqual([]);
    expect(baseline.gpus).toEqual([7]);
    expect((await loop.readLog({ id: baseline.id, grep: '^cuda:' })).lines[0]?.text).toBe('cuda: 7 order PCI_BUS_ID');
    expect(loop.ledger.experiment(baseline.id)?.gpus).toMatchObject({ indices: [7], uuids: [GPU7], model: 'NVIDIA H100 80GB HBM3' });

    // Peak VRAM of the run's own process and the GPU's mean utilization, in read_metric and results.tsv.
    const report = await loop.readMetric(baseline.id);
    expect(report.experiment.peakGpuMemoryMb).toBe(3000);
    expect(report.experiment.gpuUtilizationPercent).toBe(2);
    expect(report.experiment.gpuMemoryMethod).toMatch(/^nvidia-smi, the run's processes, \d+ sample\(s\)$/);
    expect(readFileSync(loop.resultsTsvPath, 'utf8').split('\n')[1]?.split('\t')[2]).toBe('2.9');
  });

  it('ends a run whose GPU disappears mid-run as crashed, saying so, and gives the GPU back', async () => {
    const { repo, loop } = gpuSetup('h100x8', { pool: [7] });
    await startWithBaseline(loop);
    setConstant(repo, 'MODE', "'lose'");
    const e = await finished(loop, (await loop.runExperiment({ description: 'GPU lost under it' })).id);
    expect(e.state).toBe('crashed');
    expect(e.reason).toContain(`GPU 7 (${GPU7}) disappeared from nvidia-smi's listing during the run`);
    expect(e.reason).toContain('Unable to determine the device handle');
    expect(live(loop)).toEqual([]);
  });

  it('refuses to start a run whose devices are all leased, and holds nothing for it', async () => {
    const { loop } = gpuSetup('h100x8', { pool: [7] });
    // Another holder (a run of another server on this machine) has GPU 7.
    new Leases(loop.ledger.db).acquire({ experimentId: null, resources: [`gpu:${GPU7}`], count: 1 });
    const { baseline: started } = await loop.startSession({ tag: 't1' });
    const baseline = await finished(loop, started.id);
    expect(baseline.state).toBe('crashed');
    expect(baseline.reason).toContain(`needs 1 GPU(s), but only 0 of the 1 in the pool are free: GPU 7 to a run (pid ${process.pid}`);
    expect(baseline.reason).toContain('Next: Wait for those experiments to end');
    expect(live(loop)).toEqual([[`gpu:${GPU7}`, null]]);
  });

  it('passes over a device another process has claimed machine-wide (another repo\'s server), says whose, and takes it once the kernel frees it', async () => {
    // A server of another repo, in another process, holds GPU 7: it shares no ledger with this one.
    const holder = spawn(process.execPath, ['--input-type=module', '-e', `import { claimDevice } from ${JSON.stringify(CLAIMS)}; if (await claimDevice(${JSON.stringify(GPU7)}, '/srv/other-repo')) console.log('held'); setInterval(() => {}, 1000);`], { stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise((r) => holder.once('exit', r));
    await new Promise<void>((resolve) => holder.stdout.on('data', (d: Buffer) => d.toString().includes('held') && resolve()));
    try {
      const { loop } = gpuSetup('h100x8', { pool: [7] });
      const { baseline: started } = await loop.startSession({ tag: 't1' });
      const baseline = await finished(loop, started.id);
      expect(baseline.state).toBe('crashed');
      expect(baseline.reason).toContain(`only 0 of the 1 in the pool are free: GPU 7 to another ratchet server (pid ${holder.pid}, repo /srv/other-repo)`);
      expect(baseline.reason).toContain('give each repo its own devices');
      expect(live(loop)).toEqual([]);
    } finally {
      holder.kill('SIGKILL');
      await exited;
    }
    // Its holder died: the kernel freed the claim, and the device serves this machine's next run.
    const after = gpuSetup('h100x8', { pool: [7] });
    expect((await startWithBaseline(after.loop)).state).toBe('measured');
  });

  it('holds a device for one repo while its run goes, even against another repo served by the same process, and lets go when the run ends', async () => {
    const first = gpuSetup('h100x8', { pool: [7] });
    // The first repo's run waits for a file, so it holds GPU 7 while the second repo tries it.
    const firstState = process.env.FAKE_NVIDIA_SMI_STATE!;
    const go = join(firstState, 'go');
    first.repo.write('train.mjs', `import { existsSync } from 'node:fs';\nwhile (!existsSync(${JSON.stringify(go)})) await new Promise((r) => setTimeout(r, 20));\nconsole.log('score: 1.0');\n`);
    first.repo.commitAll('wait for go');
    const { baseline: running } = await first.loop.startSession({ tag: 'a' });
    const second = gpuSetup('h100x8', { pool: [7] });
    const refused = await finished(second.loop, (await second.loop.startSession({ tag: 'b' })).baseline.id);
    expect(refused.state).toBe('crashed');
    expect(refused.reason).toContain(`GPU 7 to another ratchet server (pid ${process.pid}, repo `);
    writeFileSync(go, '');
    expect((await finished(first.loop, running.id)).state).toBe('measured');
    // The run ended: its claim went with its lease, so a third repo leases GPU 7 at once.
    const third = gpuSetup('h100x8', { pool: [7] });
    expect((await startWithBaseline(third.loop)).state).toBe('measured');
  });

  it('a restarted server that follows a run whose lease is already gone holds no claim on its device once the run is recorded', async () => {
    const first = gpuSetup('h100x8', { pool: [7] });
    const go = join(process.env.FAKE_NVIDIA_SMI_STATE!, 'go');
    first.repo.write('train.mjs', `import { existsSync } from 'node:fs';\nwhile (!existsSync(${JSON.stringify(go)})) await new Promise((r) => setTimeout(r, 20));\nconsole.log('score: 1.0');\n`);
    first.repo.commitAll('wait for go');
    const { baseline } = await first.loop.startSession({ tag: 'a' });
    first.loop.close(); // the server goes; its run goes on under its supervisor
    writeFileSync(go, '');
    // The lease is reclaimed meanwhile (as another server does once the run has ended): the next server finds none.
    const db = new Database(join(first.repo.dir, '.ratchet', 'ratchet.db'));
    new Leases(db).release(baseline.id, 'reclaimed by the test');
    db.close();
    const again = new ResearchLoop({ repo: first.repo.dir, logger: silentLogger(), nvidiaSmi: FAKE_NVIDIA_SMI, gpuSampleMs: 25 });
    loops.push(again);
    await again.claim();
    await again.recover();
    expect((await finished(again, baseline.id)).state).toBe('measured');
    // Nothing holds GPU 7 now: another repo's run takes it.
    const other = gpuSetup('h100x8', { pool: [7] });
    expect((await startWithBaseline(other.loop)).state).toBe('measured');
  });

  it('gives a run on a MIG instance that instance\'s UUID', async () => {
    const { loop } = gpuSetup('a100-mig', { pool: [MIG] });
    const baseline = await startWithBaseline(loop);
    expect(baseline.state).toBe('measured');
    expect((await loop.readLog({ id: baseline.id, grep: '^cuda:' })).lines[0]?.text).toBe(`cuda: ${MIG} order PCI_BUS_ID`);
    expect(loop.ledger.experiment(baseline.id)?.gpus).toMatchObject({ indices: [1], uuids: [MIG], model: 'NVIDIA A100-SXM4-40GB MIG 2g.10gb' });
    // A MIG instance reports no utilization of its own; its process's memory is still the run's peak.
    expect((await loop.readMetric(baseline.id)).experiment).toMatchObject({ peakGpuMemoryMb: 3000, gpuUtilizationPercent: null });
  });

  it('leases only what the server\'s CUDA_VISIBLE_DEVICES leaves, and refuses a session when that is too little', async () => {
    process.env.CUDA_VISIBLE_DEVICES = '5';
    const { loop } = gpuSetup('h100x8', {});
    const baseline = await startWithBaseline(loop);
    expect(baseline.gpus).toEqual([5]);

    process.env.CUDA_VISIBLE_DEVICES = '5';
    const two = gpuSetup('h100x8', { perRun: 2 });
    const err = await rejection(two.loop.startSession({ tag: 't2' }));
    expect(err.code).toBe('gpu_unavailable');
    expect(err.message).toContain('leaves 1 device(s) in the pool after CUDA_VISIBLE_DEVICES=5 (set for the server) narrowed the 8 it lists');
  });
});

describe('CPU slots', () => {
  it('holds a slot while a run goes and gives it back on every outcome: measured, crashed, timed out, cancelled', async () => {
    const { repo, loop } = cpuSetup();
    const { baseline } = await loop.startSession({ tag: 't1' });
    expect(live(loop)).toEqual([['cpu:0', baseline.id]]);
    expect((await finished(loop, baseline.id)).state).toBe('measured');
    expect(live(loop)).toEqual([]);

    setConstant(repo, 'MODE', "'crash'");
    expect((await finished(loop, (await loop.runExperiment({ description: 'crash' })).id)).state).toBe('crashed');
    expect(live(loop)).toEqual([]);

    setConstant(repo, 'MODE', "'normal'");
    setConstant(repo, 'SLEEP_MS', '60000');
    expect((await finished(loop, (await loop.runExperiment({ description: 'slow' })).id)).state).toBe('timed_out');
    expect(live(loop)).toEqual([]);

    setConstant(repo, 'SCORE', '0.5');
    const started = await loop.runExperiment({ description: 'to cancel' });
    expect(live(loop)).toEqual([['cpu:0', started.id]]);
    expect((await loop.cancelExperiment(started.id)).state).toBe('cancelled');
    expect(live(loop)).toEqual([]);
  });
});
