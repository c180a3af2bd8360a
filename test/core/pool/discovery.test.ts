// Discovery against the fake nvidia-smi (recorded formats): MIG instances by UUID, gpu.pool, CUDA_VISIBLE_DEVICES, device nodes.
import { describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { deviceNodes, discoverDevices, parseGpuList, parseVisibleDevices } from '../../../src/core/pool/discovery.js';

const FIXTURES = fileURLToPath(new URL('../../fixtures/nvidia-smi/', import.meta.url));
const env = (fixture: string): NodeJS.ProcessEnv => ({ ...process.env, PATH: `${FIXTURES}${delimiter}${process.env.PATH ?? ''}`, FAKE_NVIDIA_SMI_FIXTURE: fixture });

const H100 = {
  0: 'GPU-3f8a2c71-9b4e-4d15-a6f0-2e7c1b9d8a54',
  2: 'GPU-0e9c5a3b-d2f1-47a8-b5c4-6f1e8d2a9c07',
  5: 'GPU-6d2b9f40-e8c1-4a5d-9f37-0a4e1c7b6d92',
  7: 'GPU-27f5b8c3-6a0e-4d41-8c9b-e1d3a7f4025c',
};

describe('discoverDevices', () => {
  it('lists every whole GPU of a host without MIG', async () => {
    const found = await discoverDevices({ env: env('h100x8') });
    expect(found.error).toBeNull();
    expect(found.devices.map((d) => [d.index, d.kind, d.migDevice])).toEqual([0, 1, 2, 3, 4, 5, 6, 7].map((i) => [i, 'gpu', null]));
    expect(found.devices[0]).toMatchObject({ uuid: H100[0], gpuUuid: H100[0], name: 'NVIDIA H100 80GB HBM3', memoryUsedMiB: 0 });
    expect(found.narrowedBy).toEqual([]);
  });

  it('puts a MIG-enabled GPU\'s instances in the pool by their own UUIDs, instead of the GPU', async () => {
    const found = await discoverDevices({ env: env('a100-mig') });
    expect(found.devices.map((d) => [d.index, d.kind, d.uuid, d.name])).toEqual([
      [0, 'gpu', 'GPU-4e81b2d7-5f3a-4c90-a1e6-8b0d3f7c2a59', 'NVIDIA A100-SXM4-40GB'],
      [1, 'mig', 'MIG-5c9e2a17-8d3b-5f40-a6e1-0b7d4c2f9e83', 'NVIDIA A100-SXM4-40GB MIG 3g.20gb'],
      [1, 'mig', 'MIG-e13a7d58-2f6c-5b94-8d0e-6a4f1c3b7d29', 'NVIDIA A100-SXM4-40GB MIG 2g.10gb'],
      [1, 'mig', 'MIG-7f0b4e91-c5a2-5d38-9e7f-3d1a8b6c0f54', 'NVIDIA A100-SXM4-40GB MIG 1g.5gb'],
    ]);
    expect(found.devices[3]).toMatchObject({ gpuUuid: 'GPU-a93c6e05-1b4d-4f72-8e5a-0c7f2d9b1e38', migDevice: 2, memoryKnown: false, utilizationPercent: null });
  });

  it('narrows the pool to the server\'s CUDA_VISIBLE_DEVICES, by index or by UUID', async () => {
    const byIndex = await discoverDevices({ env: env('h100x8'), visible: '5,2' });
    expect(byIndex.devices.map((d) => d.index)).toEqual([2, 5]);
    expect(byIndex.narrowedBy).toEqual(['CUDA_VISIBLE_DEVICES=5,2 (set for the server)']);
    const byUuid = await discoverDevices({ env: env('h100x8'), visible: `${H100[7]},${H100[0].slice(0, 12)}` });
    expect(byUuid.devices.map((d) => d.uuid)).toEqual([H100[0], H100[7]]);
    // CUDA reads up to the first entry it cannot parse: "-1" and "" leave no device.
    expect((await discoverDevices({ env: env('h100x8'), visible: '3,-1,4' })).devices.map((d) => d.index)).toEqual([3]);
    expect((await discoverDevices({ env: env('h100x8'), visible: '' })).devices).toEqual([]);
  });

  it('narrows a MIG host by MIG UUID, or by its GPU\'s index', async () => {
    const one = await discoverDevices({ env: env('a100-mig'), visible: 'MIG-e13a7d58-2f6c-5b94-8d0e-6a4f1c3b7d29' });
    expect(one.devices.map((d) => d.uuid)).toEqual(['MIG-e13a7d58-2f6c-5b94-8d0e-6a4f1c3b7d29']);
    const gpu1 = await discoverDevices({ env: env('a100-mig'), pool: [1] });
    expect(gpu1.devices.map((d) => d.kind)).toEqual(['mig', 'mig', 'mig']);
    expect(gpu1.narrowedBy).toEqual(['gpu.pool [1]']);
  });

  it('applies gpu.pool and CUDA_VISIBLE_DEVICES together', async () => {
    const found = await discoverDevices({ env: env('h100x8'), visible: '0,2,5', pool: [5, H100[7], 2] });
    expect(found.devices.map((d) => d.index)).toEqual([2, 5]);
  });

  it('leases nothing on a GPU that nvidia-smi reads as needing a reset', async () => {
    const found = await discoverDevices({ env: env('h100x2-reset') });
    expect(found.devices.map((d) => d.index)).toEqual([0]);
    expect(found.narrowedBy).toEqual(['GPU 1 reading [GPU requires reset]']);
  });

  it('reports the driver failure and finds nothing', async () => {
    const found = await discoverDevices({ env: env('driver-failure') });
    expect(found.devices).toEqual([]);
    expect(found.error).toContain("couldn't communicate with the NVIDIA driver");
  });

  it('keeps the healthy GPUs of a host that lost one', async () => {
    const found = await discoverDevices({ env: env('lost-gpu') });
    expect(found.devices.map((d) => d.uuid)).not.toContain(H100[7]);
    expect(found.devices).toHaveLength(7);
    expect(found.error).toContain('Unable to determine the device handle');
  });
});

describe('parsers', () => {
  it('reads nvidia-smi -L in the current and the pre-R470 MIG forms', () => {
    const text = [
      'GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-aaaa)',
      '  MIG 1g.5gb      Device  0: (UUID: MIG-bbbb)',
      '  MIG 1g.5gb      Device  1: (UUID: MIG-cccc)',
      'GPU 1: A100-SXM4-40GB (UUID: GPU-dddd)',
      '  MIG 3g.20gb Device 0: (UUID: MIG-GPU-dddd/1/0)',
      'GPU 2: NVIDIA A100-SXM4-40GB (UUID: GPU-eeee)',
    ].join('\n');
    expect(Object.fromEntries(parseGpuList(text))).toEqual({
      'GPU-aaaa': [
        { profile: '1g.5gb', device: 0, uuid: 'MIG-bbbb' },
        { profile: '1g.5gb', device: 1, uuid: 'MIG-cccc' },
      ],
      'GPU-dddd': [{ profile: '3g.20gb', device: 0, uuid: 'MIG-GPU-dddd/1/0' }],
    });
  });

  it('reads CUDA_VISIBLE_DEVICES as CUDA does', () => {
    expect(parseVisibleDevices(undefined)).toBeNull();
    expect(parseVisibleDevices('')).toEqual([]);
    expect(parseVisibleDevices('0, 2')).toEqual([0, 2]);
    expect(parseVisibleDevices('GPU-abc,MIG-def,1')).toEqual(['GPU-abc', 'MIG-def', 1]);
    expect(parseVisibleDevices('1,nope,2')).toEqual([1]);
  });
});

describe('deviceNodes', () => {
  it('uses the driver\'s minor number for each GPU, which need not be its nvidia-smi index', () => {
    const proc = mkdtempSync(join(tmpdir(), 'ratchet-proc-'));
    try {
      // /proc/driver/nvidia/gpus/<bus id>/information, as the driver writes it (fields abridged).
      const info = (uuid: string, minor: number, bus: string) =>
        `Model: \t\t NVIDIA H100 80GB HBM3\nIRQ:   \t\t 0\nGPU UUID: \t ${uuid}\nVideo BIOS: \t 96.00.74.00.01\nBus Type: \t PCIe\nDMA Size: \t 52 bits\nDMA Mask: \t 0xfffffffffffff\nBus Location: \t ${bus}\nDevice Minor: \t ${minor}\nGPU Excluded:\t No\n`;
      for (const [bus, uuid, minor] of [['0000:18:00.0', H100[0], 3], ['0000:cb:00.0', H100[7], 0]] as const) {
        mkdirSync(join(proc, bus));
        writeFileSync(join(proc, bus, 'information'), info(uuid, minor, bus));
      }
      expect(deviceNodes([{ gpuUuid: H100[0], index: 0 }, { gpuUuid: H100[7], index: 7 }], proc)).toEqual(['/dev/nvidia3', '/dev/nvidia0']);
      // Two MIG instances of one GPU share its node; a GPU the driver does not list falls back to its index.
      expect(deviceNodes([{ gpuUuid: H100[0], index: 0 }, { gpuUuid: H100[0], index: 0 }, { gpuUuid: H100[5], index: 5 }], proc)).toEqual(['/dev/nvidia3', '/dev/nvidia5']);
      expect(deviceNodes([{ gpuUuid: H100[2], index: 2 }], join(proc, 'missing'))).toEqual(['/dev/nvidia2']);
    } finally {
      rmSync(proc, { recursive: true, force: true });
    }
  });
});
