// The driver: starts each step of an experiment in its own workspace, follows it to its result and records it.
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { baselineRepeatsOf, type Config } from './config.js';
import type { LoopContext } from './context.js';
import { isRatchetError } from './errors.js';
import type { RunningStep } from './executor/executor.js';
import { gpuEnvFor } from './gpu.js';
import type { ExperimentRow, FinalState, GpuAssignment } from './ledger.js';
import { judge, type Phase } from './measure.js';
import { RunPool } from './pool/run-pool.js';
import { prunerFor, recordCurve } from './pruning.js';
import type { RunResult } from './runner/run-spec.js';
import { restorePinned, verifyPins } from './surface.js';
import { figuresIn, prepareStep } from './steps.js';

const PRUNE_EVERY_MS = 250;
/** How often a run another server drives is looked up in the ledger. */
const WATCH_EVERY_MS = 250;

export class Driver {
  /** Steps started or re-attached by this server, by experiment id. */
  private readonly steps = new Map<number, RunningStep>();
  /** A GPU fault seen while a step ran, by experiment id: the step ends crashed with it, whatever it printed. */
  private readonly faults = new Map<number, string>();
  /** Set by the loop: measures the repeats of an experiment until it is decided. */
  repeatUntilDecided: (rootId: number) => Promise<void> = async () => {};
  /** The devices and CPU slots runs lease; a scheduler that starts several experiments asks it for capacity. */
  readonly pool: RunPool;

  constructor(private readonly ctx: LoopContext) {
    this.pool = new RunPool(ctx);
  }

  /**
   * Starts one step of an experiment in a fresh workspace of its commit, then follows it in the background. The first
   * step of a baseline or candidate leases its GPUs (or a CPU slot) first; `gpus` is for a repeat, which runs on the
   * devices its experiment holds, and a later step keeps the experiment's.
   */
  async launch(e: ExperimentRow, config: Config, phase: Phase, gpus?: GpuAssignment | null): Promise<ExperimentRow> {
    const { ctx } = this;
    const dir = ctx.runDir(e.id);
    let assigned = gpus === undefined ? e.gpus : gpus;
    const token = `${e.id}-${phase}-${randomBytes(6).toString('hex')}`;
    const starting = phase === 'run' && e.kind !== 'repeat' && e.state === 'queued';
    if (starting) {
      try {
        assigned = await this.pool.acquire(e, config);
      } catch (err) {
        // Several servers share the pool: one may have taken the slot this one saw free. The candidate keeps its place.
        if (config.parallel > 1 && isRatchetError(err) && err.details?.busy) {
          ctx.log.info({ id: e.id }, 'the pool filled up meanwhile; the candidate stays queued');
          return e;
        }
        if (ctx.closed) return e; // shut down mid-lease: the candidate stays queued for the next server
        ctx.log.warn({ err, id: e.id }, 'could not lease what the run needs');
        return this.finish(e.id, 'crashed', `ratchet could not lease what the run needs: ${describeFailure(err)}`);
      }
    }
    try {
      const executor = ctx.executorFor(config);
      const sandbox = await executor.sandbox();
      const request = await prepareStep(
        { workspaces: ctx.workspaces, repo: ctx.repo, dir, cacheDir: ctx.cacheDir, hidden: ctx.treesToHide(), sandboxed: sandbox.kind !== 'none' },
        {
          id: e.id,
          phase,
          commit: e.commit!,
          config,
          token,
          env: { RATCHET_EXPERIMENT_ID: String(e.id), ...(assigned ? gpuEnvFor(assigned) : {}) },
          gpuDevices: assigned ? (assigned.nodes ?? assigned.indices.map((i) => `/dev/nvidia${i}`)) : [],
        },
      );
      // The token is on record before anything is spawned, so a crash here still lets recovery sweep it.
      ctx.ledger.markLaunching(e.id, { phase, runToken: token });
      const running = await executor.start(request);
      this.steps.set(e.id, running);
      const updated = ctx.ledger.markStarted(e.id, {
        phase,
        runToken: token,
        supervisorPid: running.supervisorPid,
        logPath: e.logPath ?? join(dir, 'run.log'),
        ...(starting || gpus !== undefined ? { gpus: assigned } : {}),
      });
      ctx.log.info({ id: e.id, phase, supervisorPid: running.supervisorPid, sandbox: sandbox.kind, gpus: assigned?.indices }, 'step started');
      void this.drive(e.id);
      return updated;
    } catch (err) {
      // A server closing mid-launch has its git and executor shut under it: that is not the run's failure. The run is
      // left as it stands, for the next server to cancel (never started) or recover (started).
      if (ctx.closed) {
        ctx.log.info({ err, id: e.id }, 'closed while starting the step; left to the next server');
        return ctx.ledger.experiment(e.id)!;
      }
      ctx.log.error({ err, id: e.id }, 'could not start the step');
      return this.finish(e.id, 'crashed', `ratchet could not start the ${phase} command: ${describeFailure(err)}`);
    }
  }

  /**
   * Follows an experiment until it is recorded; idempotent, and safe to call again after a restart. Only one server
   * drives a run: another server's run is watched in the ledger until it ends, and taken over if that server is gone.
   */
  drive(id: number): Promise<void> {
    const { ctx } = this;
    const existing = ctx.drivers.get(id);
    if (existing) return existing;
    if (!this.claim(id)) return this.watch(id);
    this.pool.adopt(id);
    const driver = this.advance(id)
      .catch((err) => {
        ctx.log.error({ err, id }, 'driver failed');
        // A full disk is the usual cause: the workspaces go first, which frees room to record the failure.
        ctx.workspaces.remove(id, 'run');
        ctx.workspaces.remove(id, 'evaluate');
        try {
          this.finish(id, 'crashed', `ratchet failed while recording the run: ${describeFailure(err)}`);
        } catch (inner) {
          ctx.log.error({ err: inner, id }, 'could not record the failure; recovery will at the next start');
        }
      })
      .finally(() => ctx.drivers.delete(id));
    ctx.drivers.set(id, driver);
    return driver;
  }

  /** Whether this server drives the run (its experiment's, for a repeat): see AgentRegistry.claim. */
  claim(id: number): boolean {
    const e = this.ctx.ledger.experiment(id);
    if (!e || (e.state !== 'running' && e.state !== 'queued')) return true; // nothing left to drive
    const root = e.kind === 'repeat' && e.repeatOf !== null ? e.repeatOf : id;
    return this.ctx.registry.claim(root, this.ctx.ledger.agentOf(root));
  }

  /** Resolves when another server has recorded the run's end, or drives it the moment that server is gone. */
  private async watch(id: number): Promise<void> {
    const { ctx } = this;
    for (;;) {
      if (ctx.closed || !ctx.stillRunningOrQueued(id)) return;
      await new Promise((resolve) => setTimeout(resolve, WATCH_EVERY_MS).unref());
      if (ctx.drivers.has(id)) return ctx.drivers.get(id);
      if (ctx.ledger.experiment(id)?.state === 'running' && this.claim(id)) return this.drive(id);
    }
  }

  private async advance(id: number): Promise<void> {
    const { ctx } = this;
    for (;;) {
      const e = ctx.ledger.experiment(id)!;
      if (e.state !== 'running' || ctx.closed) return;
      if (e.phase === 'repeats') return this.repeatUntilDecided(id);
      const phase = e.phase as Phase;
      const result = await this.awaitStep(e, phase);
      if (ctx.closed || !ctx.stillRunning(id)) return;
      const session = ctx.ledger.session(e.sessionId)!;
      const config = ctx.configOf(session);
      // A GPU that failed under the step outranks whatever the step printed: its figures cannot be trusted.
      const fault = this.faults.get(id);
      this.faults.delete(id);
      if (!result) {
        const swept = await ctx.executor.sweep(e.runToken!);
        this.finish(id, 'crashed', fault ?? `the ${phase} supervisor died without a result (was the machine or ratchet killed?); ${swept} leftover process(es) were killed`);
        return;
      }
      if (phase === 'run') {
        ctx.ledger.recordRunFacts(id, {
          exitCode: result.exitCode,
          signal: result.signal,
          durationMs: result.durationMs,
          peakMemoryBytes: result.peakMemoryBytes,
          memoryMethod: `${result.memoryMethod} (containment: ${result.containment})`,
        });
        if (config.decision.prune) recordCurve(ctx, e, config);
      }
      if (fault) return void this.finish(id, 'crashed', fault);
      const tampered = phase === 'run' ? await this.restoreTamperedPins(e) : [];
      const pruned = result.cancelled ? ctx.ledger.experiment(id)!.pruneRequested : null;
      const failure = pruned ? { state: 'pruned' as const, reason: `pruned: ${pruned}` } : judge(result, phase, config);
      if (failure) return void this.finish(id, failure.state, failure.reason);
      if (tampered.length) {
        return void this.finish(id, 'crashed', `the run modified protected file(s) ${tampered.join(', ')} in the repo; they were restored to their pinned content and the run is not trusted`);
      }
      if (phase === 'run' && config.evaluate) {
        await this.launch(ctx.ledger.experiment(id)!, config, 'evaluate');
        continue; // follow the evaluate step too
      }
      if (!this.measure(id, config)) return;
      const measured = ctx.ledger.experiment(id)!;
      if (!needsRepeats(measured, config)) {
        this.finish(id, 'measured', null);
        if (measured.kind === 'baseline') this.adoptBaseline(measured);
        return;
      }
      ctx.ledger.markPhase(id, 'repeats');
    }
  }

  /** Resolves with the step's result the moment its supervisor records it (null: it died without one). */
  private async awaitStep(e: ExperimentRow, phase: Phase): Promise<RunResult | null> {
    const running = this.stepOf(e, phase);
    const pruner = phase === 'run' ? prunerFor(this.ctx, e, () => running.cancel()) : null;
    // With pruning on, the curve is checked four times a second, so even a short run can be stopped early.
    const timer = pruner ? setInterval(() => this.ctx.stillRunning(e.id) && pruner(), PRUNE_EVERY_MS) : null;
    // A GPU that fails under the step stops it; advance() then records the step crashed with why.
    const sampler = this.pool.samplerFor(e, phase, (reason) => {
      this.faults.set(e.id, reason);
      running.cancel();
    });
    sampler?.start();
    try {
      return await running.done;
    } finally {
      if (timer) clearInterval(timer);
      await sampler?.stop();
      this.steps.delete(e.id);
    }
  }

  private stepOf(e: ExperimentRow, phase: Phase): RunningStep {
    const known = this.steps.get(e.id);
    if (known && known.token === e.runToken) return known;
    const step = this.ctx.executor.reattach({ token: e.runToken!, supervisorPid: e.supervisorPid ?? 0, resultPath: join(this.ctx.runDir(e.id), `${phase}.result.json`) });
    this.steps.set(e.id, step);
    return step;
  }

  /** Asks the step in progress to stop; false when none is running. */
  cancelStep(e: ExperimentRow): boolean {
    if (!e.runToken) return false;
    const phase = e.phase === 'evaluate' ? 'evaluate' : 'run';
    return this.stepOf(e, phase).cancel();
  }

  /**
   * Without a sandbox a run can still reach the repo; protected files it changed there are put back
   * and the run is not trusted. Inside a sandbox the repo is not even visible.
   */
  private async restoreTamperedPins(e: ExperimentRow): Promise<string[]> {
    const { ctx } = this;
    const session = ctx.ledger.session(e.sessionId)!;
    const { config, pins } = await ctx.pinned(session);
    if ((await ctx.executorFor(config).sandbox()).kind !== 'none') return [];
    const bad = await verifyPins(ctx.repo, pins, config.protected);
    if (!bad.length) return [];
    const paths = bad.map((v) => v.path);
    await restorePinned(ctx.repo, pins, join(ctx.stateDir, 'pins'), paths.filter((p) => pins.some((pin) => pin.path === p)));
    ctx.log.warn({ id: e.id, paths }, 'run tampered with protected files; restored');
    return paths;
  }

  /** Reads the figures and records the measurement; false when there was none (the experiment is then crashed). */
  private measure(id: number, config: Config): boolean {
    const { ctx } = this;
    const figures = figuresIn(ctx.runDir(id), config);
    if ('failure' in figures) {
      this.finish(id, 'crashed', figures.failure);
      return false;
    }
    const e = ctx.ledger.experiment(id)!;
    const host = e.host ?? 'unknown';
    const gpuModel = e.gpus?.model ?? null;
    ctx.ledger.recordMeasurement(id, {
      metric: figures.metric,
      secondary: figures.secondary,
      constraintChecks: figures.constraintChecks,
      metricLines: figures.metricLines,
      cases: figures.cases,
      samples: [
        { name: config.metric.name, value: figures.metric, source: config.evaluate ? 'evaluate' : 'run', host, gpuModel },
        ...Object.entries(figures.secondary).map(([name, value]) => ({ name, value, source: figures.sources[name]!, host, gpuModel })),
      ],
    });
    return true;
  }

  adoptBaseline(e: ExperimentRow): void {
    this.ctx.ledger.decide(e.id, { decision: 'kept', reason: 'baseline', forced: false });
    this.ctx.ledger.setBest(e.sessionId, e.id, e.commit!);
  }

  /** Records the end of an experiment (once), writes results.tsv and tidies its workspaces. */
  finish(id: number, state: FinalState, reason: string | null): ExperimentRow {
    const { ctx } = this;
    const before = ctx.ledger.experiment(id)!;
    if (before.state !== 'running' && before.state !== 'queued') {
      this.pool.releaseWhenDone(before);
      return before; // already recorded (e.g. cancelled)
    }
    const row = ctx.ledger.finish(id, state, reason);
    ctx.log.info({ id, state, metric: row.metric, reason }, 'experiment finished');
    this.pool.releaseWhenDone(row);
    this.tidyWorkspaces(row);
    ctx.writeResults(ctx.ledger.session(row.sessionId)!);
    return row;
  }

  /** A failed run's workspace is kept for inspection (the newest keepCrashed of them); every other one goes. */
  private tidyWorkspaces(row: ExperimentRow): void {
    const { ctx } = this;
    const failed = row.state === 'crashed' || row.state === 'timed_out';
    if (!failed) {
      ctx.workspaces.remove(row.id, 'run');
      ctx.workspaces.remove(row.id, 'evaluate');
      return;
    }
    const config = ctx.configOf(ctx.ledger.session(row.sessionId)!);
    ctx.ledger.keepWorkspace(row.id, ctx.workspaces.pathOf(row.id, row.phase === 'evaluate' ? 'evaluate' : 'run'));
    const keep = new Set([...ctx.ledger.unfinishedExperiments().map((e) => e.id), ...ctx.ledger.keptWorkspaces(config.workspaces.keepCrashed)]);
    ctx.workspaces.prune(keep);
  }
}

/** Calibration runs for the baseline; interleaved re-measurements of candidate and best under `significant`. */
function needsRepeats(e: ExperimentRow, config: Config): boolean {
  if (e.kind === 'baseline') return baselineRepeatsOf(config) > 1;
  return e.kind === 'candidate' && config.decision.rule === 'significant';
}

function describeFailure(err: unknown): string {
  if (isRatchetError(err)) return `${err.message} Next: ${err.hint}`;
  const code = (err as NodeJS.ErrnoException)?.code;
  const message = (err as Error)?.message ?? String(err);
  if (code === 'ENOSPC' || code === 'SQLITE_FULL' || /ENOSPC|database or disk is full/.test(message)) {
    return `the disk is full (${message}); free space on the repo's disk, then run the experiment again`;
  }
  return message;
}

