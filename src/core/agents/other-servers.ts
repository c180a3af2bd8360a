// The other servers on this ledger and machine: runs a dead server left are adopted, a slot another server frees is
// filled, and an agent's worktree is checked to be the one registered for its agent.
import { realpathSync } from 'node:fs';
import type { LoopContext } from '../context.js';
import type { Driver } from '../driver.js';
import type { RatchetError } from '../errors.js';
import { capacityOf, slots } from '../parallel.js';
import * as refusals from '../refusals.js';
import type { Scheduler } from '../scheduler.js';
import type { SessionEvents } from '../session-events.js';

const FOLLOW_MS = 1_000;

export class OtherServers {
  private follower: NodeJS.Timeout | null = null;

  constructor(
    private readonly ctx: LoopContext,
    private readonly driver: Driver,
    private readonly events: SessionEvents,
    private readonly scheduler: Scheduler,
  ) {}

  /**
   * Takes over the unfinished experiments no live server drives: all of them after a restart, and those of a server
   * that died while this one runs. Runs another live server drives are left to it.
   */
  async adoptOrphans(): Promise<number[]> {
    const { ctx, driver } = this;
    const unfinished = ctx.ledger.unfinishedExperiments();
    const waiting: number[] = [];
    const adopted: number[] = [];
    for (const e of unfinished) {
      if (ctx.drivers.has(e.id)) continue;
      // A repeat is driven by its experiment's repeat loop, which re-attaches to it.
      if (e.kind === 'repeat' && unfinished.some((r) => r.id === e.repeatOf)) continue;
      // A candidate still waiting for a slot never started: it keeps its place in the queue.
      if (e.state === 'queued' && e.kind === 'candidate' && e.commit && capacityOf(ctx.configOf(ctx.ledger.session(e.sessionId)!)) > 1) {
        waiting.push(e.id);
        continue;
      }
      // This loop's own runs (one being launched has no driver yet) are never orphans.
      const owner = ctx.registry.ownerOf(e.kind === 'repeat' && e.repeatOf !== null ? e.repeatOf : e.id);
      if (owner?.instance === ctx.instance) continue;
      if (!driver.claim(e.id)) continue; // a live server drives it
      adopted.push(e.id);
      if (e.phase !== 'repeats' && (e.state === 'queued' || !e.supervisorPid || !e.runToken)) {
        if (e.runToken) await ctx.executor.sweep(e.runToken);
        driver.finish(e.id, 'crashed', 'ratchet stopped before the run started');
        continue;
      }
      ctx.log.info({ id: e.id, phase: e.phase }, 're-attaching after restart');
      const followed = driver.drive(e.id);
      this.events.follow(e.id, followed);
      if (waiting.length) void followed.finally(() => this.scheduler.startQueued().catch(() => undefined));
    }
    if (waiting.length) await this.scheduler.startQueued();
    return adopted;
  }

  /**
   * Once a second, with other servers on the ledger (other agents' worktrees) or several runs at once: a run whose
   * server died is adopted, and a queued experiment starts when another server's run frees a slot (that server may
   * have nothing queued of its own), or when another repo's server gives back a device this one waits for.
   */
  follow(): void {
    if (this.follower || this.ctx.closed) return;
    let busy = false;
    this.follower = setInterval(() => {
      if (busy || this.ctx.closed || !this.ctx.hasLedger) return;
      const session = this.ctx.ledger.activeSession();
      if (!session) return;
      // Alone on the ledger, only a queue waiting for a device another repo holds needs a look; orphans are a restart's.
      const others = this.ctx.registry.agents().length > 0;
      if (!others && (capacityOf(this.ctx.configOf(session)) === 1 || !slots(this.ctx, session).queued.length)) return;
      busy = true;
      void (others ? this.adoptOrphans() : Promise.resolve([]))
        .then(() => this.scheduler.startQueued())
        .catch((err: unknown) => this.ctx.log.warn({ err }, 'could not follow the other servers'))
        .finally(() => (busy = false));
    }, FOLLOW_MS);
    this.follower.unref();
  }

  stop(): void {
    if (this.follower) clearInterval(this.follower);
    this.follower = null;
  }
}

/**
 * An agent's worktree speaks for the agent `ratchet worktree add` registered at that path, and for no other: a marker
 * naming another agent (edited by hand, or copied) would let it decide that agent's experiments. Null when it is.
 */
export function identityProblem(ctx: LoopContext, repo: string): RatchetError | null {
  const row = ctx.registry.agent(ctx.agent);
  let here = repo;
  try {
    here = realpathSync(repo);
  } catch {
    // keep the path as given
  }
  return !row || row.worktree !== here ? refusals.unknownAgent(ctx.agent, here, row?.worktree ?? null) : null;
}
