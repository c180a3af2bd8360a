// The agents of one ledger: who they are, which best each one's tree was last brought to, and which server drives a run.
import { randomBytes } from 'node:crypto';
import type Database from 'better-sqlite3';
import { currentHolder, holderOfRow, holderState, sameHolder, type Holder, type HolderColumns } from '../pool/holder.js';

export interface AgentRow {
  name: string;
  worktree: string;
  createdAt: string;
}

export interface RunOwner {
  experimentId: number;
  agent: string;
  instance: string;
  holder: Holder;
  claimedAt: string;
}

/**
 * The loops alive in this process, by instance id: a loop closed in this process (a test's restart) has let its runs
 * go, though its process, the lease holder, lives on.
 */
const liveInstances = new Set<string>();

export function newInstance(): string {
  const id = randomBytes(8).toString('hex');
  liveInstances.add(id);
  return id;
}

export function endInstance(id: string): void {
  liveInstances.delete(id);
}

const now = () => new Date().toISOString();

type OwnerRow = HolderColumns & {
  experiment_id: number;
  agent: string;
  instance: string;
  claimed_at: string;
};

/** Coordination state, not evidence: kept in the ledger so every server on the machine sees it, and never chained. */
export class AgentRegistry {
  private readonly me: Holder;

  constructor(private readonly db: Database.Database, private readonly instance: string, holder?: Holder) {
    this.me = holder ?? currentHolder();
  }

  register(name: string, worktree: string): void {
    this.db
      .prepare('INSERT INTO agents (name, worktree, created_at) VALUES (?, ?, ?) ON CONFLICT(name) DO UPDATE SET worktree = excluded.worktree')
      .run(name, worktree, now());
  }

  /** The agent is gone (its worktree removed): its name and bases go, while its experiments keep its name as evidence. */
  unregister(name: string): void {
    this.db
      .transaction(() => {
        this.db.prepare('DELETE FROM agent_bases WHERE agent = ?').run(name);
        this.db.prepare('DELETE FROM agents WHERE name = ?').run(name);
      })
      .immediate();
  }

  agent(name: string): AgentRow | undefined {
    const r = this.db.prepare('SELECT name, worktree, created_at FROM agents WHERE name = ?').get(name) as { name: string; worktree: string; created_at: string } | undefined;
    return r && { name: r.name, worktree: r.worktree, createdAt: r.created_at };
  }

  agents(): AgentRow[] {
    const rows = this.db.prepare('SELECT name, worktree, created_at FROM agents ORDER BY created_at, name').all() as { name: string; worktree: string; created_at: string }[];
    return rows.map((r) => ({ name: r.name, worktree: r.worktree, createdAt: r.created_at }));
  }

  /** The best the agent's tree was last brought to in this session (by its own keep, revert or sync); null before any. */
  baseOf(agent: string, sessionId: number): string | null {
    return (this.db.prepare('SELECT base_commit FROM agent_bases WHERE agent = ? AND session_id = ?').pluck().get(agent, sessionId) as string | undefined) ?? null;
  }

  setBase(agent: string, sessionId: number, commit: string): void {
    this.db
      .prepare('INSERT INTO agent_bases (agent, session_id, base_commit, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT(agent, session_id) DO UPDATE SET base_commit = excluded.base_commit, updated_at = excluded.updated_at')
      .run(agent, sessionId, commit, now());
  }

  /**
   * Whether this loop drives the experiment: it does when nobody does yet, when it already does, or when the server
   * that did is gone (adoption). One IMMEDIATE transaction, so two servers never both win.
   */
  claim(experimentId: number, agent: string): boolean {
    return this.db
      .transaction((): boolean => {
        const row = this.db.prepare('SELECT * FROM run_owners WHERE experiment_id = ?').get(experimentId) as OwnerRow | undefined;
        if (row && !this.isGone(toOwner(row))) return row.instance === this.instance;
        const h = this.me;
        this.db
          .prepare(
            `INSERT INTO run_owners (experiment_id, agent, instance, holder_pid, holder_start, holder_boot, holder_pidns, holder_host, claimed_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT(experiment_id) DO UPDATE SET agent = excluded.agent, instance = excluded.instance, holder_pid = excluded.holder_pid,
               holder_start = excluded.holder_start, holder_boot = excluded.holder_boot, holder_pidns = excluded.holder_pidns,
               holder_host = excluded.holder_host, claimed_at = excluded.claimed_at`,
          )
          .run(experimentId, agent, this.instance, h.pid, h.start, h.boot, h.pidns, h.host, now());
        return true;
      })
      .immediate();
  }

  /**
   * This loop takes a queued candidate over, whoever created it: only the scheduler does, under the repo lock, where it
   * also starts it, so no one else is starting it meanwhile.
   */
  take(experimentId: number, agent: string): void {
    this.db
      .transaction(() => {
        this.db.prepare('DELETE FROM run_owners WHERE experiment_id = ?').run(experimentId);
        this.claim(experimentId, agent);
      })
      .immediate();
  }

  /** This loop stops driving: its runs are nobody's, so any server (another process's too) may take them at once. */
  letGo(): void {
    this.db.prepare('DELETE FROM run_owners WHERE instance = ?').run(this.instance);
  }

  ownerOf(experimentId: number): RunOwner | undefined {
    const row = this.db.prepare('SELECT * FROM run_owners WHERE experiment_id = ?').get(experimentId) as OwnerRow | undefined;
    return row && toOwner(row);
  }

  /** True when the owner can no longer drive: its process died, or it is a loop of this process that has closed. */
  isGone(owner: RunOwner): boolean {
    const h = owner.holder;
    if (sameHolder(h, this.me)) return owner.instance !== this.instance && !liveInstances.has(owner.instance);
    return holderState(h, this.me) === 'dead';
  }
}

function toOwner(r: OwnerRow): RunOwner {
  return {
    experimentId: r.experiment_id,
    agent: r.agent,
    instance: r.instance,
    holder: holderOfRow(r),
    claimedAt: r.claimed_at,
  };
}
