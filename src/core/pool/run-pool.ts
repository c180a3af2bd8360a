// What a run holds while it goes: the GPUs gpu.perRun asks for, or a CPU slot; leased at launch, given back when its experiment ends.
import type { Config } from '../config.js';
import type { LoopContext } from '../context.js';
import { RatchetError } from '../errors.js';
import { rankGpus } from '../gpu.js';
import type { ExperimentRow, GpuAssignment } from '../ledger.js';
import type { Phase } from '../measure.js';
import * as refusals from '../refusals.js';
import { isSupervisorAlive } from '../runner/result-files.js';
import { deviceNodes, discoverDevices, type Device, type Discovery } from './discovery.js';
import { deviceHolder, RepoClaims } from './device-claims.js';
import { currentHolder, sameHolder } from './holder.js';
import { cpuResource, gpuOfResource, gpuResource, Leases, type Lease } from './leases.js';
import { GpuSampler } from './sampler.js';

/** GPU looks per step: every 2 s for a short run, up to every 30 s for a long one, so a week-long run keeps a bounded record. */
const GPU_SAMPLES_PER_BUDGET = 600;
const GPU_SAMPLE_MS = { min: 2_000, max: 30_000 };

/** CPU slots when pool.cpuSlots is not set: as many as experiments may run at once. */
export function cpuSlotsOf(config: Config): number {
  return config.pool?.cpuSlots ?? config.parallel ?? 1;
}

/** The pool as this server sees it: nvidia-smi's devices, narrowed by gpu.pool and the server's CUDA_VISIBLE_DEVICES. */
export function discoverFor(ctx: LoopContext, config: Config): Promise<Discovery> {
  return discoverDevices({ nvidiaSmi: ctx.opts.nvidiaSmi, pool: config.gpu?.pool, visible: process.env.CUDA_VISIBLE_DEVICES });
}

/** The refusal when the pool cannot give a run gpu.perRun devices even with every lease free. */
export function tooFewDevices(perRun: number, found: Discovery): RatchetError {
  if (found.error && !found.devices.length) return refusals.gpuUnavailable(perRun, `failed: ${found.error}`);
  const narrowed = found.narrowedBy.length ? ` after ${found.narrowedBy.join(' and ')} narrowed the ${found.gpus.length} it lists` : '';
  return refusals.gpuUnavailable(perRun, `leaves ${found.devices.length} device(s) in the pool${narrowed}`);
}

/** Leased for a repeat measured beside its experiment's own run (RunPool.leaseSpare); held by no experiment until `hold`. */
export interface SpareLease {
  leaseIds: number[];
  /** The devices, or null for a CPU slot. */
  gpus: GpuAssignment | null;
}

/**
 * How long one discovery serves the scheduler: a hand-off asks for the pool's size and then leases from it, and each
 * nvidia-smi spawn blocks the server for 5-10 ms (bench:pool). A device lost meanwhile is caught by the run's sampler.
 */
const DISCOVERY_REUSE_MS = 5_000;

export class RunPool {
  private bound: { db: unknown; leases: Leases } | null = null;
  private recent: { key: string; at: number; found: Promise<Discovery> } | null = null;
  /** This server's machine-wide claims on the devices it leases. */
  readonly claims: RepoClaims;

  constructor(private readonly ctx: LoopContext) {
    this.claims = new RepoClaims(ctx.home, () => this.leasedHere(), ctx.log);
  }

  /** UUIDs of the devices this process holds live leases on. */
  private leasedHere(): Set<string> {
    const me = currentHolder();
    const mine = this.leases().live().filter((l) => sameHolder(l.holder, me));
    return new Set(mine.map((l) => gpuOfResource(l.resource)).filter((uuid) => uuid !== null));
  }

  /** The leases over the ledger now open (a restored ledger is a new database). */
  leases(): Leases {
    const db = this.ctx.ledger.db;
    if (this.bound?.db !== db) {
      const ledger = this.ctx.ledger;
      const runs = (id: number) => ledger.runsOf(id);
      this.bound = {
        db,
        leases: new Leases(db, {
          ended: (id) => {
            const all = runs(id);
            return all.length > 0 && all.every((r) => r.state !== 'running' && r.state !== 'queued');
          },
          inUse: (id) => runs(id).some((r) => r.state === 'running' && r.supervisorPid !== null && r.runToken !== null && isSupervisorAlive(r.supervisorPid, r.runToken)),
        }),
      };
    }
    return this.bound.leases;
  }

  /**
   * Leases what an experiment's runs need, in one transaction: gpu.perRun devices, idle ones first, or one CPU slot.
   * Returns the GPUs (null for a CPU run); throws what to do when the pool cannot serve it now.
   */
  async acquire(e: ExperimentRow, config: Config): Promise<GpuAssignment | null> {
    if (config.gpu) {
      let found = await this.discover(config);
      if (found.devices.length < config.gpu.perRun) found = await this.discover(config, { fresh: true });
      if (found.devices.length >= config.gpu.perRun) {
        try {
          return await this.acquireGpus(e, config.gpu.perRun, found);
        } catch {
          // The reused listing may be stale (a device back from a reset, one gone): lease from a fresh one.
          return await this.acquireGpus(e, config.gpu.perRun, await this.discover(config, { fresh: true }));
        }
      }
      if (config.gpu.required) throw tooFewDevices(config.gpu.perRun, found);
      this.ctx.log.warn({ id: e.id, devices: found.devices.length, perRun: config.gpu.perRun, error: found.error }, 'too few GPUs in the pool; the run goes on the CPU');
    }
    this.acquireCpuSlot(e, cpuSlotsOf(config));
    return null;
  }

  /**
   * Gives back the leases of a run's experiment once none of its runs (its repeats included) is still going, whatever
   * the outcome. Never throws: recording an end must not fail on it, and a lease left behind is reclaimed anyway once
   * its experiment has ended.
   */
  releaseWhenDone(run: ExperimentRow): number {
    const rootId = run.repeatOf ?? run.id;
    try {
      // A repeat that ran on devices of its own (see leaseSpare) gives them back as soon as it ends.
      const own = run.repeatOf !== null && run.state !== 'running' && run.state !== 'queued' ? this.leases().release(run.id, `repeat ${run.id} ended ${run.state}`) : 0;
      const runs = this.ctx.ledger.runsOf(rootId);
      const all = runs.some((r) => r.state === 'running' || r.state === 'queued') ? 0 : this.leases().release(rootId, `experiment ${rootId} ended ${runs[0]?.state ?? 'unrecorded'}`);
      // Always, even when nothing was released here: another server may have reclaimed the lease as ended first.
      this.claims.settle();
      return own + all;
    } catch (err) {
      this.ctx.log.error({ err, id: rootId }, 'could not release the leases');
      return 0;
    }
  }

  /** A restarted server that follows a run again takes over its experiment's leases (and a repeat's own) from the server that died. */
  adopt(runId: number): number {
    const run = this.ctx.ledger.experiment(runId);
    if (!run) return 0;
    try {
      const adopted = this.leases().adopt(run.repeatOf ?? run.id) + (run.repeatOf !== null ? this.leases().adopt(run.id) : 0);
      // The dead server's claims died with it: this server claims, for the rest of the machine, the devices it now holds
      // leases on (none for a run that ended meanwhile, or whose lease was reclaimed).
      this.claims.claimLeased(run.gpus?.uuids ?? [], { id: runId });
      return adopted;
    } catch (err) {
      this.ctx.log.warn({ err, id: runId }, 'could not take over the leases');
      return 0;
    }
  }

  /**
   * Up to `max` more runs' worth of what `like` runs on, from what is free now (it never waits): gpu.perRun devices of
   * its GPU model (only one machine's measurements are compared), or a CPU slot. `keepFree` runs' worth stays free for
   * experiments that may start meanwhile. Never throws: a decision without spare devices runs one run at a time.
   */
  async leaseSpare(like: ExperimentRow, config: Config, want: { max: number; keepFree: number }): Promise<SpareLease[]> {
    const spares: SpareLease[] = [];
    if (want.max <= 0) return spares;
    try {
      const leases = this.leases();
      if (like.gpus) {
        const model = like.gpus.model;
        const perRun = like.gpus.uuids?.length ?? 0;
        if (!config.gpu || !perRun) return spares; // a row from before leases names no UUIDs
        const found = await this.discover(config);
        const all = found.devices.map((d) => gpuResource(d.uuid));
        this.logReclaimed(leases.reclaim(all));
        const taken = new Set(leases.live(all).map((l) => l.resource));
        const free = await this.claims.notHeldElsewhere(found.devices.filter((d) => !taken.has(gpuResource(d.uuid)) && !this.claims.isTaking(d.uuid)));
        const same = rankGpus(free.filter((d) => d.name === model));
        const runs = Math.min(want.max, Math.floor(same.length / perRun), Math.floor((free.length - want.keepFree * perRun) / perRun));
        for (let i = 0; i < runs; i++) {
          const chosen = await this.claims.claimSome(same, perRun);
          same.splice(0, same.length, ...same.filter((d) => !chosen.tried.includes(d)));
          if (chosen.claimed.length < perRun) {
            this.claims.leaseClaimed(chosen.claimed, () => undefined); // too few: the claims go back
            break;
          }
          const grant = this.claims.leaseClaimed(chosen.claimed, () => leases.acquire({ experimentId: null, resources: chosen.claimed.map((d) => gpuResource(d.uuid)), count: perRun }));
          if (!grant.ok) break;
          const byResource = new Map(chosen.claimed.map((d) => [gpuResource(d.uuid), d]));
          spares.push({ leaseIds: grant.leases.map((l) => l.id), gpus: assignmentOf(grant.leases.map((l) => byResource.get(l.resource)!)) });
        }
        return spares;
      }
      const slots = Array.from({ length: cpuSlotsOf(config) }, (_, i) => cpuResource(i));
      this.logReclaimed(leases.reclaim(slots));
      const runs = Math.min(want.max, slots.length - leases.live(slots).length - want.keepFree);
      for (let i = 0; i < runs; i++) {
        const grant = leases.acquire({ experimentId: null, resources: slots, count: 1 });
        if (!grant.ok) break;
        spares.push({ leaseIds: grant.leases.map((l) => l.id), gpus: null });
      }
      return spares;
    } catch (err) {
      this.ctx.log.warn({ err, id: like.id }, 'could not lease spare devices; the runs go one at a time');
      this.giveBack(spares);
      return [];
    }
  }

  /** The repeat that runs on a spare lease holds it from now on, so it is given back when that repeat ends. */
  hold(spare: SpareLease, experimentId: number): void {
    this.leases().assign(spare.leaseIds, experimentId);
  }

  /** Spare leases that no run took. */
  giveBack(spares: SpareLease[]): void {
    if (!spares.length) return;
    try {
      this.leases().releaseLeases(spares.flatMap((s) => s.leaseIds), 'no run took it');
      this.claims.settle();
    } catch (err) {
      this.ctx.log.error({ err }, 'could not give back spare leases; they are reclaimed when this server ends');
    }
  }

  /** discoverFor, reused for DISCOVERY_REUSE_MS while nvidia-smi, gpu.pool and CUDA_VISIBLE_DEVICES stay the same. */
  private discover(config: Config, opts: { fresh?: boolean } = {}): Promise<Discovery> {
    const key = JSON.stringify([this.ctx.opts.nvidiaSmi ?? null, config.gpu?.pool ?? null, process.env.CUDA_VISIBLE_DEVICES ?? null]);
    const now = Date.now();
    if (!opts.fresh && this.recent && this.recent.key === key && now - this.recent.at < DISCOVERY_REUSE_MS) return this.recent.found;
    const found = discoverFor(this.ctx, config);
    this.recent = { key, at: now, found };
    return found;
  }

  /** The pool now, after reclaiming stale leases: its devices and every live lease. For server start and status. */
  async survey(config: Config): Promise<Discovery & { leases: Lease[]; reclaimed: Lease[] }> {
    const found = config.gpu ? await discoverFor(this.ctx, config) : { devices: [], gpus: [], error: null, narrowedBy: [] };
    const reclaimed = this.leases().reclaim();
    this.logReclaimed(reclaimed);
    this.claims.settle();
    return { ...found, leases: this.leases().live(), reclaimed };
  }

  /** How many runs the GPU pool can hold at once under this config (CPU slots for a CPU config): for a scheduler. */
  async capacity(config: Config): Promise<number> {
    if (!config.gpu) return cpuSlotsOf(config);
    const found = await this.discover(config);
    return Math.floor(found.devices.length / config.gpu.perRun);
  }

  /**
   * A sampler of the step's GPUs, recording each look in the ledger; `onFault` hears once that a GPU disappeared or
   * failed. null without GPUs, and for rows from before leases (they name no UUIDs).
   */
  samplerFor(e: ExperimentRow, phase: Phase, onFault: (reason: string) => void): GpuSampler | null {
    const { ctx } = this;
    const gpus = e.gpus;
    if (!gpus?.uuids?.length || !e.runToken) return null;
    const config = ctx.configOf(ctx.ledger.session(e.sessionId)!);
    const budget = (phase === 'evaluate' && config.evaluate ? config.evaluate : config.run).budgetSeconds;
    return new GpuSampler({
      nvidiaSmi: ctx.opts.nvidiaSmi,
      gpus: gpus.uuids.map((uuid, i) => ({ uuid, index: gpus.indices[i] ?? -1 })),
      token: e.runToken,
      intervalMs: ctx.opts.gpuSampleMs ?? Math.min(GPU_SAMPLE_MS.max, Math.max(GPU_SAMPLE_MS.min, (budget * 1000) / GPU_SAMPLES_PER_BUDGET)),
      record: (figures) => {
        try {
          ctx.ledger.recordGpuSample({ experimentId: e.id, phase, ...figures });
        } catch (err) {
          ctx.log.warn({ err, id: e.id }, 'could not record a GPU sample');
        }
      },
      onFault: (reason) => {
        ctx.log.error({ id: e.id, reason }, 'GPU fault: stopping the step');
        onFault(reason);
      },
    });
  }

  private async acquireGpus(e: ExperimentRow, perRun: number, found: Discovery): Promise<GpuAssignment> {
    const ranked = rankGpus(found.devices);
    const byResource = new Map(found.devices.map((d) => [gpuResource(d.uuid), d]));
    const leases = this.leases();
    const all = ranked.map((d) => gpuResource(d.uuid));
    this.logReclaimed(leases.reclaim(all));
    const live = leases.live(all);
    // Leases held from before (a second acquire) come back as they are.
    const held = live.filter((l) => l.experimentId === e.id);
    const leased = new Set(live.map((l) => l.resource));
    // Across the machine: a device another repo's server holds is passed over, and the ones taken are claimed first.
    // A device another call of this server is between claiming and leasing is as good as leased.
    const open = ranked.filter((d) => !leased.has(gpuResource(d.uuid)) && !this.claims.isTaking(d.uuid));
    const chosen = held.length ? { claimed: [], tried: [], elsewhere: [] } : await this.claims.claimSome(open, perRun);
    const grant = this.claims.leaseClaimed(chosen.claimed, () =>
      leases.acquire({ experimentId: e.id, resources: held.length ? all : chosen.claimed.map((d) => gpuResource(d.uuid)), count: perRun }),
    );
    if (!grant.ok) {
      const holders = await Promise.all(chosen.elsewhere.map((d) => deviceHolder(d.uuid)));
      const elsewhere = chosen.elsewhere.map((d, i) => `${describe(d, gpuResource(d.uuid))} to another ratchet server (${describeHolder(holders[i] ?? null)})`);
      const otherRepo = holders.some((h) => h?.repo !== undefined && h.repo !== this.ctx.home);
      const busy = [...new Map([...live, ...grant.busy].map((l) => [l.id, l])).values()];
      const lines = [...busy.map((l) => `${describe(byResource.get(l.resource), l.resource)} to ${holderOf(l)}`), ...elsewhere];
      const free = ranked.length - new Set(busy.map((l) => l.resource)).size - chosen.elsewhere.length;
      throw new RatchetError(
        'gpu_unavailable',
        `Experiment ${e.id} needs ${perRun} GPU(s), but only ${Math.max(0, free)} of the ${ranked.length} in the pool are free: ${lines.join('; ')}.`,
        otherRepo
          ? 'Wait for those experiments to end (wait_experiment), or give each repo its own devices (gpu.pool in ratchet.json, CUDA_VISIBLE_DEVICES).'
          : 'Wait for those experiments to end (wait_experiment), or give this server more devices (gpu.pool in ratchet.json, CUDA_VISIBLE_DEVICES).',
        {
          busy: [
            ...busy.map((l) => ({ resource: l.resource, experimentId: l.experimentId, pid: l.holder.pid })),
            ...chosen.elsewhere.map((d) => ({ resource: gpuResource(d.uuid), experimentId: null, pid: null, elsewhere: true })),
          ],
        },
      );
    }
    const assigned = grant.leases.map((l) => byResource.get(l.resource)).filter((d): d is Device => d !== undefined);
    if (held.length) this.claims.claimLeased(assigned.map((d) => d.uuid), { id: e.id });
    // Leases held from before (a second acquire) name devices this listing may lack: the recorded assignment stands.
    if (assigned.length < grant.leases.length && e.gpus) return e.gpus;
    return assignmentOf(assigned);
  }

  private acquireCpuSlot(e: ExperimentRow, slots: number): void {
    const resources = Array.from({ length: slots }, (_, i) => cpuResource(i));
    const grant = this.leases().acquire({ experimentId: e.id, resources, count: 1 });
    this.logReclaimed(grant.reclaimed);
    if (grant.ok) return;
    throw new RatchetError(
      'busy',
      `Experiment ${e.id} needs a CPU slot, but all ${slots} are leased: ${grant.busy.map((l) => `${l.resource} to ${holderOf(l)}`).join('; ')}.`,
      'Wait for those experiments to end (wait_experiment), or raise pool.cpuSlots in ratchet.json.',
      { busy: grant.busy.map((l) => ({ resource: l.resource, experimentId: l.experimentId, pid: l.holder.pid })) },
    );
  }

  private logReclaimed(reclaimed: Lease[]): void {
    for (const l of reclaimed) this.ctx.log.warn({ resource: l.resource, experimentId: l.experimentId, holderPid: l.holder.pid }, 'reclaimed a stale lease');
  }
}

/** What a run records of the devices it leased, in index order. */
function assignmentOf(devices: Device[]): GpuAssignment {
  const chosen = [...devices].sort((a, b) => a.index - b.index || (a.migDevice ?? 0) - (b.migDevice ?? 0));
  return { indices: chosen.map((d) => d.index), model: chosen[0]?.name ?? null, uuids: chosen.map((d) => d.uuid), nodes: deviceNodes(chosen) };
}

function describe(d: Device | undefined, resource: string): string {
  if (!d) return resource;
  return d.kind === 'mig' ? `MIG ${d.uuid} on GPU ${d.index}` : `GPU ${d.index}`;
}

function describeHolder(h: { pid: number; repo?: string } | null): string {
  if (!h) return 'it has just let go; try again';
  return `${h.pid ? `pid ${h.pid}` : 'pid unknown'}${h.repo ? `, repo ${h.repo}` : ''}`;
}

function holderOf(l: Lease): string {
  return `${l.experimentId !== null ? `experiment ${l.experimentId}` : 'a run'} (pid ${l.holder.pid}${l.holder.host ? ` on ${l.holder.host}` : ''})`;
}
