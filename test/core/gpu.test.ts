// GPU discovery against a fake nvidia-smi replaying recorded output formats, plus GPU choice.
import { beforeAll, describe, expect, it } from 'vitest';
import { accessSync, chmodSync, constants, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chooseGpus, cudaVisibleDevices, gpuEnv, gpuEnvFor, listGpus, parseGpuCsv, rankGpus, type Gpu } from '../../src/core/gpu.js';

const FIXTURES = fileURLToPath(new URL('../fixtures/nvidia-smi/', import.meta.url));
const FAKE = join(FIXTURES, 'nvidia-smi');

function fakeEnv(fixture: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { ...process.env, PATH: `${FIXTURES}${delimiter}${process.env.PATH ?? ''}`, FAKE_NVIDIA_SMI_FIXTURE: fixture, ...extra };
}

function gpu(index: number, used: number, util: number | null, total = 81559): Gpu {
  return { index, uuid: `GPU-${index}`, name: 'NVIDIA H100 80GB HBM3', memoryTotalMiB: total, memoryUsedMiB: used, memoryKnown: true, utilizationPercent: util };
}

/** Running, not merely a zombie waiting for a PID 1 that may never reap it. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  const stat = existsSync(`/proc/${pid}/stat`) ? readFileSync(`/proc/${pid}/stat`, 'utf8') : '';
  return !/\) Z /.test(stat);
}

async function eventuallyDead(pids: number[], withinMs: number): Promise<number[]> {
  const deadline = Date.now() + withinMs;
  while (pids.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  return pids.filter(alive);
}

beforeAll(() => {
  // A checkout that dropped the executable bit would otherwise fail every test with EACCES.
  try {
    accessSync(FAKE, constants.X_OK);
  } catch {
    chmodSync(FAKE, 0o755);
  }
});

describe('listGpus', () => {
  it('reads an 8x H100 host, found on PATH', async () => {
    const { gpus, error } = await listGpus({ env: fakeEnv('h100x8') });
    expect(error).toBeNull();
    expect(gpus).toHaveLength(8);
    expect(gpus[0]).toEqual({
      index: 0,
      uuid: 'GPU-3f8a2c71-9b4e-4d15-a6f0-2e7c1b9d8a54',
      name: 'NVIDIA H100 80GB HBM3',
      memoryTotalMiB: 81559,
      memoryUsedMiB: 0,
      memoryKnown: true,
      utilizationPercent: 0,
    });
    expect(gpus.map((g) => g.index)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(gpus[6]).toMatchObject({ memoryUsedMiB: 79875, utilizationPercent: 100 });
  });

  it('reads A100 hosts and an explicit nvidia-smi path', async () => {
    const { gpus, error } = await listGpus({ nvidiaSmi: FAKE, env: { ...process.env, FAKE_NVIDIA_SMI_FIXTURE: 'a100x4' } });
    expect(error).toBeNull();
    expect(gpus.map((g) => [g.name, g.memoryTotalMiB, g.memoryUsedMiB, g.utilizationPercent])).toEqual([
      ['NVIDIA A100-SXM4-80GB', 81920, 52481, 100],
      ['NVIDIA A100-SXM4-80GB', 81920, 3, 0],
      ['NVIDIA A100-SXM4-80GB', 81920, 18204, 0],
      ['NVIDIA A100-SXM4-80GB', 81920, 3, 0],
    ]);
  });

  it('turns [N/A] and [Not Supported] fields into unknowns instead of dropping the GPU', async () => {
    const mig = await listGpus({ env: fakeEnv('a100-mig') });
    expect(mig.error).toBeNull();
    expect(mig.gpus[1]).toMatchObject({ index: 1, memoryTotalMiB: 40960, memoryUsedMiB: 87, utilizationPercent: null });

    const gb10 = await listGpus({ env: fakeEnv('gb10') });
    expect(gb10.error).toBeNull();
    expect(gb10.gpus).toEqual([
      { index: 0, uuid: 'GPU-7b2e9a41-c6d8-4f03-b5e1-9a0f4c2d8e76', name: 'NVIDIA GB10', memoryTotalMiB: 0, memoryUsedMiB: 0, memoryKnown: false, utilizationPercent: 0 },
    ]);

    const legacy = await listGpus({ env: fakeEnv('geforce-legacy') });
    expect(legacy.gpus[0]).toMatchObject({ name: 'GeForce GTX 750 Ti', memoryKnown: true, utilizationPercent: null });
  });

  it('reports nvidia-smi missing from PATH', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'ratchet-nopath-'));
    try {
      const r = await listGpus({ env: { ...process.env, PATH: empty } });
      expect(r.gpus).toEqual([]);
      expect(r.error).toMatch(/nvidia-smi not found/);
      const explicit = await listGpus({ nvidiaSmi: join(empty, 'nvidia-smi') });
      expect(explicit.error).toMatch(/not found/);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });

  it('reports the driver failure message and exit code 9', async () => {
    const r = await listGpus({ env: fakeEnv('driver-failure') });
    expect(r.gpus).toEqual([]);
    expect(r.error).toContain('exited with code 9');
    expect(r.error).toContain("couldn't communicate with the NVIDIA driver");
  });

  it('reports "No devices were found" and a driver/library mismatch', async () => {
    const none = await listGpus({ env: fakeEnv('no-devices') });
    expect(none).toEqual({ gpus: [], error: 'nvidia-smi exited with code 6: No devices were found' });
    const mismatch = await listGpus({ env: fakeEnv('nvml-mismatch') });
    expect(mismatch.gpus).toEqual([]);
    expect(mismatch.error).toContain('Driver/library version mismatch');
  });

  it('keeps the healthy GPUs when one has fallen off the bus, and still reports the error', async () => {
    const r = await listGpus({ env: fakeEnv('lost-gpu') });
    expect(r.gpus.map((g) => g.index)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(r.error).toContain('Unable to determine the device handle');
  });

  it('keeps GPU rows apart from lines that are not GPUs', async () => {
    const r = await listGpus({ env: fakeEnv('h100x1'), nvidiaSmi: 'nvidia-smi' });
    expect(r.error).toBeNull();
    expect(parseGpuCsv('Failed to initialize NVML: Unknown Error\n0, GPU-a, NVIDIA H100 80GB HBM3, 81559, 0, 0\n')).toMatchObject({
      gpus: [{ index: 0 }],
      unreadable: ['Failed to initialize NVML: Unknown Error'],
    });
  });

  it('reports any other non-zero exit with no rows as an error', async () => {
    const r = await listGpus({ env: fakeEnv('does-not-exist') });
    expect(r.gpus).toEqual([]);
    expect(r.error).toMatch(/exited with code 99/);
  });

  it('gives up on a hung nvidia-smi at the deadline and kills what it started', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ratchet-hang-'));
    const pidfile = join(dir, 'pids');
    try {
      const started = Date.now();
      const r = await listGpus({ env: fakeEnv('hang', { FAKE_NVIDIA_SMI_PIDFILE: pidfile, FAKE_NVIDIA_SMI_HANG_SECONDS: '20' }), timeoutMs: 500 });
      const elapsed = Date.now() - started;
      expect(r).toEqual({ gpus: [], error: 'nvidia-smi did not answer within 500 ms; the NVIDIA driver may be hung.' });
      expect(elapsed).toBeGreaterThanOrEqual(450);
      expect(elapsed).toBeLessThan(5000);
      const pids = readFileSync(pidfile, 'utf8').trim().split(' ').map(Number);
      expect(pids).toHaveLength(2);
      expect(await eventuallyDead(pids, 2000)).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('chooseGpus', () => {
  it('prefers idle GPUs with the most free memory, skipping busy ones', async () => {
    const { gpus } = await listGpus({ env: fakeEnv('h100x8') });
    // Idle: 0 (0 MiB), 5 (0 MiB), 3 (1 MiB), 7 (3 MiB, 2%), 2 (4 MiB); loaded: 4 (67%), 1 (98%), 6 (100%).
    expect(chooseGpus(gpus, 1, new Set())).toEqual([0]);
    expect(chooseGpus(gpus, 2, new Set())).toEqual([0, 5]);
    expect(chooseGpus(gpus, 2, new Set([0]))).toEqual([3, 5]);
    expect(chooseGpus(gpus, 4, new Set([0, 5]))).toEqual([2, 3, 4, 7]);
    expect(chooseGpus(gpus, 8, new Set())).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
  });

  it('returns null when too few GPUs are free', () => {
    const gpus = [gpu(0, 0, 0), gpu(1, 0, 0)];
    expect(chooseGpus(gpus, 2, new Set([1]))).toBeNull();
    expect(chooseGpus(gpus, 3, new Set())).toBeNull();
    expect(chooseGpus([], 1, new Set())).toBeNull();
  });

  it('ranks unknown utilization after idle and before loaded, unknown memory last among equals', () => {
    const gpus = [gpu(0, 100, 90), gpu(1, 50_000, null), gpu(2, 70_000, 0)];
    expect(chooseGpus(gpus, 1, new Set())).toEqual([2]);
    expect(chooseGpus(gpus, 1, new Set([2]))).toEqual([1]);
    const unknownMemory: Gpu = { ...gpu(3, 0, 0), memoryTotalMiB: 0, memoryUsedMiB: 0, memoryKnown: false };
    expect(chooseGpus([unknownMemory, gpu(4, 80_000, 0)], 1, new Set())).toEqual([4]);
    expect(chooseGpus([unknownMemory], 1, new Set())).toEqual([3]);
  });

  it('rejects a non-positive or fractional count', () => {
    expect(() => chooseGpus([gpu(0, 0, 0)], 0, new Set())).toThrow(/positive integer/);
    expect(() => chooseGpus([gpu(0, 0, 0)], 1.5, new Set())).toThrow(/positive integer/);
  });
});

describe('cudaVisibleDevices / gpuEnv', () => {
  it('joins indices for CUDA_VISIBLE_DEVICES and pins PCI bus order', () => {
    expect(cudaVisibleDevices([2, 5])).toBe('2,5');
    expect(cudaVisibleDevices([0])).toBe('0');
    expect(cudaVisibleDevices([])).toBe('');
    expect(gpuEnv([1, 3])).toEqual({ CUDA_VISIBLE_DEVICES: '1,3', CUDA_DEVICE_ORDER: 'PCI_BUS_ID' });
    expect(() => cudaVisibleDevices([-1])).toThrow(/Not a GPU index/);
    expect(() => cudaVisibleDevices([1.5])).toThrow(/Not a GPU index/);
    expect(() => cudaVisibleDevices(['GPU-1,2'])).toThrow(/Not a GPU index or UUID/);
  });

  it('names whole GPUs by index and switches to UUIDs as soon as a MIG instance is leased', () => {
    expect(gpuEnvFor({ indices: [2, 5], model: null })).toEqual({ CUDA_VISIBLE_DEVICES: '2,5', CUDA_DEVICE_ORDER: 'PCI_BUS_ID' });
    expect(gpuEnvFor({ indices: [2, 5], model: null, uuids: ['GPU-aa', 'GPU-bb'] }).CUDA_VISIBLE_DEVICES).toBe('2,5');
    expect(gpuEnvFor({ indices: [1], model: null, uuids: ['MIG-e13a7d58-2f6c-5b94-8d0e-6a4f1c3b7d29'] }).CUDA_VISIBLE_DEVICES).toBe('MIG-e13a7d58-2f6c-5b94-8d0e-6a4f1c3b7d29');
  });
});

describe('failing devices and ranking', () => {
  it('marks a row whose readings say the device itself fails, and not one that only lacks a figure', () => {
    const { gpus } = parseGpuCsv(
      '0, GPU-a, NVIDIA H100 80GB HBM3, [GPU requires reset], [GPU requires reset], [GPU requires reset]\n1, GPU-b, NVIDIA H100 80GB HBM3, 81559, [Unknown Error], 0\n2, GPU-c, NVIDIA A100-SXM4-40GB, 40960, 87, [N/A]\n',
    );
    expect(gpus.map((g) => g.fault ?? null)).toEqual(['[GPU requires reset]', '[Unknown Error]', null]);
  });

  it('ranks idle before unknown before loaded, then by free memory, keeping listing order among equals', () => {
    const same = (index: number, uuid: string): Gpu => ({ ...gpu(index, 0, null), uuid, memoryKnown: false, memoryTotalMiB: 0 });
    expect(rankGpus([gpu(0, 100, 90), gpu(1, 50_000, null), gpu(2, 70_000, 0)]).map((g) => g.index)).toEqual([2, 1, 0]);
    expect(rankGpus([same(1, 'MIG-b'), same(1, 'MIG-a'), same(0, 'MIG-c')]).map((g) => g.uuid)).toEqual(['MIG-c', 'MIG-b', 'MIG-a']);
  });
});
