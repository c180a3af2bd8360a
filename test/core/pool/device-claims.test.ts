// Machine-wide device claims in one process: one repo at a time per device, given back at once, asked about without taking.
import { describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { claimDevice, claimedBy, deviceHolder, releaseDevice } from '../../../src/core/pool/device-claims.js';

const device = () => `GPU-${randomUUID()}`;

describe('device claims', () => {
  it('hold a device for one repo: again for it, never for another, and say who holds it', async () => {
    const gpu = device();
    expect(await deviceHolder(gpu)).toBeNull();
    expect(await claimDevice(gpu, '/repos/a')).toBe(true);
    expect(await claimDevice(gpu, '/repos/a')).toBe(true);
    expect(await claimDevice(gpu, '/repos/b')).toBe(false);
    expect(await deviceHolder(gpu)).toMatchObject({ pid: process.pid, repo: '/repos/a' });
    releaseDevice(gpu, '/repos/b'); // not b's to give back
    expect(await claimDevice(gpu, '/repos/b')).toBe(false);
    releaseDevice(gpu, '/repos/a');
    // Given back, the device is another repo's at once, even in the same tick.
    expect(await claimDevice(gpu, '/repos/b')).toBe(true);
    expect(claimedBy('/repos/b')).toContain(gpu);
    expect(claimedBy('/repos/a')).not.toContain(gpu);
    releaseDevice(gpu, '/repos/b');
  });

  it('serve two claims made at once one after the other: one repo wins, and the same repo twice wins twice', async () => {
    const contested = device();
    const results = await Promise.all([claimDevice(contested, '/repos/a'), claimDevice(contested, '/repos/b')]);
    expect(results).toEqual([true, false]);
    const shared = device();
    expect(await Promise.all([claimDevice(shared, '/repos/a'), claimDevice(shared, '/repos/a')])).toEqual([true, true]);
    for (const gpu of [contested, shared]) releaseDevice(gpu, '/repos/a');
  });
});
