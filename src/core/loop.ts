// The research loop, top to bottom as program.md tells it: start a session → run a candidate → wait → keep or revert.
import { existsSync, mkdirSync } from 'node:fs';
import type { RatchetError } from './errors.js';
import { LoopContext, type LoopOptions } from './context.js';
import { createCandidate } from './candidate.js';
import { Driver } from './driver.js';
import type { SandboxReport } from './executor/executor.js';
import { Integrity, type Finding } from './integrity.js';
import { completeInterruptedKeep, keep, keepRefusal, revert, type Reverted } from './keep.js';
import { ledgerPath, type ExperimentRow, type ExperimentState } from './ledger.js';
import type { LogPage } from './log-reader.js';
import * as refusals from './refusals.js';
import { repeatUntilDecided } from './repeats.js';
import * as reports from './reports.js';
import { requireOnBranch, startSession } from './session.js';
import { acquireServerLock, releaseServerLock, serverHolding, type LockHolder } from './server-lock.js';
import { syncToBest, type Synced } from './agents/sync.js';
import { identityProblem, OtherServers } from './agents/other-servers.js';
import { Scheduler } from './scheduler.js';
import { capacityOf, carryOntoBest, nextToFinish, staleRefusal } from './parallel.js';
import { SessionEvents } from './session-events.js';
import { closeSession, stopSession, type Stopped } from './stop.js';
import type { ExperimentView, MetricReport, SessionView, Status } from './views.js';
import type { Progress } from './reports.js';

export type { LoopOptions } from './context.js';
export type { Progress } from './reports.js';
export type { Stopped } from './stop.js';
export const DEFAULT_WAIT_SECONDS = 45;
export const MAX_WAIT_SECONDS = 50;
const PROGRESS_EVERY_MS = 3_000;
const QUEUED_POLL_MS = 200;

export type RevertResult = Omit<Reverted, 'experiment'> & { experiment: ExperimentView | null };

export class ResearchLoop {
  readonly repo: string;
  readonly stateDir: string;
  private readonly ctx: LoopContext;
  private readonly driver: Driver;
  private readonly integrity: Integrity;
  /** Keeps, crash streaks, plateaus, caps and stops, told to notify.command. */
  private readonly events: SessionEvents;
  /** Set when another live server drives this repo: this one answers reads only. */
  private heldBy: LockHolder | null = null;
  // Tool calls arrive concurrently (agents do send parallel calls); every call that changes git or
  // the ledger runs alone, so checks like "nothing is running" still hold when it acts on them.
  private queue: Promise<unknown> = Promise.resolve();
  private readonly scheduler: Scheduler;
  private readonly others: OtherServers;
  /** Set in an agent's worktree that is not the one registered for its agent: this server then changes nothing. */
  private identityProblem: RatchetError | null = null;

  constructor(opts: LoopOptions) {
    this.ctx = new LoopContext(opts);
    this.repo = this.ctx.repo;
    this.stateDir = this.ctx.stateDir;
    this.driver = new Driver(this.ctx);
    this.driver.repeatUntilDecided = (id) => repeatUntilDecided(this.ctx, this.driver, id);
    this.integrity = new Integrity(this.ctx);
    this.events = new SessionEvents(this.ctx);
    this.scheduler = new Scheduler(this.ctx, this.driver, this.events, (fn) => this.exclusive(fn));
    this.others = new OtherServers(this.ctx, this.driver, this.events, this.scheduler);
  }

  /** The ledger, for the CLI and tests that read it; tools go through the verbs below. */
  get ledger() {
    return this.ctx.ledger;
  }

  get resultsTsvPath(): string {
    return this.ctx.resultsTsvPath;
  }

  // ---------------------------------------------------------------- 1. start

  startSession(input: { tag?: string; replace?: boolean }): Promise<{ session: SessionView; baseline: ExperimentView; warnings: string[]; sandbox: SandboxReport; configChanged: string[] | null }> {
    return this.exclusive(async () => {
      const started = await startSession(this.ctx, this.driver, input);
      await this.integrity.seal(started.session);
      this.events.follow(started.baseline.id, this.driver.drive(started.baseline.id));
      return { ...started, session: reports.sessionView(this.ctx, started.session), baseline: reports.experimentView(this.ctx, started.baseline) };
    });
  }

  // ---------------------------------------------------------------- 2. run

  runExperiment(input: { description: string; hypothesis?: string }): Promise<ExperimentView> {
    // One at a time, under the repo lock: with several agents, "nothing in flight" must still hold when the candidate
    // is recorded. With several at once nothing needs it (a best that moves meanwhile makes the candidate stale, and the
    // scheduler takes the lock itself), and leaving it free keeps other servers' hand-offs from waiting on this commit.
    return this.exclusive(() => this.aloneUnlessParallel(async () => {
      const { session, config } = this.ctx.requireSession();
      this.events.refuseIfFinished(session, config);
      const capacity = capacityOf(config);
      if (capacity === 1) {
        const inFlight = this.ctx.ledger.unfinishedExperiments()[0];
        if (inFlight) throw refusals.busy(inFlight.id);
        const pending = this.ctx.awaitingDecision(session);
        if (pending) throw refusals.awaitingDecision(pending.id);
      }
      await this.onBranch();
      // The candidate is snapshotted now: the agent may edit its tree for the next idea while this one waits or runs.
      const candidate = await createCandidate(this.ctx, session, config, input);
      // Counted alongside the step's start, which takes longer, and awaited so the view is complete.
      const diffStats = this.ctx.git.diffStats(session.bestCommit, candidate.commit!).then((stats) => this.ctx.ledger.recordDiffStats(candidate.id, stats));
      // First in, first out: a free slot goes to the oldest queued candidate, which may be an earlier one than this.
      await this.scheduler.scheduleQueued();
      await diffStats.catch((err: unknown) => this.ctx.log.warn({ err, id: candidate.id }, 'could not count the diff'));
      // A candidate that ended at once (it could not start) is shown to the agent here, so wait {next} does not repeat it.
      return reports.experimentView(this.ctx, this.ctx.shown(this.ctx.ledger.experiment(candidate.id)!));
    }), { evidenceRefs: true });
  }

  private aloneUnlessParallel<T>(fn: () => Promise<T>): Promise<T> {
    const session = this.ctx.hasLedger ? this.ctx.ledger.activeSession() : undefined;
    return session && capacityOf(this.ctx.configOf(session)) > 1 ? fn() : this.ctx.decideAlone(fn);
  }

  // ---------------------------------------------------------------- 3. wait and measure

  async waitExperiment(id: number, waitSeconds = DEFAULT_WAIT_SECONDS, onProgress?: (p: Progress) => void): Promise<ExperimentView> {
    await this.guard();
    let e = this.ctx.requireExperiment(id);
    const deadline = Date.now() + clampWait(waitSeconds) * 1000;
    // A queued candidate is waited for too: until a slot takes it, then as it runs, within the same wait.
    while (e.state === 'queued' && Date.now() < deadline && !this.ctx.closed) {
      await sleep(QUEUED_POLL_MS);
      e = this.ctx.requireExperiment(id);
    }
    waitSeconds = Math.max(0, (deadline - Date.now()) / 1000);
    if (e.state === 'running') {
      const followed = this.heldBy ? this.pollUntilDone(id) : this.driver.drive(id);
      const config = this.ctx.configOf(this.ctx.ledger.session(e.sessionId)!);
      const ticker = onProgress
        ? setInterval(() => {
            const p = reports.progressOf(this.ctx, reports.activeRun(this.ctx, this.ctx.ledger.experiment(id)!), config);
            const runs = this.ctx.ledger.runsOf(id).length;
            onProgress(runs > 1 ? { ...p, phase: `${p.phase} (run ${runs} of this experiment)` } : p);
          }, PROGRESS_EVERY_MS)
        : null;
      try {
        await Promise.race([followed, sleep(clampWait(waitSeconds) * 1000)]);
      } finally {
        if (ticker) clearInterval(ticker);
      }
    }
    return reports.experimentView(this.ctx, this.ctx.shown(this.ctx.ledger.experiment(id)!));
  }

  /** Waits for whichever experiment in flight finishes first (up to waitSeconds) and returns it; the oldest still going if none did. */
  async waitNext(next: boolean, waitSeconds = DEFAULT_WAIT_SECONDS): Promise<ExperimentView> {
    await this.guard();
    if (!next) throw refusals.waitNeedsTarget();
    const { session } = this.ctx.requireSession();
    return reports.experimentView(this.ctx, await nextToFinish(this.ctx, session, clampWait(waitSeconds) * 1000, this.ctx.agent));
  }

  async readMetric(id?: number): Promise<MetricReport> {
    await this.guard();
    return reports.readMetric(this.ctx, id);
  }

  // ---------------------------------------------------------------- 4. keep or revert

  keep(input: { id: number; force?: boolean; reason?: string }): Promise<{ experiment: ExperimentView; session: SessionView }> {
    // One keep at a time across every server of the repo: the branch and the ledger move together, as one compare-and-swap.
    return this.exclusive(() => this.ctx.decideAlone(async () => {
      await this.onBranch(); // may complete a keep interrupted by a crash
      const findings = this.integrity.current();
      if (findings.length) throw refusals.tampered(findings);
      const { session, config } = this.ctx.requireSession();
      const e = this.ctx.requireExperiment(input.id, session);
      this.requireOwnExperiment(e);
      if (e.kind === 'candidate' && e.decision === null && e.commit && e.parentCommit !== session.bestCommit) {
        // Kept only onto the best it was measured against: a keep made meanwhile means measuring it again on the new one.
        await this.ctx.pinned(session);
        // Judged against the best it was measured against: a change worth keeping there is worth measuring on the new one.
        const measuredAgainst = this.ctx.ledger.keptExperimentFor(session.id, e.parentCommit);
        const refusal = keepRefusal(this.ctx, session, this.ctx.configOf(session), e, input.force === true, input.reason, measuredAgainst);
        if (refusal) throw refusal;
        const outcome = await carryOntoBest(this.ctx, session, e);
        if (outcome.kind === 'rebased') await this.scheduler.scheduleQueued();
        await this.integrity.seal(session);
        throw staleRefusal(e, outcome);
      }
      // A keep completed after a restart already did what this call asks.
      if (!(e.decision === 'kept' && session.bestExperimentId === e.id && e.completedAfterRestart)) {
        await this.ctx.pinned(session); // the rules come from git objects, not the ledger's copy
        await keep(this.ctx, session, this.ctx.configOf(session), e, input);
      }
      const updated = this.ctx.ledger.session(session.id)!;
      // The index sync that follows the branch move runs alongside the seal; both are done when keep returns.
      await Promise.all([this.integrity.seal(updated), this.ctx.git.settled()]);
      this.events.afterKeep(session, this.ctx.ledger.experiment(e.id)!);
      return { experiment: reports.experimentView(this.ctx, this.ctx.ledger.experiment(e.id)!), session: reports.sessionView(this.ctx, updated) };
    }), { evidenceRefs: true });
  }

  /** Each agent decides its own experiments: another's stay for it to keep or revert. */
  private requireOwnExperiment(e: ExperimentRow): void {
    const agent = this.ctx.ledger.agentOf(e.id);
    if (agent !== this.ctx.agent) throw refusals.otherAgentsExperiment(e.id, agent, this.ctx.agent);
  }

  revert(input: { id?: number }): Promise<RevertResult> {
    return this.exclusive(async () => {
      const { session, config } = this.ctx.requireSession();
      const parallel = capacityOf(config) > 1;
      const inFlight = this.ctx.ledger.unfinishedExperiments()[0];
      if (inFlight && !parallel) throw refusals.busyForRevert(inFlight.id);
      const latest = parallel ? undefined : this.ctx.ledger.latestRunExperiment(session.id);
      const e = input.id === undefined ? (latest && this.ctx.ledger.agentOf(latest.id) === this.ctx.agent ? latest : undefined) : this.ctx.requireExperiment(input.id, session);
      if (e && input.id !== undefined) {
        this.requireOwnExperiment(e);
        if (e.decision === 'kept') throw refusals.revertKept(e.id);
        const latest = this.ctx.ledger.latestRunExperiment(session.id);
        if (!parallel && latest && latest.id !== e.id && e.kind === 'candidate' && e.decision === null && e.state === 'measured') throw refusals.revertNotLatest(e.id);
      }
      await this.onBranch();
      // Several in flight: reverting one experiment leaves a tree that already holds the next idea; revert {} resets it.
      const result = await revert(this.ctx, session, config, e, { onlyIfTreeIsCandidate: parallel && e !== undefined });
      await this.integrity.seal(session);
      this.events.afterRevert(session, result.experiment);
      return { ...result, experiment: result.experiment ? reports.experimentView(this.ctx, result.experiment) : null };
    });
  }

  /** `asUser`: the user's `ratchet stop --cancel`, which may cancel any agent's run; an agent cancels only its own. */
  cancelExperiment(id: number, asUser = false): Promise<ExperimentView> {
    return this.exclusive(async () => {
      const e = this.ctx.requireExperiment(id);
      if (!asUser) this.requireOwnExperiment(e);
      if (e.state === 'cancelled') return reports.experimentView(this.ctx, e); // cancelling twice changes nothing
      if (e.state !== 'running' && e.state !== 'queued') throw refusals.notCancellable(id, e.state);
      if (e.kind === 'repeat') throw refusals.repeatNotCancellable(id, e.repeatOf!);
      const config = this.ctx.configOf(this.ctx.ledger.session(e.sessionId)!);
      const target = reports.activeRun(this.ctx, e);
      // The experiment is marked first, so its repeat loop starts nothing new; then the step in progress is stopped.
      if (target.id !== id) this.driver.finish(id, 'cancelled', 'cancelled by the agent');
      const grace = sleep((Math.max(config.run.graceSeconds, config.evaluate?.graceSeconds ?? 0) + 10) * 1000);
      if (this.driver.cancelStep(target)) await Promise.race([this.driver.drive(target.id), grace]);
      const after = this.ctx.ledger.experiment(target.id)!;
      if (after.state === 'running' || after.state === 'queued') {
        if (after.runToken) await this.ctx.executor.sweep(after.runToken);
        this.driver.finish(target.id, 'cancelled', target.id === id ? 'cancelled by the agent' : 'cancelled with its experiment');
      }
      return reports.experimentView(this.ctx, this.ctx.ledger.experiment(id)!);
    });
  }

  /** The user ends the session: nothing new runs; the running experiment finishes, or is cancelled when asked. */
  async stopSession(input: { cancel?: boolean; by: 'cli' | 'tool' }): Promise<Stopped> {
    const stopped = await this.exclusive(async () => stopSession(this.ctx, input));
    const cancelled = input.cancel && stopped.running ? await this.cancelOnStop(stopped.running.id, input.by) : null;
    if (stopped.recorded) this.events.stopped(stopped.session, stopped.end, cancelled?.id ?? null);
    const running = stopped.running && !cancelled ? reports.experimentView(this.ctx, this.ctx.ledger.experiment(stopped.running.id)!) : null;
    return { finished: stopped.finished, alreadyStopped: !stopped.recorded, cancelled, running };
  }

  /** The user closes the session (`ratchet close`), so a next one can start; see stop.ts. */
  closeSession(): Promise<{ tag: string; reason: string }> {
    return this.exclusive(async () => {
      const { session, finished } = closeSession(this.ctx);
      return { tag: session.tag, reason: finished.reason };
    });
  }

  /**
   * From the CLI beside a live server, the stop only asks the step in progress to end: the server that follows the run
   * records its result, so the run is never recorded by two processes. Without a server this process cancels it whole.
   */
  private async cancelOnStop(id: number, by: 'cli' | 'tool'): Promise<ExperimentView> {
    const holder = by === 'cli' ? await serverHolding(this.repo) : null;
    if (!holder || holder.pid === process.pid) return this.cancelExperiment(id, true); // stopping the session is for every agent's runs
    const e = this.ctx.requireExperiment(id);
    const target = reports.activeRun(this.ctx, e);
    if (target.id !== id) this.driver.finish(id, 'cancelled', 'cancelled by the user with `ratchet stop --cancel`');
    this.driver.cancelStep(target);
    return reports.experimentView(this.ctx, this.ctx.ledger.experiment(id)!);
  }

  // ---------------------------------------------------------------- reading

  async status(input: { agent?: string } = {}): Promise<Status> {
    const findings = await this.guard();
    const session = this.ctx.hasLedger ? this.ctx.ledger.activeSession() : undefined;
    const onDisk = reports.configOnDisk(this.repo);
    const config = session ? this.ctx.configOf(session) : null;
    const mode = config ? config.sandbox : onDisk.config?.sandbox ?? 'auto';
    // What the pool holds (a discovery reused for a few seconds), so `slots` says what the scheduler will really run.
    const poolCapacity = config && capacityOf(config) > 1 ? await this.driver.pool.capacity(config).catch(() => null) : null;
    return reports.status(this.ctx, { sandbox: await this.ctx.executorFor({ sandbox: mode }).sandbox(), findings, readOnlyHolder: this.heldBy, configError: onDisk.error, poolCapacity, agent: input.agent });
  }

  /** Brings this agent's tree to the best another agent kept, carrying its work in progress along when it applies. */
  sync(): Promise<Synced> {
    return this.exclusive(async () => {
      const { session, config } = this.ctx.requireSession();
      await this.onBranch();
      return syncToBest(this.ctx, this.ctx.ledger.session(session.id)!, config);
    });
  }

  async listExperiments(input: { limit?: number; beforeId?: number; state?: ExperimentState; agent?: string }): Promise<{ experiments: ExperimentView[]; total: number; nextBeforeId: number | null }> {
    await this.guard();
    return reports.listExperiments(this.ctx, input);
  }

  async readLog(input: { id: number; offset?: number; limit?: number; grep?: string; phase?: 'run' | 'evaluate' }): Promise<LogPage & { path: string; workspace: string | null }> {
    await this.guard();
    return reports.readLog(this.ctx, input);
  }

  // ---------------------------------------------------------------- lifecycle

  /** Claims the repo for this server; returns the other live server if it already drives it. */
  async claim(): Promise<LockHolder | null> {
    mkdirSync(this.stateDir, { recursive: true });
    this.heldBy = await acquireServerLock(this.repo);
    return this.heldBy;
  }

  /** .ratchet/ holds the server log from the first start, so it is kept out of `git status` from then on. */
  async excludeStateDir(): Promise<void> {
    await this.ctx.git.excludeFromGit('/.ratchet/');
  }

  /** After a restart: verify the evidence, re-attach to runs whose supervisor lives on, record the rest. */
  async recover(): Promise<number[]> {
    if (this.heldBy) return [];
    await this.integrity.checkAtStart();
    // Also before the first session: its queue may wait on a device another server (another repo's too) holds.
    this.others.follow();
    if (!existsSync(ledgerPath(this.ctx.home))) return [];
    if (this.ctx.linked) this.identityProblem = identityProblem(this.ctx, this.repo);
    const active = this.ctx.ledger.activeSession();
    // Leases of a server that died with its runs are given back before anything asks for them.
    if (active) await this.driver.pool.survey(this.ctx.configOf(active)).catch((err: unknown) => this.ctx.log.warn({ err }, 'could not survey the device pool'));
    return this.others.adoptOrphans();
  }

  /** Stops following runs; their supervisors keep enforcing the budget and a later server records them. */
  close(): void {
    this.ctx.closed = true;
    this.others.stop();
    this.ctx.endInstance();
    this.driver.pool.claims.releaseAll();
    if (!this.heldBy) releaseServerLock(this.repo);
    this.ctx.closeLedger();
    this.ctx.git.close();
  }

  async settle(): Promise<void> {
    await Promise.allSettled([...this.ctx.drivers.values()]);
    await this.flush();
    await this.events.notifier.settled();
  }

  /** Finishes the background writes of decisions already made: the index sync and the evidence bundle. */
  async flush(): Promise<void> {
    await this.ctx.git.settled().catch(() => undefined);
    await this.integrity.settled();
  }

  // ---------------------------------------------------------------- guards

  private exclusive<T>(fn: () => Promise<T>, checks: { evidenceRefs?: boolean } = {}): Promise<T> {
    const run = this.queue.then(async () => {
      if (this.heldBy) throw refusals.lockedByAnotherServer(this.heldBy);
      if (this.identityProblem) throw this.identityProblem;
      await this.guard(checks);
      return fn();
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Every call first checks that nobody changed ratchet's evidence behind its back; findings stick until the user accepts them. */
  private guard(checks: { evidenceRefs?: boolean } = {}): Promise<Finding[]> {
    return this.integrity.check(checks);
  }

  private async onBranch(): Promise<void> {
    const { session } = this.ctx.requireSession();
    const tip = await this.ctx.git.resolve(`refs/heads/${session.branch}`);
    if (tip === session.bestCommit) {
      // Another server's keep may land between the two looks at the branch: then the locked path below decides.
      let moved = false;
      try {
        return await requireOnBranch(this.ctx, session, () => {
          moved = true;
          return false;
        });
      } catch (err) {
        if (!moved) throw err;
      }
    }
    // The branch is ahead of the ledger: another server may be between the two halves of a keep. Once no keep is in
    // progress anywhere, the ledger is read again; what still differs is an interrupted keep, or a moved branch.
    await this.ctx.decideAlone(async () => {
      const { session: fresh } = this.ctx.requireSession();
      await requireOnBranch(this.ctx, fresh, (s, t) => completeInterruptedKeep(this.ctx, s, t));
    });
  }

  /** A read-only server watches the ledger that the driving server writes. */
  private async pollUntilDone(id: number): Promise<void> {
    while (!this.ctx.closed && this.ctx.ledger.experiment(id)!.state === 'running') await sleep(500);
  }
}

function clampWait(seconds: number): number {
  return Math.min(Math.max(0, seconds), MAX_WAIT_SECONDS);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
