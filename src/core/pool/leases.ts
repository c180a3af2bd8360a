// Leases on the pool's resources (a GPU or MIG instance by UUID, a CPU slot), kept in the ledger so every process sees them.
import type Database from 'better-sqlite3';
import { currentHolder, holderOfRow, holderState, sameHolder, type Holder, type HolderColumns } from './holder.js';

export interface Lease {
  id: number;
  /** "gpu:<GPU- or MIG- UUID>" or "cpu:<slot>". */
  resource: string;
  /** The experiment it was taken for; null for a holder that leases before it records a run. */
  experimentId: number | null;
  holder: Holder;
  acquiredAt: string;
}

export type Grant =
  | { ok: true; leases: Lease[]; reclaimed: Lease[] }
  | { ok: false; /** Live leases on the resources asked for. */ busy: Lease[]; reclaimed: Lease[] };

export interface LeaseOptions {
  /** Who acquires: this process unless told otherwise (tests). */
  holder?: Holder;
  /** A dead holder's lease stays in use while its experiment's processes live on (a server killed mid-run leaves its run going). */
  inUse?: (experimentId: number) => boolean;
  /** A lease whose experiment has ended is stale, even while its holder lives. */
  ended?: (experimentId: number) => boolean;
}

export const gpuResource = (uuid: string) => `gpu:${uuid}`;
/** The device UUID a GPU lease names; null for a CPU slot. */
export const gpuOfResource = (resource: string): string | null => (resource.startsWith('gpu:') ? resource.slice('gpu:'.length) : null);
export const cpuResource = (slot: number) => `cpu:${slot}`;

type Row = HolderColumns & {
  id: number;
  resource: string;
  experiment_id: number | null;
  acquired_at: string;
};

const now = () => new Date().toISOString();

/**
 * Each call is one IMMEDIATE transaction: the write lock is taken before anything is read, so two processes acquiring
 * at once are served one after the other, and a unique index on live leases makes a double grant impossible anyway.
 */
export class Leases {
  private readonly holder: Holder;

  constructor(private readonly db: Database.Database, private readonly opts: LeaseOptions = {}) {
    this.holder = opts.holder ?? currentHolder();
  }

  /**
   * `count` of `resources` (in order of preference) for an experiment, after reclaiming stale leases on them. An
   * experiment that already holds leases gets those back: acquiring twice takes nothing more.
   */
  acquire(req: { experimentId: number | null; resources: string[]; count: number }): Grant {
    return this.db
      .transaction((): Grant => {
        if (req.experimentId !== null) {
          const held = this.liveOf(req.experimentId);
          if (held.length) return { ok: true, leases: held, reclaimed: [] };
        }
        const reclaimed = this.reclaimStale(req.resources);
        const busy = this.live(req.resources);
        const taken = new Set(busy.map((l) => l.resource));
        const free = req.resources.filter((r) => !taken.has(r));
        if (free.length < req.count) return { ok: false, busy, reclaimed };
        const at = now();
        const h = this.holder;
        const insert = this.db.prepare(
          `INSERT INTO leases (resource, experiment_id, holder_pid, holder_start, holder_boot, holder_pidns, holder_host, acquired_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
        );
        const ids = free.slice(0, req.count).map((r) => Number(insert.run(r, req.experimentId, h.pid, h.start, h.boot, h.pidns, h.host, at).lastInsertRowid));
        return { ok: true, leases: ids.map((id) => toLease(this.db.prepare('SELECT * FROM leases WHERE id = ?').get(id) as Row)), reclaimed };
      })
      .immediate();
  }

  /** Ends every live lease of an experiment; returns how many there were. Releasing twice changes nothing. */
  release(experimentId: number, why: string): number {
    return this.db
      .transaction(() => this.db.prepare('UPDATE leases SET released_at = ?, released_why = ? WHERE experiment_id = ? AND released_at IS NULL').run(now(), why, experimentId).changes)
      .immediate();
  }

  /** Gives leases taken for no experiment (a run not recorded yet) to the experiment that runs on them. */
  assign(leaseIds: number[], experimentId: number): void {
    this.db
      .transaction(() => {
        const update = this.db.prepare('UPDATE leases SET experiment_id = ? WHERE id = ? AND experiment_id IS NULL AND released_at IS NULL');
        for (const id of leaseIds) update.run(experimentId, id);
      })
      .immediate();
  }

  /** Ends the given leases, e.g. ones taken for a run that was not started after all. */
  releaseLeases(leaseIds: number[], why: string): void {
    this.db
      .transaction(() => {
        const release = this.db.prepare('UPDATE leases SET released_at = ?, released_why = ? WHERE id = ? AND released_at IS NULL');
        for (const id of leaseIds) release.run(now(), why, id);
      })
      .immediate();
  }

  /** This process takes over an experiment's leases whose holder is gone (a restarted server following the run again). */
  adopt(experimentId: number): number {
    return this.db
      .transaction(() => {
        const h = this.holder;
        const orphaned = this.liveOf(experimentId).filter((l) => !sameHolder(l.holder, h) && holderState(l.holder, h) === 'dead');
        const update = this.db.prepare('UPDATE leases SET holder_pid = ?, holder_start = ?, holder_boot = ?, holder_pidns = ?, holder_host = ? WHERE id = ?');
        for (const l of orphaned) update.run(h.pid, h.start, h.boot, h.pidns, h.host, l.id);
        return orphaned.length;
      })
      .immediate();
  }

  /** Live leases, on the given resources or on all. */
  live(resources?: string[]): Lease[] {
    const rows = this.db.prepare('SELECT * FROM leases WHERE released_at IS NULL ORDER BY id').all() as Row[];
    const wanted = resources ? new Set(resources) : null;
    return rows.filter((r) => !wanted || wanted.has(r.resource)).map(toLease);
  }

  /** Releases the stale leases (dead holder, ended experiment) on the given resources or on all; returns them. */
  reclaim(resources?: string[]): Lease[] {
    return this.db.transaction(() => this.reclaimStale(resources)).immediate();
  }

  private liveOf(experimentId: number): Lease[] {
    return (this.db.prepare('SELECT * FROM leases WHERE experiment_id = ? AND released_at IS NULL ORDER BY id').all(experimentId) as Row[]).map(toLease);
  }

  private reclaimStale(resources?: string[]): Lease[] {
    const reclaimed: Lease[] = [];
    const release = this.db.prepare('UPDATE leases SET released_at = ?, released_why = ? WHERE id = ? AND released_at IS NULL');
    for (const l of this.live(resources)) {
      const why = this.staleness(l);
      if (why === null) continue;
      release.run(now(), `reclaimed: ${why}`, l.id);
      reclaimed.push(l);
    }
    return reclaimed;
  }

  /** Why a live lease no longer holds, or null while it does. */
  private staleness(l: Lease): string | null {
    const exp = l.experimentId;
    if (exp !== null && this.opts.ended?.(exp)) return `experiment ${exp} has ended`;
    if (sameHolder(l.holder, this.holder)) return null;
    if (holderState(l.holder, this.holder) !== 'dead') return null;
    if (exp !== null && this.opts.inUse?.(exp)) return null;
    return `its holder (pid ${l.holder.pid}) is gone`;
  }
}

function toLease(r: Row): Lease {
  return {
    id: r.id,
    resource: r.resource,
    experimentId: r.experiment_id,
    holder: holderOfRow(r),
    acquiredAt: r.acquired_at,
  };
}
