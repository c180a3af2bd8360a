// The queue of experiments waiting for a slot: which starts next, and when. Every server of a repo schedules from the
// same ledger and pool, one at a time under the repo lock, and a queued experiment is started by the one that claims it.
import type { Config } from './config.js';
import type { LoopContext } from './context.js';
import type { Driver } from './driver.js';
import type { ExperimentRow } from './ledger.js';
import { sessionFinished } from './limits.js';
import { capacityOf, slots } from './parallel.js';
import type { SessionEvents } from './session-events.js';

export class Scheduler {
  /**
   * `alone` runs a scheduling step after the calls this server is already making: the loop's queue of tool calls, so
   * a step never interleaves with a keep or a revert of the same server.
   */
  constructor(
    private readonly ctx: LoopContext,
    private readonly driver: Driver,
    private readonly events: SessionEvents,
    private readonly alone: (fn: () => Promise<void>) => Promise<void>,
  ) {}

  /** Fills the free slots, as a step of its own (a run's end, the follow tick). */
  startQueued(): Promise<void> {
    return this.alone(() => this.scheduleQueued());
  }

  /**
   * Starts queued experiments while slots are free, oldest first, whichever agent proposed them; a finished session
   * cancels them instead. Called inside a tool call that already runs alone (run_experiment, a keep).
   */
  scheduleQueued(): Promise<void> {
    return this.ctx.decideAlone(async () => {
      if (this.ctx.closed) return;
      const session = this.ctx.ledger.activeSession();
      if (!session) return;
      const config = this.ctx.configOf(session);
      const { running, queued } = slots(this.ctx, session);
      if (!queued.length) return;
      // A stop or a cap cancels what has not started; maxExperiments does not, as it counted these when it admitted them.
      const finished = sessionFinished(this.ctx, session, config);
      if (finished && (finished.stopped || finished.cap !== 'maxExperiments')) {
        for (const q of queued) if (this.driver.claim(q.id)) this.driver.finish(q.id, 'cancelled', 'the session ended before it started');
        return;
      }
      for (const q of queued.slice(0, Math.max(0, (await this.slotsFor(config)) - running.length))) {
        if (this.ctx.closed) return; // a server closing starts nothing more
        const fresh = this.ctx.ledger.experiment(q.id)!;
        if (fresh.state !== 'queued' || fresh.commit === null) continue;
        // Whichever server sees the slot free starts the oldest candidate, another agent's too, and drives it.
        this.ctx.registry.take(fresh.id, this.ctx.ledger.agentOf(fresh.id));
        await this.start(fresh, config);
      }
    });
  }

  /** Launches an experiment's run and follows it; when it ends, the oldest queued experiment takes its slot. */
  private async start(candidate: ExperimentRow, config: Config): Promise<void> {
    // Launch leases the run's GPUs or CPU slot, held through its repeats and given back when it ends.
    const launched = await this.driver.launch(candidate, config, 'run');
    if (launched.state === 'queued') return; // the pool filled up meanwhile: it keeps its place
    const followed = this.driver.drive(launched.id);
    this.events.follow(launched.id, followed);
    if (capacityOf(config) > 1) void followed.finally(() => this.startQueued().catch((err: unknown) => this.ctx.log.warn({ err }, 'could not start a queued experiment')));
  }

  /** Runs that may go at once: `parallel`, and no more than the pool holds (GPUs ÷ gpu.perRun, or the CPU slots). */
  private async slotsFor(config: Config): Promise<number> {
    const wanted = capacityOf(config);
    return wanted === 1 ? 1 : Math.max(1, Math.min(wanted, await this.driver.pool.capacity(config)));
  }
}
