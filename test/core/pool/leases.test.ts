// Leases over a real ledger file: allocation, release, reclaim after a holder is SIGKILLed, and a reused pid not trusted.
import { afterEach, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ledger } from '../../../src/core/ledger.js';
import { currentHolder, holderFor, holderState, type Holder } from '../../../src/core/pool/holder.js';
import { cpuResource, gpuResource, Leases } from '../../../src/core/pool/leases.js';

const HOLDER_SCRIPT = fileURLToPath(new URL('./lease-holder.ts', import.meta.url));
// tsx as a loader, not its CLI: the CLI runs the script in a child, and the process killed must be the holder itself.
const TSX_LOADER = new URL('../../../node_modules/tsx/dist/loader.mjs', import.meta.url).href;
const GPUS = ['GPU-3f8a2c71-9b4e-4d15-a6f0-2e7c1b9d8a54', 'GPU-b7d41e09-5c2a-4f83-9e6d-81a0c3f7b2e6'].map(gpuResource);

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0).reverse()) c();
});

function ledgerFile(): { path: string; ledger: Ledger } {
  const dir = mkdtempSync(join(tmpdir(), 'ratchet-leases-'));
  const path = join(dir, 'ratchet.db');
  const ledger = new Ledger(path);
  cleanups.push(() => {
    ledger.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { path, ledger };
}

function releasedWhy(ledger: Ledger, id: number): string | null {
  return (ledger.db.prepare('SELECT released_why FROM leases WHERE id = ?').get(id) as { released_why: string | null }).released_why;
}

/** Starts the holder process and resolves with what it says it holds, once it holds it. */
async function holderProcess(path: string, experiment: number, resources: string[]): Promise<{ child: ChildProcess; said: { held?: string[]; busy?: string[] } }> {
  const child = spawn(process.execPath, ['--import', TSX_LOADER, HOLDER_SCRIPT, path, String(experiment), ...resources], { stdio: ['pipe', 'pipe', 'inherit'] });
  cleanups.push(() => child.exitCode === null && child.signalCode === null && child.kill('SIGKILL'));
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`the holder exited (${code}) before taking a lease`)));
  });
  return { child, said: JSON.parse(line) as { held?: string[]; busy?: string[] } };
}

describe('acquire and release', () => {
  it('grants free resources in the order asked, refuses when too few are free, and releases by experiment', () => {
    const { ledger } = ledgerFile();
    const leases = new Leases(ledger.db);
    const a = leases.acquire({ experimentId: 1, resources: GPUS, count: 1 });
    expect(a.ok && a.leases.map((l) => l.resource)).toEqual([GPUS[0]]);
    const b = leases.acquire({ experimentId: 2, resources: GPUS, count: 1 });
    expect(b.ok && b.leases.map((l) => l.resource)).toEqual([GPUS[1]]);
    const c = leases.acquire({ experimentId: 3, resources: GPUS, count: 1 });
    expect(c.ok).toBe(false);
    expect(!c.ok && c.busy.map((l) => l.experimentId)).toEqual([1, 2]);
    expect(leases.release(1, 'experiment 1 ended measured')).toBe(1);
    expect(leases.release(1, 'again')).toBe(0);
    const d = leases.acquire({ experimentId: 3, resources: GPUS, count: 1 });
    expect(d.ok && d.leases.map((l) => l.resource)).toEqual([GPUS[0]]);
    expect(leases.live().map((l) => [l.resource, l.experimentId, l.holder.pid])).toEqual([
      [GPUS[1], 2, process.pid],
      [GPUS[0], 3, process.pid],
    ]);
  });

  it('gives an experiment that already holds leases the same ones back, taking nothing more', () => {
    const { ledger } = ledgerFile();
    const leases = new Leases(ledger.db);
    const first = leases.acquire({ experimentId: 7, resources: [cpuResource(0), cpuResource(1)], count: 1 });
    const again = leases.acquire({ experimentId: 7, resources: [cpuResource(0), cpuResource(1)], count: 1 });
    expect(first.ok && again.ok && again.leases.map((l) => l.id)).toEqual(first.ok ? first.leases.map((l) => l.id) : []);
    expect(leases.live()).toHaveLength(1);
  });

  it('never grants one resource twice, even to a writer that skips the checks', () => {
    const { ledger } = ledgerFile();
    new Leases(ledger.db).acquire({ experimentId: 1, resources: [cpuResource(0)], count: 1 });
    const insert = () => ledger.db.prepare("INSERT INTO leases (resource, holder_pid, holder_host, acquired_at) VALUES ('cpu:0', 1, 'h', 'now')").run();
    expect(insert).toThrow(/UNIQUE/);
  });

  it('reclaims a lease whose experiment has ended, and keeps a dead holder\'s lease while its run goes on', () => {
    const { ledger } = ledgerFile();
    const dead: Holder = { ...currentHolder(), pid: 2 ** 22 + 1, start: '1' };
    new Leases(ledger.db, { holder: dead }).acquire({ experimentId: 5, resources: [GPUS[0]!], count: 1 });
    new Leases(ledger.db).acquire({ experimentId: 6, resources: [GPUS[1]!], count: 1 });
    const running = new Leases(ledger.db, { inUse: (id) => id === 5, ended: (id) => id === 6 });
    const grant = running.acquire({ experimentId: 9, resources: GPUS, count: 1 });
    expect(grant.ok && grant.leases.map((l) => l.resource)).toEqual([GPUS[1]]);
    expect(grant.reclaimed.map((l) => l.experimentId)).toEqual([6]);
    expect(releasedWhy(ledger, grant.reclaimed[0]!.id)).toBe('reclaimed: experiment 6 has ended');
    expect(running.live().map((l) => l.experimentId)).toEqual([5, 9]);
  });
});

describe('holders', () => {
  it('trusts a live pid only with its own start time: a reused pid reads as dead', () => {
    const me = currentHolder();
    expect(holderState(me)).toBe('alive');
    expect(holderState({ ...me, start: `${me.start}0` })).toBe('dead');
    expect(holderState({ ...me, pid: 2 ** 22 + 1 })).toBe('dead');
    expect(holderState({ ...me, host: `${me.host}-elsewhere` })).toBe('unknown');
    expect(holderState({ ...me, pidns: 'pid:[1]' })).toBe('unknown');
    if (me.boot) expect(holderState({ ...me, boot: 'another-boot' })).toBe('dead');
  });

  it('reclaims the lease of a holder whose pid now names another process', () => {
    const { ledger } = ledgerFile();
    const sleeper = spawn('sleep', ['60'], { stdio: 'ignore' });
    cleanups.push(() => sleeper.kill('SIGKILL'));
    const real = holderFor(sleeper.pid!);
    // Same pid, another start time: the process that took the lease is gone and the kernel gave its pid away.
    new Leases(ledger.db, { holder: { ...real, start: String(Number(real.start) - 1) } }).acquire({ experimentId: 1, resources: [GPUS[0]!], count: 1 });
    new Leases(ledger.db, { holder: real }).acquire({ experimentId: 2, resources: [GPUS[1]!], count: 1 });
    const grant = new Leases(ledger.db).acquire({ experimentId: 3, resources: GPUS, count: 1 });
    expect(grant.ok && grant.leases.map((l) => l.resource)).toEqual([GPUS[0]]);
    expect(grant.reclaimed.map((l) => l.experimentId)).toEqual([1]);
    expect(releasedWhy(ledger, grant.reclaimed[0]!.id)).toBe(`reclaimed: its holder (pid ${sleeper.pid}) is gone`);
  });
});

describe('a holder killed with SIGKILL', () => {
  it('keeps its lease while it lives, and the next acquirer reclaims it once it is dead', async () => {
    const { path, ledger } = ledgerFile();
    const { child, said } = await holderProcess(path, 41, GPUS);
    expect(said).toEqual({ held: [GPUS[0]] });
    const leases = new Leases(ledger.db);
    const whileAlive = leases.acquire({ experimentId: 42, resources: GPUS, count: 2 });
    expect(whileAlive.ok).toBe(false);
    expect(!whileAlive.ok && whileAlive.busy.map((l) => [l.experimentId, l.holder.pid])).toEqual([[41, child.pid]]);

    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
    const afterKill = leases.acquire({ experimentId: 42, resources: GPUS, count: 2 });
    expect(afterKill.ok && afterKill.leases.map((l) => l.resource)).toEqual(GPUS);
    expect(afterKill.reclaimed.map((l) => [l.experimentId, l.holder.pid])).toEqual([[41, child.pid]]);
    expect(releasedWhy(ledger, afterKill.reclaimed[0]!.id)).toBe(`reclaimed: its holder (pid ${child.pid}) is gone`);
  });

  it('a second process is refused what a live one holds', async () => {
    const { path } = ledgerFile();
    await holderProcess(path, 1, [GPUS[0]!]);
    const second = await holderProcess(path, 2, [GPUS[0]!]);
    expect(second.said).toEqual({ busy: [GPUS[0]] });
  });

  it('a restarted server takes over the leases of the run it follows again', async () => {
    const { path, ledger } = ledgerFile();
    const { child } = await holderProcess(path, 41, GPUS);
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
    const leases = new Leases(ledger.db);
    expect(leases.adopt(41)).toBe(1);
    expect(leases.live().map((l) => [l.experimentId, l.holder.pid])).toEqual([[41, process.pid]]);
    expect(leases.adopt(41)).toBe(0);
  });
});

describe('the ledger\'s chain', () => {
  it('leaves leases out (any process may reclaim one) and chains GPU samples (memory_gb rests on them)', () => {
    const { ledger } = ledgerFile();
    new Leases(ledger.db).acquire({ experimentId: 1, resources: [cpuResource(0)], count: 1 });
    ledger.db.prepare("UPDATE leases SET released_at = 'now', released_why = 'reclaimed by another process'").run();
    expect(ledger.verifyChain()).toEqual([]);

    const session = ledger.createSession({ tag: 'a', branch: 'ratchet/a', baseCommit: 'c0', bestCommit: 'c0', config: {}, pins: [] });
    const e = ledger.createExperiment({ sessionId: session.id, kind: 'baseline', parentCommit: 'c0', description: 'x' });
    ledger.recordGpuSample({ experimentId: e.id, phase: 'run', utilizationPercent: 90, memoryMib: 1000, deviceMemoryMib: 1100, processes: 1 });
    expect(ledger.verifyChain()).toEqual([]);
    ledger.db.prepare('UPDATE gpu_samples SET memory_mib = 10').run();
    expect(ledger.verifyChain().map((f) => f.what)).toEqual(['gpu_samples row 1 differs from what ratchet last wrote: it was edited outside ratchet']);
  });
});
