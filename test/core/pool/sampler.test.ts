// GPU sampling against the fake nvidia-smi: compute apps by the run's pids, GPU utilization, and a GPU lost mid-run.
import { afterEach, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { listGpus, parseGpuCsv } from '../../../src/core/gpu.js';
import { runNvidiaSmi } from '../../../src/core/pool/nvidia-smi.js';
import { belongsToRun, faultOf, figuresOf, FAULT_STRIKES, GpuSampler, listComputeApps, parseComputeApps, type GpuFigures } from '../../../src/core/pool/sampler.js';

const FIXTURES = fileURLToPath(new URL('../../fixtures/nvidia-smi/', import.meta.url));
const FAKE = join(FIXTURES, 'nvidia-smi');
const env = (fixture: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv => ({
  ...process.env,
  PATH: `${FIXTURES}${delimiter}${process.env.PATH ?? ''}`,
  FAKE_NVIDIA_SMI_FIXTURE: fixture,
  ...extra,
});
const GPU7 = 'GPU-27f5b8c3-6a0e-4d41-8c9b-e1d3a7f4025c';
const GPU0 = 'GPU-3f8a2c71-9b4e-4d15-a6f0-2e7c1b9d8a54';
const MIG = 'MIG-e13a7d58-2f6c-5b94-8d0e-6a4f1c3b7d29';

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

describe('compute apps', () => {
  it('reads "pid, MiB" rows, an unknown figure as null, and nothing as no process', async () => {
    expect(parseComputeApps('48211, 72306\n51907, [N/A]\n\n')).toEqual([
      { pid: 48211, usedMiB: 72306 },
      { pid: 51907, usedMiB: null },
    ]);
    expect(await listComputeApps({ env: env('h100x8') })).toEqual([
      { pid: 48211, usedMiB: 72306 },
      { pid: 51907, usedMiB: 41014 },
      { pid: 51988, usedMiB: 79866 },
    ]);
    expect(await listComputeApps({ env: env('h100x1') })).toEqual([]);
    expect(await listComputeApps({ env: env('driver-failure') })).toBeNull();
  });
});

describe('faults', () => {
  it('says nothing while the run\'s GPUs are listed and readable', async () => {
    expect(faultOf(await listGpus({ env: env('h100x8') }), [{ uuid: GPU7, index: 7 }])).toBeNull();
  });

  it('names a GPU that fell off the bus, with what nvidia-smi said and what to do', async () => {
    const fault = faultOf(await listGpus({ env: env('lost-gpu') }), [{ uuid: GPU0, index: 0 }, { uuid: GPU7, index: 7 }]);
    expect(fault).toContain(`GPU 7 (${GPU7}) disappeared from nvidia-smi's listing during the run`);
    expect(fault).toContain('Unable to determine the device handle for GPU0000:CB:00.0: Unknown Error');
    expect(fault).toContain('dmesg | grep -i xid');
  });

  it('names a GPU that nvidia-smi reads as failing, and one it cannot list at all', async () => {
    const reset = parseGpuCsv(`7, ${GPU7}, NVIDIA H100 80GB HBM3, [GPU requires reset], [GPU requires reset], [GPU requires reset]\n`);
    expect(faultOf({ gpus: reset.gpus, error: null }, [{ uuid: GPU7, index: 7 }])).toContain('reads it as [GPU requires reset]');
    const down = await listGpus({ env: env('driver-failure') });
    expect(faultOf(down, [{ uuid: GPU7, index: 7 }])).toContain("couldn't communicate with the NVIDIA driver");
  });

  it('checks a MIG instance through nvidia-smi -L and its GPU\'s row', async () => {
    const listing = await listGpus({ env: env('a100-mig') });
    expect(faultOf(listing, [{ uuid: MIG, index: 1 }], await runNvidiaSmi(['-L'], { env: env('a100-mig') }))).toBeNull();
    const gone = faultOf(listing, [{ uuid: MIG, index: 1 }], await runNvidiaSmi(['-L'], { env: env('h100x8') }));
    expect(gone).toContain(`MIG instance ${MIG} on GPU 1 disappeared`);
  });
});

describe('figures', () => {
  it('sums the run\'s processes\' memory, averages its GPUs\' utilization, and sums their memory in use', async () => {
    const { gpus } = await listGpus({ env: env('h100x8') });
    const apps = [
      { pid: 10, usedMiB: 30_000 },
      { pid: 11, usedMiB: 12_000 },
      { pid: 12, usedMiB: 70_000 },
      { pid: 13, usedMiB: null },
    ];
    const mine = new Set([10, 11, 13]);
    const figures = figuresOf(gpus, apps, [{ uuid: 'GPU-b7d41e09-5c2a-4f83-9e6d-81a0c3f7b2e6', index: 1 }, { uuid: GPU7, index: 7 }], (pid) => mine.has(pid));
    expect(figures).toEqual({ utilizationPercent: 50, memoryMib: 42_000, deviceMemoryMib: 72_318, processes: 3 });
    expect(figuresOf(gpus, null, [{ uuid: GPU7, index: 7 }], () => true)).toEqual({ utilizationPercent: 2, memoryMib: null, deviceMemoryMib: 3, processes: 0 });
    // A MIG instance has no figures of its own in the GPU listing.
    expect(figuresOf(gpus, [], [{ uuid: MIG, index: 1 }], () => true)).toEqual({ utilizationPercent: null, memoryMib: null, deviceMemoryMib: null, processes: 0 });
  });

  it('counts a process as the run\'s when it or an ancestor carries the run token', async () => {
    // The child carries the token; its own child starts with an empty environment, as a tool that scrubs it would.
    const child = spawn('sh', ['-c', 'env -i sleep 30 & echo $!; wait'], { env: { ...process.env, RATCHET_RUN_TOKEN: 'tok-1' }, stdio: ['ignore', 'pipe', 'ignore'] });
    cleanups.push(() => child.kill('SIGKILL'));
    const grandchild = Number(await new Promise<string>((resolve) => child.stdout!.once('data', (d: Buffer) => resolve(d.toString().trim()))));
    cleanups.push(() => {
      try {
        process.kill(grandchild, 'SIGKILL');
      } catch {
        // already gone
      }
    });
    expect(belongsToRun(child.pid!, 'tok-1')).toBe(true);
    expect(belongsToRun(grandchild, 'tok-1')).toBe(true);
    expect(belongsToRun(grandchild, 'tok-2')).toBe(false);
    expect(belongsToRun(process.pid, 'tok-1')).toBe(false);
  });
});

describe('GpuSampler', () => {
  it('records what each look saw, and reports a lost GPU only after it failed twice in a row', async () => {
    const state = mkdtempSync(join(tmpdir(), 'ratchet-smi-state-'));
    cleanups.push(() => rmSync(state, { recursive: true, force: true }));
    const child = spawn('sleep', ['30'], { env: { ...process.env, RATCHET_RUN_TOKEN: 'tok-s' }, stdio: 'ignore' });
    cleanups.push(() => child.kill('SIGKILL'));
    writeFileSync(join(state, 'apps'), `48211, 72306\n${child.pid}, 2048\n`);
    const recorded: GpuFigures[] = [];
    const faults: string[] = [];
    const sampler = new GpuSampler({
      nvidiaSmi: FAKE,
      env: env('h100x8', { FAKE_NVIDIA_SMI_STATE: state }),
      gpus: [{ uuid: GPU7, index: 7 }],
      token: 'tok-s',
      intervalMs: 60_000,
      record: (f) => recorded.push(f),
      onFault: (reason) => faults.push(reason),
    });
    await sampler.sample();
    expect(recorded).toEqual([{ utilizationPercent: 2, memoryMib: 2048, deviceMemoryMib: 3, processes: 1 }]);

    writeFileSync(join(state, 'fixture'), 'lost-gpu');
    await sampler.sample();
    expect(faults).toEqual([]);
    for (let i = 1; i < FAULT_STRIKES; i++) await sampler.sample();
    expect(faults).toHaveLength(1);
    expect(faults[0]).toContain('disappeared');
    await sampler.sample();
    expect(faults).toHaveLength(1);
    expect(recorded).toHaveLength(1);
    await sampler.stop();
    // Each look asked for the GPU listing and the compute apps, nothing else.
    const queries = readFileSync(join(state, 'queries'), 'utf8').trim().split('\n');
    expect(new Set(queries)).toEqual(new Set(['--query-gpu=index,uuid,name,memory.total,memory.used,utilization.gpu --format=csv,noheader,nounits', '--query-compute-apps=pid,used_memory --format=csv,noheader,nounits']));
  });

  it('a failed look between good ones does not count against the GPU', async () => {
    const state = mkdtempSync(join(tmpdir(), 'ratchet-smi-state-'));
    cleanups.push(() => rmSync(state, { recursive: true, force: true }));
    const faults: string[] = [];
    const recorded: GpuFigures[] = [];
    const sampler = new GpuSampler({
      nvidiaSmi: FAKE,
      env: env('h100x8', { FAKE_NVIDIA_SMI_STATE: state }),
      gpus: [{ uuid: GPU7, index: 7 }],
      token: 'tok-none',
      intervalMs: 60_000,
      record: (f) => recorded.push(f),
      onFault: (reason) => faults.push(reason),
    });
    for (const fixture of ['lost-gpu', 'h100x8', 'lost-gpu', 'h100x8']) {
      writeFileSync(join(state, 'fixture'), fixture);
      await sampler.sample();
    }
    expect(faults).toEqual([]);
    expect(recorded).toHaveLength(2);
    await sampler.stop();
  });
});
