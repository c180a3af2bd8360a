// The research loop, top to bottom: start a session → run a candidate → measure it → keep or revert.
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import picomatch from 'picomatch';
import { loadConfig, parseConfig, baselineRepeatsOf, CONFIG_FILE, type Config } from './config.js';
import { RatchetError, isRatchetError } from './errors.js';
import { Git } from './git.js';
import { Ledger, ledgerPath, type ExperimentRow, type ExperimentState, type SessionRow } from './ledger.js';
import { readLogPage, type LogPage } from './log-reader.js';
import { parseMetrics, readMetricText } from './metric.js';
import { checkEditSurface, describeViolations, pinProtected, restorePinned, savePinnedContent, verifyPins, type Pin } from './surface.js';
import { chooseGpus, gpuEnv, listGpus, type Gpu } from './gpu.js';
import { startRun, readRunResult, waitForRunResult, cancelRun, isSupervisorAlive, sweepRun, readLogTail } from './runner/runner.js';
import type { RunResult } from './runner/run-spec.js';
import { acquireServerLock, releaseServerLock, type LockHolder } from './server-lock.js';
import type { ConstraintCheck, DecisionReport, ExperimentView, MetricReport, Noise, SessionView, Status } from './views.js';
import { checkPrune, criticalValue, decide, pruneMargin, minimumDetectableEffect, nextSide, pooledNoise, summarize, type PooledNoise } from './statistics.js';
import { ProgressTail, progressRegex } from './progress.js';
import type { Measurement } from './ledger.js';

export const DEFAULT_WAIT_SECONDS = 45;
export const MAX_WAIT_SECONDS = 50;
const CRASH_TAIL_LINES = 50;
const PROGRESS_EVERY_MS = 3_000;

export interface LoopOptions {
  repo: string;
  logger: Logger;
  /** nvidia-smi binary; tests point this at a fake that replays real output. */
  nvidiaSmi?: string;
  containment?: 'auto' | 'cgroup' | 'proc';
}

export interface Progress {
  elapsedSeconds: number;
  budgetSeconds: number;
  phase: string;
  lastLogLine: string | null;
}

type Phase = 'run' | 'evaluate';

export interface RevertResult {
  experiment: ExperimentView | null;
  resetTo: string;
  removedUntracked: string[];
  savedWorktree: string | null;
}

export class ResearchLoop {
  readonly repo: string;
  readonly stateDir: string;
  private readonly log: Logger;
  private readonly git: Git;
  private ledgerHandle: Ledger | null = null;
  /** One driver per in-flight experiment: it follows the run to its result and records it. */
  private readonly drivers = new Map<number, Promise<void>>();
  private closed = false;
  /** Set when another live server drives this repo: this one answers reads only. */
  private heldBy: LockHolder | null = null;

  constructor(private readonly opts: LoopOptions) {
    this.repo = opts.repo;
    this.stateDir = join(opts.repo, '.ratchet');
    this.log = opts.logger;
    this.git = new Git(opts.repo);
  }

  get ledger(): Ledger {
    if (!this.ledgerHandle) {
      mkdirSync(this.stateDir, { recursive: true });
      this.ledgerHandle = new Ledger(ledgerPath(this.repo));
    }
    return this.ledgerHandle;
  }

  get resultsTsvPath(): string {
    return join(this.stateDir, 'results.tsv');
  }

  // Tool calls arrive concurrently (agents do send parallel calls); every call that changes git or
  // the ledger runs alone, so checks like "nothing is running" still hold when it acts on them.
  private queue: Promise<unknown> = Promise.resolve();

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  startSession(input: { tag?: string }): Promise<{ session: SessionView; baseline: ExperimentView; warnings: string[] }> {
    return this.exclusive(() => this.startSessionNow(input));
  }

  runExperiment(input: { description: string; hypothesis?: string }): Promise<ExperimentView> {
    return this.exclusive(() => this.runExperimentNow(input));
  }

  keep(input: { id: number; force?: boolean; reason?: string }): Promise<{ experiment: ExperimentView; session: SessionView }> {
    return this.exclusive(() => this.keepNow(input));
  }

  revert(input: { id?: number }): Promise<RevertResult> {
    return this.exclusive(() => this.revertNow(input));
  }

  cancelExperiment(id: number): Promise<ExperimentView> {
    return this.exclusive(() => this.cancelExperimentNow(id));
  }

  /** Claims the repo for this server; returns the other live server's pid if it already drives it. */
  claim(): LockHolder | null {
    mkdirSync(this.stateDir, { recursive: true });
    this.heldBy = acquireServerLock(this.lockPath);
    return this.heldBy;
  }

  /** .ratchet/ holds the server log from the first start, so it is kept out of `git status` from then on. */
  async excludeStateDir(): Promise<void> {
    await this.git.excludeFromGit('/.ratchet/');
  }

  private get lockPath(): string {
    return join(this.stateDir, 'server.lock');
  }

  private requireDriver(): void {
    if (this.heldBy) {
      throw new RatchetError(
        'locked',
        `Another ratchet server (pid ${this.heldBy.pid}, since ${this.heldBy.since}) is driving this repo; this one can only read.`,
        'Use the agent session that started the loop, or stop the other one (it exits when its client closes) and restart this server.',
      );
    }
  }

  // ---------------------------------------------------------------- start

  private async startSessionNow(input: { tag?: string }): Promise<{ session: SessionView; baseline: ExperimentView; warnings: string[] }> {
    this.requireDriver();
    const config = loadConfig(this.repo);
    await this.git.assertUsable();
    const inFlight = this.ledger.unfinishedExperiments()[0];
    if (inFlight) throw busyError(inFlight.id);
    const active = this.ledger.activeSession();
    const undecided = active ? this.awaitingDecision(active) : undefined;
    if (undecided) {
      throw new RatchetError(
        'awaiting_decision',
        `Experiment ${undecided.id} of session ${active!.tag} is measured and awaits a decision; a new session would carry its edit into the new baseline.`,
        `Call keep {id: ${undecided.id}} or revert {id: ${undecided.id}} first, then start_session.`,
      );
    }

    const tag = input.tag ?? (await this.freeDefaultTag());
    const branch = `ratchet/${tag}`;
    if (!(await this.git.isValidBranchName(branch))) {
      throw new RatchetError('invalid_argument', `"${tag}" cannot be part of a git branch name.`, 'Use letters, digits, "-" and "_", e.g. "nov23" or "lr-sweep".');
    }
    if (this.ledger.sessionByTag(tag) || (await this.git.refExists(`refs/heads/${branch}`))) {
      throw new RatchetError('session_exists', `Tag "${tag}" is taken: branch ${branch} or its session already exists.`, 'Pick a fresh tag, or omit it to get a free date-based one.');
    }
    await this.requireGpuIfConfigured(config);

    await this.git.excludeFromGit('/.ratchet/');
    const head = await this.git.head();
    const currentPins = await pinProtected(this.repo, config.protected);
    const { changed, violations } = await checkEditSurface({
      repo: this.repo,
      baseCommit: head,
      editable: config.editable,
      pins: currentPins,
      protectedGlobs: config.protected,
    });
    // A pin taken now would bless an uncommitted protected file that the baseline commit lacks.
    const isProtected = picomatch([CONFIG_FILE, ...config.protected], { dot: true });
    for (const c of changed) {
      if (isProtected(c.path) && !violations.some((v) => v.path === c.path)) {
        violations.push({ path: c.path, reason: 'protected_changed', detail: 'protected file with uncommitted changes' });
      }
    }
    if (violations.length) {
      throw new RatchetError(
        'surface_violation',
        `The working tree has uncommitted changes outside the edit surface, so the baseline would not be a committed state:\n${violations.map((v) => `  - ${v.path}: ${v.detail}`).join('\n')}`,
        'Commit those changes if they belong to the experiment\'s setup (protected files are pinned as committed), or stash them; then call start_session again.',
        { violations },
      );
    }

    await this.git.createBranch(branch);
    let best = head;
    if (changed.length) {
      // Edits inside the surface become the baseline commit, so the baseline measures exactly what the branch holds.
      const snap = await this.git.snapshot(head, `ratchet: baseline for ${tag} (edits present at session start)`, this.scratchDir);
      await this.git.advanceBranch(branch, snap.commit, head);
      best = snap.commit;
    }
    const pins = await pinProtected(this.repo, config.protected);
    await savePinnedContent(this.repo, pins, join(this.stateDir, 'pins'));

    const session = this.ledger.createSession({
      tag,
      branch,
      baseCommit: head,
      bestCommit: best,
      config: JSON.stringify(config),
      pins: JSON.stringify(pins),
    });
    this.log.info({ tag, branch, best }, 'session started');
    const baseline = this.ledger.createExperiment({
      sessionId: session.id,
      kind: 'baseline',
      commit: best,
      parentCommit: best,
      description: 'baseline',
      host: hostname(),
    });
    await this.git.setRef(`refs/ratchet/${tag}/${baseline.id}`, best);
    const started = await this.launch(baseline, config, 'run', await this.allocateGpus(config));
    const warnings = await this.globWarnings(config, pins);
    if (warnings.length) this.log.warn({ warnings }, 'config globs that match nothing');
    return { session: this.sessionView(this.ledger.session(session.id)!), baseline: this.view(started), warnings };
  }

  /** A glob that matches nothing is usually a typo, and a protected one then pins nothing. */
  private async globWarnings(config: Config, pins: Pin[]): Promise<string[]> {
    const files = await this.git.listFiles();
    const warnings: string[] = [];
    for (const glob of config.protected) {
      const matches = picomatch(glob, { dot: true });
      if (!pins.some((p) => matches(p.path))) warnings.push(`protected glob "${glob}" matches no file, so it pins nothing; check it for a typo.`);
    }
    for (const glob of config.editable) {
      const matches = picomatch(glob, { dot: true });
      if (!files.some((f) => matches(f))) warnings.push(`editable glob "${glob}" matches no file yet; the agent can only create files there.`);
    }
    return warnings;
  }

  // ---------------------------------------------------------------- run

  private async runExperimentNow(input: { description: string; hypothesis?: string }): Promise<ExperimentView> {
    this.requireDriver();
    const { session, config } = this.requireSession();
    const inFlight = this.ledger.unfinishedExperiments()[0];
    if (inFlight) throw busyError(inFlight.id);
    const pending = this.awaitingDecision(session);
    if (pending) {
      throw new RatchetError(
        'awaiting_decision',
        `Experiment ${pending.id} is measured and awaits a decision.`,
        `Call keep {id: ${pending.id}} if read_metric shows it improved, otherwise revert {id: ${pending.id}}; then run the next experiment.`,
      );
    }
    await this.requireOnBranch(session);

    const pins = JSON.parse(session.pins) as Pin[];
    const { changed, violations } = await checkEditSurface({
      repo: this.repo,
      baseCommit: session.bestCommit,
      editable: config.editable,
      pins,
      protectedGlobs: config.protected,
    });
    const candidate = {
      sessionId: session.id,
      kind: 'candidate' as const,
      parentCommit: session.bestCommit,
      description: input.description,
      hypothesis: input.hypothesis ?? null,
    };
    if (violations.length) {
      const refused = this.ledger.createExperiment({
        ...candidate,
        state: 'refused',
        phase: 'done',
        reason: `edit surface violated by ${violations.map((v) => v.path).join(', ')}`,
        violations: JSON.stringify(violations),
        endedAt: new Date().toISOString(),
      });
      this.log.warn({ id: refused.id, violations }, 'experiment refused');
      throw new RatchetError(
        'surface_violation',
        `Experiment ${refused.id} refused: the change touches files outside the edit surface. Nothing was committed or run, and your working tree is as you left it.\n${describeViolations(violations)}`,
        `Undo the listed changes (only ${config.editable.join(', ')} may change; protected files must match their pinned content), then call run_experiment again.`,
        { experimentId: refused.id, violations },
      );
    }
    if (!changed.length) {
      throw new RatchetError(
        'invalid_argument',
        'The working tree equals the best commit: there is nothing to try.',
        `Edit ${config.editable.join(', ')} with your next idea, then call run_experiment.`,
      );
    }

    const gpus = await this.allocateGpus(config);
    const e = this.ledger.createExperiment({ ...candidate, host: hostname() });
    const message = `ratchet #${e.id}: ${input.description}${input.hypothesis ? `\n\n${input.hypothesis}` : ''}\n\nRatchet-Experiment: ${e.id}`;
    const { commit } = await this.git.snapshot(session.bestCommit, message, this.scratchDir);
    await this.git.setRef(`refs/ratchet/${session.tag}/${e.id}`, commit);
    // The snapshot re-reads the tree: a write that landed after the check must not ride along.
    const late = await this.commitViolations(session.bestCommit, commit, config);
    if (late.length) {
      this.ledger.updateExperiment(e.id, {
        commit,
        state: 'refused',
        phase: 'done',
        reason: `files outside the edit surface changed while the candidate was committed: ${late.join(', ')}`,
        violations: JSON.stringify(late.map((path) => ({ path, reason: 'outside_surface' }))),
        endedAt: new Date().toISOString(),
      });
      throw new RatchetError(
        'surface_violation',
        `Experiment ${e.id} refused: ${late.join(', ')} changed while the candidate was being committed (is something writing into the repo?). Nothing was run; the branch did not move.`,
        'Stop whatever writes those files (or add its outputs to .gitignore), undo the changes, then call run_experiment again.',
        { experimentId: e.id, paths: late },
      );
    }
    const diffStats = await this.git.diffStats(session.bestCommit, commit);
    const committed = this.ledger.updateExperiment(e.id, { commit, diffStats: JSON.stringify(diffStats) });
    return this.view(await this.launch(committed, config, 'run', gpus));
  }

  /** Hands one phase of an experiment to a detached supervisor, then follows it in the background. */
  private async launch(e: ExperimentRow, config: Config, phase: Phase, gpus?: { indices: number[]; model: string | null } | null): Promise<ExperimentRow> {
    const dir = this.runDir(e.id);
    mkdirSync(dir, { recursive: true });
    const step = phase === 'run' ? config.run : config.evaluate!;
    const assigned = gpus === undefined ? (e.gpus ? (JSON.parse(e.gpus) as { indices: number[] }).indices : null) : gpus?.indices ?? null;
    const token = `${e.id}-${phase}-${randomBytes(6).toString('hex')}`;
    const env: Record<string, string> = {
      ...step.env,
      RATCHET_EXPERIMENT_ID: String(e.id),
      RATCHET_PHASE: phase,
    };
    if (assigned) Object.assign(env, gpuEnv(assigned));
    const logPath = join(dir, `${phase}.log`);
    if (phase === 'run') await this.clearOutputs(config);
    // The token is on record before anything is spawned, so a crash here still lets recovery sweep it.
    this.ledger.updateExperiment(e.id, { runToken: token, supervisorPid: null, phase });
    // A run could have planted the evaluate log in advance; each phase starts from an empty one.
    rmSync(logPath, { force: true });
    try {
      const { supervisorPid } = await startRun({
        command: step.command,
        cwd: this.repo,
        env,
        budgetSeconds: step.budgetSeconds,
        graceSeconds: step.graceSeconds,
        logPath,
        resultPath: join(dir, `${phase}.result.json`),
        maxLogBytes: Math.round((config.run.maxLogMegabytes ?? 256) * 1024 * 1024),
        containment: this.opts.containment ?? 'auto',
        token,
      });
      const updated = this.ledger.updateExperiment(e.id, {
        state: 'running',
        phase,
        runToken: token,
        supervisorPid,
        logPath: e.logPath ?? join(dir, 'run.log'),
        startedAt: e.startedAt ?? new Date().toISOString(),
        ...(gpus !== undefined ? { gpus: gpus ? JSON.stringify(gpus) : null } : {}),
      });
      this.log.info({ id: e.id, phase, supervisorPid, gpus: assigned }, 'run started');
      void this.drive(e.id);
      return updated;
    } catch (err) {
      this.log.error({ err, id: e.id }, 'could not start the run');
      return this.finish(e.id, 'crashed', `ratchet could not start the ${phase} command: ${(err as Error).message}`);
    }
  }

  /** Deletes last run's outputs so an evaluate step can never score a previous run's checkpoint. */
  private async clearOutputs(config: Config): Promise<void> {
    if (!config.run.outputs.length) return;
    const isOutput = picomatch(config.run.outputs, { dot: true });
    const isProtected = picomatch([CONFIG_FILE, ...config.protected], { dot: true });
    const stale = (await this.git.untrackedFiles()).filter((p) => isOutput(p) && !isProtected(p) && !p.startsWith('.ratchet/'));
    for (const p of stale) rmSync(join(this.repo, p), { force: true });
    if (stale.length) this.log.debug({ count: stale.length }, 'cleared run outputs');
  }

  // ---------------------------------------------------------------- measure

  /** Follows an experiment until it is recorded; idempotent, and safe to call again after a restart. */
  private drive(id: number): Promise<void> {
    const existing = this.drivers.get(id);
    if (existing) return existing;
    const driver = this.advance(id)
      .catch((err) => {
        this.log.error({ err, id }, 'driver failed');
        try {
          this.finish(id, 'crashed', `ratchet failed while recording the run: ${(err as Error).message}`);
        } catch (inner) {
          // The ledger itself failed (disk full?): leave the row for recovery at the next start.
          this.log.error({ err: inner, id }, 'could not record the failure');
        }
      })
      .finally(() => this.drivers.delete(id));
    this.drivers.set(id, driver);
    return driver;
  }

  private async advance(id: number): Promise<void> {
    for (;;) {
      const e = this.ledger.experiment(id)!;
      if (e.state !== 'running' || this.closed) return;
      if (e.phase === 'repeats') return this.repeatUntilDecided(id);
      const phase = e.phase as Phase;
      const result = await this.awaitPhase(e, phase);
      if (this.closed || !this.stillRunning(id)) return;
      const config = sessionConfig(this.ledger.session(e.sessionId)!);
      // Pins are checked after every run outcome: a run that crashed after overwriting an
      // ignored protected file would otherwise leave every later run refused.
      const tampered = phase === 'run' ? await this.restoreTamperedPins(e) : [];
      if (!this.stillRunning(id)) return;
      if (!result) {
        const swept = await sweepRun(e.runToken!);
        this.finish(id, 'crashed', `the ${phase} supervisor died without a result (was the machine or ratchet killed?); ${swept} leftover process(es) were killed`);
        return;
      }
      if (phase === 'run') {
        this.ledger.updateExperiment(id, {
          exitCode: result.exitCode,
          signal: result.signal,
          durationMs: result.durationMs,
          peakMemoryBytes: result.peakMemoryBytes,
          memoryMethod: `${result.memoryMethod} (containment: ${result.containment})`,
        });
      }
      if (phase === 'run' && config.decision.prune) this.recordCurve(e);
      const pruneReason = result.cancelled ? this.ledger.experiment(id)!.reason : null;
      const failure = pruneReason?.startsWith('pruned:') ? { state: 'pruned' as const, reason: pruneReason } : judge(result, phase, config);
      if (failure) {
        this.finish(id, failure.state, failure.reason);
        return;
      }
      if (tampered.length) {
        this.finish(id, 'crashed', `the run modified protected file(s) ${tampered.join(', ')}; they were restored to their pinned content and the run is not trusted`);
        return;
      }
      if (phase === 'run' && config.evaluate) {
        await this.launch(this.ledger.experiment(id)!, config, 'evaluate');
        continue; // follow the evaluate phase too
      }
      if (!this.measure(id, config, phase)) return;
      const measured = this.ledger.experiment(id)!;
      if (!this.needsRepeats(measured, config)) {
        this.finish(id, 'measured', null);
        if (measured.kind === 'baseline') this.adoptBaseline(measured);
        return;
      }
      this.ledger.updateExperiment(id, { phase: 'repeats' });
    }
  }

  /** Calibration runs for the baseline; interleaved re-measurements of candidate and best under `significant`. */
  private needsRepeats(e: ExperimentRow, config: Config): boolean {
    if (e.kind === 'baseline') return baselineRepeatsOf(config) > 1;
    return e.kind === 'candidate' && config.decision.rule === 'significant';
  }

  private adoptBaseline(e: ExperimentRow): void {
    this.ledger.updateExperiment(e.id, { decision: 'kept', decisionReason: 'baseline' });
    this.ledger.setBest(e.sessionId, e.id, e.commit!);
  }

  /** A cancel can land while the driver awaits; it must never be overwritten by a later result. */
  private stillRunning(id: number): boolean {
    return this.ledger.experiment(id)?.state === 'running';
  }

  private async awaitPhase(e: ExperimentRow, phase: Phase): Promise<RunResult | null> {
    const resultPath = join(this.runDir(e.id), `${phase}.result.json`);
    const pruner = phase === 'run' ? this.prunerFor(e) : null;
    for (;;) {
      // With pruning on, the curve is checked four times a second, so a short run is still stopped early.
      const result = await waitForRunResult(resultPath, { timeoutMs: pruner ? 250 : 1_000, tickMs: 100 });
      if (result || this.closed) return result;
      if (pruner && this.stillRunning(e.id)) pruner();
      if (!isSupervisorAlive(e.supervisorPid!, e.runToken!)) return readRunResult(resultPath);
    }
  }

  // ---------------------------------------------------------------- pruning

  /**
   * With decision.prune, a candidate's run is watched while it runs: once past the warm-up, an
   * intermediate value clearly worse than the best's runs at the same step stops it as pruned.
   * The best's own runs are never pruned: they are the reference.
   */
  private prunerFor(e: ExperimentRow): (() => void) | null {
    const session = this.ledger.session(e.sessionId)!;
    const config = sessionConfig(session);
    if (!config.decision.prune) return null;
    const root = e.repeatOf !== null ? this.ledger.experiment(e.repeatOf)! : e;
    if (root.kind !== 'candidate' || e.commit !== root.commit) return null;
    const tail = new ProgressTail(join(this.runDir(e.id), 'run.log'), progressRegex(config.metric.name, config.metric.progressPattern));
    // The runs that made the best win read luckier than it is (the winner's curse); its calibration and
    // later re-measurements do not. Until the best has been re-measured, nothing is pruned.
    const best = this.bestOf(session);
    const won = best?.kind === 'candidate' ? best.id : null;
    const references = this.ledger
      .measurements(session.id, config.metric.name)
      .filter((m) => m.commit === root.parentCommit && m.root !== won)
      .map((m) => this.ledger.progress(m.run))
      .filter((curve) => curve.length > 0);
    if (!references.length) return null;
    const noise = noiseOf(this.comparable(session, config, machineOf(root)));
    return () => {
      if (!tail.read().length) return;
      const check = checkPrune({
        curve: tail.points,
        references,
        warmupFraction: config.decision.pruneWarmup,
        margin: pruneMargin(noise, config.decision, references.length),
        direction: config.metric.direction,
      });
      if (!check?.prune) return;
      const now = this.ledger.experiment(e.id)!;
      // Recorded before the kill, so a restart in between still reads it as pruned, not cancelled.
      this.ledger.updateExperiment(e.id, { reason: `pruned: ${check.why}` });
      this.log.info({ id: e.id, step: check.step }, 'pruned');
      if (now.supervisorPid && now.runToken) cancelRun(now.supervisorPid, now.runToken);
    };
  }

  /** Stores a finished run's learning curve: the reference later runs are pruned against. */
  private recordCurve(e: ExperimentRow): void {
    const config = sessionConfig(this.ledger.session(e.sessionId)!);
    if (this.ledger.progress(e.id).length) return;
    const points = new ProgressTail(join(this.runDir(e.id), 'run.log'), progressRegex(config.metric.name, config.metric.progressPattern)).readAll();
    if (points.length) this.ledger.addProgress(e.id, points);
  }

  // ---------------------------------------------------------------- repeats

  /**
   * Runs more measurements until the experiment is decided: the baseline's calibration runs, or a
   * candidate and the best interleaved (ABBA) until the verdict is clear or maxRepeats pairs are
   * spent. Each repeat is an ordinary run with its own row, budget, kill and log.
   */
  private async repeatUntilDecided(rootId: number): Promise<void> {
    try {
      for (;;) {
        if (this.closed || !this.stillRunning(rootId)) return;
        const root = this.ledger.experiment(rootId)!;
        const session = this.ledger.session(root.sessionId)!;
        const config = sessionConfig(session);
        const runs = this.ledger.runsOf(rootId);
        const active = runs.find((r) => r.id !== rootId && (r.state === 'running' || r.state === 'queued'));
        if (active?.state === 'queued') {
          // Only a restart between recording a repeat and starting it leaves one queued: it never ran.
          this.finish(active.id, 'cancelled', 'ratchet restarted before this repeat started');
          continue;
        }
        if (active) {
          await this.drive(active.id);
          continue;
        }
        const failed = runs.find((r) => r.id !== rootId && r.state !== 'measured' && r.state !== 'cancelled');
        if (failed && root.kind !== 'baseline' && failed.commit === root.commit) {
          this.finish(rootId, failed.state, `its repeat #${failed.id} ${failed.state}: ${failed.reason ?? 'no reason recorded'}`);
          return;
        }
        if (root.kind === 'baseline') {
          if (failed || runs.length >= baselineRepeatsOf(config)) return this.concludeBaseline(root, runs, failed);
        } else {
          const report = this.decisionReport(root, session, config, { final: !!failed });
          if (report.verdict !== 'pending') return await this.concludeCandidate(root, report, failed);
        }
        const side = root.kind === 'baseline' ? 'candidate' : nextSide(runs.length);
        const target = side === 'candidate' ? root.commit! : root.parentCommit;
        await this.prepareWorkingTree(root, session, config, this.inWorkingTree(root), target);
        if (!this.stillRunning(rootId)) return;
        const repeat = this.ledger.createExperiment({
          sessionId: session.id,
          kind: 'repeat',
          repeatOf: rootId,
          commit: target,
          parentCommit: root.parentCommit,
          description: `${root.kind === 'baseline' ? 'calibration' : side === 'best' ? 'best re-measured' : 'candidate repeated'} for #${rootId}`,
          host: hostname(),
        });
        const gpus = root.gpus ? (JSON.parse(root.gpus) as { indices: number[]; model: string | null }) : null;
        await this.launch(repeat, config, 'run', gpus);
        await this.drive(repeat.id);
      }
    } finally {
      if (!this.closed && !this.stillRunning(rootId)) await this.restoreCandidateTree(rootId).catch((err) => this.log.error({ err, id: rootId }, 'could not restore the working tree'));
    }
  }

  /**
   * The commit whose editable files the working tree holds for an experiment in repeats: what the
   * loop last put there, or after a restart what its latest run measured.
   */
  private inWorkingTree(root: ExperimentRow): string {
    const runs = this.ledger.runsOf(root.id);
    return this.materialized.get(root.id) ?? runs[runs.length - 1]!.commit!;
  }

  private readonly materialized = new Map<number, string>();

  /** Editable paths the repeats rewrite: the candidate's change plus anything edited since the last run. */
  private async prepareWorkingTree(root: ExperimentRow, session: SessionRow, config: Config, current: string, target: string): Promise<void> {
    const edits = await this.saveEditsDuring(root, session, config, current);
    const paths = new Set([...(await this.surfacePaths(root.parentCommit, root.commit!, config)), ...edits]);
    if (target !== current || edits.length) await this.git.materialize(target, [...paths], this.scratchDir);
    this.materialized.set(root.id, target);
  }

  /** Edits made while an experiment was being measured would ride into the next run: they are saved under a ref, never lost. */
  private async saveEditsDuring(root: ExperimentRow, session: SessionRow, config: Config, expected: string): Promise<string[]> {
    const snap = await this.git.snapshot(expected, `ratchet: edits made while #${root.id} was being measured`, this.scratchDir);
    if (snap.tree === (await this.git.treeOf(expected))) return [];
    const ref = `refs/ratchet/${session.tag}/edits-during-${root.id}-${Date.now()}`;
    await this.git.setRef(ref, snap.commit);
    this.log.warn({ id: root.id, ref }, 'files were edited while repeats ran; saved under a ref');
    return this.surfacePaths(expected, snap.commit, config);
  }

  private async surfacePaths(from: string, to: string, config: Config): Promise<string[]> {
    const inSurface = surfaceMatcher(config);
    return (await this.changedPaths(from, to)).filter(inSurface);
  }

  /** After the last repeat the working tree holds the experiment's own commit again, ready for keep or revert. */
  private async restoreCandidateTree(rootId: number): Promise<void> {
    const root = this.ledger.experiment(rootId)!;
    if (!root.commit) return;
    const current = this.inWorkingTree(root);
    const session = this.ledger.session(root.sessionId)!;
    await this.prepareWorkingTree(root, session, sessionConfig(session), current, root.commit);
    this.materialized.delete(rootId);
  }

  private concludeBaseline(root: ExperimentRow, runs: ExperimentRow[], failed: ExperimentRow | undefined): void {
    const config = sessionConfig(this.ledger.session(root.sessionId)!);
    const values = this.ledger.measurements(root.sessionId, config.metric.name).filter((m) => m.root === root.id).map((m) => m.value);
    this.ledger.updateExperiment(root.id, { metric: summarize(values).mean });
    this.finish(root.id, 'measured', failed ? `calibration stopped at ${values.length} run(s): repeat #${failed.id} ${failed.state}` : null);
    this.adoptBaseline(this.ledger.experiment(root.id)!);
    this.log.info({ id: root.id, runs: runs.length }, 'baseline calibrated');
  }

  private async concludeCandidate(root: ExperimentRow, report: DecisionReport, failed: ExperimentRow | undefined): Promise<void> {
    const note = failed ? ` The best's repeat #${failed.id} ${failed.state}, so the decision uses the runs before it.` : '';
    this.ledger.updateExperiment(root.id, {
      metric: report.candidate.mean,
      verdict: JSON.stringify({ ...report, why: report.why + note }),
    });
    this.finish(root.id, 'measured', null);
    this.log.info({ id: root.id, verdict: report.verdict, runs: report.runsSpent }, 'decided');
  }

  // ---------------------------------------------------------------- statistics

  /** The session's measurements taken on one machine (host and GPU model). */
  private comparable(session: SessionRow, config: Config, machine: Machine): Measurement[] {
    return this.ledger.measurements(session.id, config.metric.name).filter((m) => m.host === machine.host && m.gpuModel === machine.gpuModel);
  }

  private decisionReport(root: ExperimentRow, session: SessionRow, config: Config, opts: { final?: boolean } = {}): DecisionReport {
    const all = this.comparable(session, config, machineOf(root));
    const mine = all.filter((m) => m.root === root.id);
    const candidate = mine.filter((m) => m.commit === root.commit).map((m) => m.value);
    const fresh = mine.filter((m) => m.commit === root.parentCommit).map((m) => m.value);
    const rule = config.decision;
    const noise = noiseOf(all);
    const runsSpent = this.ledger.runsOf(root.id).filter((r) => r.id === root.id || (r.state !== 'queued' && r.state !== 'running')).length;
    const side = (commit: string, values: number[]) => ({ commit, n: values.length, mean: summarize(values).mean, interval: meanInterval(values, noise, rule) });

    if (rule.rule === 'greedy') {
      const best = this.bestOf(session);
      const bestValues = best && best.metric !== null ? [best.metric] : [];
      const cmp = root.metric === null ? null : compare(root.metric, best, config.metric.direction);
      const sign = config.metric.direction === 'minimize' ? -1 : 1;
      const effect = cmp?.delta === null || cmp === null ? null : sign * cmp.delta;
      return {
        rule: 'greedy',
        runs: root.metric === null ? [] : [{ id: root.id, side: 'candidate', value: root.metric }],
        verdict: cmp === null ? 'pending' : cmp.improved ? 'improved' : cmp.equal ? 'inconclusive' : 'worse',
        candidate: { commit: root.commit, n: root.metric === null ? 0 : 1, mean: root.metric, interval: null },
        best: { commit: best?.commit ?? null, n: bestValues.length, mean: best?.metric ?? null, interval: null },
        effect,
        effectInterval: null,
        relativeEffect: effect !== null && best?.metric ? effect / Math.abs(best.metric) : null,
        confidence: 0,
        conditionalPower: null,
        runsSpent,
        why: 'greedy rule: one run each, strictly better keeps',
      };
    }

    const cmp = decide({
      candidate,
      fresh,
      history: all.filter((m) => m.commit === root.parentCommit && m.root !== root.id).map((m) => m.value),
      noise,
      rule,
      direction: config.metric.direction,
      final: opts.final,
    });
    const runs = mine.map((m) => ({ id: m.run, side: m.commit === root.commit ? ('candidate' as const) : ('best' as const), value: m.value }));
    return {
      rule: 'significant',
      runs,
      verdict: cmp.verdict,
      candidate: side(root.commit!, candidate),
      best: side(root.parentCommit, fresh),
      effect: cmp.effect,
      effectInterval: cmp.interval,
      relativeEffect: cmp.relative,
      confidence: cmp.confidence || 1 - (1 - rule.confidence) / rule.maxRepeats,
      conditionalPower: cmp.conditionalPower,
      runsSpent,
      why: cmp.why,
    };
  }

  /** The noise as calibrated at session start, with the pooled figure and what it lets the session detect. */
  private noiseReport(session: SessionRow, config: Config): Noise | null {
    const baselineId = this.ledger.baselineId(session.id);
    const baseline = baselineId === null ? undefined : this.ledger.experiment(baselineId);
    if (!baseline) return null;
    const machine = machineOf(baseline);
    const all = this.comparable(session, config, machine);
    const s = summarize(all.filter((m) => m.root === baseline.id).map((m) => m.value));
    const noise = noiseOf(all);
    return {
      samples: s.n,
      mean: s.mean,
      sd: s.sd,
      mad: s.mad,
      cv: s.cv,
      pooledSd: Number.isFinite(noise.sd) ? noise.sd : null,
      df: noise.df,
      minDetectableEffect: minimumDetectableEffect(noise, config.decision),
      ...machine,
    };
  }

  private plateau(session: SessionRow, config: Config): Status['plateau'] {
    const window = config.decision.plateauWindow;
    const recent = this.ledger
      .listExperiments(session.id, { limit: window, offset: 0 })
      .rows.filter((e) => e.kind === 'candidate' && e.state !== 'running' && e.state !== 'queued' && e.state !== 'refused');
    let sinceKeep = 0;
    for (const e of recent) {
      if (e.decision === 'kept') break;
      sinceKeep++;
    }
    const best = this.bestOf(session);
    const noise = noiseOf(this.comparable(session, config, best ? machineOf(best) : { host: hostname(), gpuModel: null }));
    const effects = recent
      .map((e) => (e.verdict ? (JSON.parse(e.verdict) as DecisionReport).effect : null))
      .filter((x): x is number => x !== null);
    const mde = minimumDetectableEffect(noise, config.decision);
    let message: string | null = null;
    if (sinceKeep >= window) {
      message = `The last ${sinceKeep} experiments brought no kept improvement.`;
      if (mde !== null && effects.length && effects.every((x) => Math.abs(x) < mde)) {
        message += ` Every change among them moved ${config.metric.name} by less than the session can detect (${fmt(mde)}): try bolder changes, or raise maxRepeats.`;
      } else {
        message += ' Try a different direction, or stop here.';
      }
    }
    return { reached: message !== null, experimentsSinceKeep: sinceKeep, window, message };
  }

  private async restoreTamperedPins(e: ExperimentRow): Promise<string[]> {
    const session = this.ledger.session(e.sessionId)!;
    const pins = JSON.parse(session.pins) as Pin[];
    const config = sessionConfig(session);
    const bad = await verifyPins(this.repo, pins, config.protected);
    if (!bad.length) return [];
    const paths = bad.map((v) => v.path);
    await restorePinned(this.repo, pins, join(this.stateDir, 'pins'), paths);
    this.log.warn({ id: e.id, paths }, 'run tampered with protected files; restored');
    return paths;
  }

  /** Reads the metric (from the trusted evaluate output when configured) and records the measurement; false when there was none. */
  private measure(id: number, config: Config, phase: Phase): boolean {
    if (!this.stillRunning(id)) return false;
    const dir = this.runDir(id);
    const runText = readMetricText(join(dir, 'run.log'));
    const sourceText = phase === 'evaluate' ? readMetricText(join(dir, 'evaluate.log')) : runText;
    const extra = config.metric.constraints.map((c) => c.metric).filter((m) => m !== config.metric.name);
    const names = [...new Set([...config.metric.secondary, ...extra])];
    const spec = { name: config.metric.name, pattern: config.metric.pattern, secondary: names };
    const primary = parseMetrics(sourceText, spec);
    const fallback = phase === 'evaluate' ? parseMetrics(runText, { ...spec, name: '\0' }) : primary;
    const secondary: Record<string, number> = { ...fallback.secondary, ...primary.secondary };
    if (primary.value === null) {
      const where = phase === 'evaluate' ? 'the evaluate command' : 'the run';
      this.finish(
        id,
        'crashed',
        primary.line
          ? `${where}'s last ${config.metric.name} report is not a finite number: "${primary.line.trim().slice(0, 200)}"`
          : `${where} finished but printed no "${config.metric.name}: <number>" line (or METRIC ${config.metric.name}=<number>); read_log shows what it printed`,
      );
      return false;
    }
    const checks = checkConstraints(config, primary.value, secondary);
    const e = this.ledger.experiment(id)!;
    const { host, gpuModel } = machineOf(e);
    this.ledger.db.transaction(() => {
      this.ledger.addSample({ experimentId: id, name: config.metric.name, value: primary.value!, source: phase, host, gpuModel });
      for (const [name, value] of Object.entries(secondary)) {
        const source = phase === 'evaluate' && name in primary.secondary ? 'evaluate' : 'run';
        this.ledger.addSample({ experimentId: id, name, value, source, host, gpuModel });
      }
      this.ledger.updateExperiment(id, {
        metric: primary.value,
        secondary: JSON.stringify(secondary),
        constraintChecks: JSON.stringify(checks),
      });
    })();
    return true;
  }

  private finish(id: number, state: ExperimentState, reason: string | null): ExperimentRow {
    const current = this.ledger.experiment(id)!;
    if (current.state !== 'running' && current.state !== 'queued') return current; // already recorded (e.g. cancelled)
    const row = this.ledger.updateExperiment(id, { state, phase: 'done', reason, endedAt: new Date().toISOString() });
    this.log.info({ id, state, metric: row.metric, reason }, 'experiment finished');
    const session = this.ledger.session(row.sessionId)!;
    this.writeResults(session);
    return row;
  }

  // ---------------------------------------------------------------- wait and read

  async waitExperiment(id: number, waitSeconds = DEFAULT_WAIT_SECONDS, onProgress?: (p: Progress) => void): Promise<ExperimentView> {
    const e = this.requireExperiment(id);
    if (e.state === 'running') {
      const driver = this.heldBy ? this.pollUntilDone(id) : this.drive(id);
      const session = this.ledger.session(e.sessionId)!;
      const config = sessionConfig(session);
      const ticker = onProgress
        ? setInterval(() => {
            const now = this.ledger.experiment(id)!;
            const p = this.progressOf(this.activeRun(now), config);
            const runs = this.ledger.runsOf(id).length;
            onProgress(runs > 1 ? { ...p, phase: `${p.phase} (run ${runs} of this experiment)` } : p);
          }, PROGRESS_EVERY_MS)
        : null;
      try {
        await Promise.race([driver, sleep(clampWait(waitSeconds) * 1000)]);
      } finally {
        if (ticker) clearInterval(ticker);
      }
    }
    return this.view(this.ledger.experiment(id)!);
  }

  /** A read-only server watches the ledger that the driving server writes. */
  private async pollUntilDone(id: number): Promise<void> {
    while (!this.closed && this.ledger.experiment(id)!.state === 'running') await sleep(500);
  }

  /** The run actually in progress: an experiment measuring repeats is represented by its current repeat. */
  private activeRun(e: ExperimentRow): ExperimentRow {
    if (e.phase !== 'repeats') return e;
    return this.ledger.runsOf(e.id).find((r) => r.id !== e.id && (r.state === 'running' || r.state === 'queued')) ?? e;
  }

  private progressOf(e: ExperimentRow, config: Config): Progress {
    const phase = e.phase === 'evaluate' ? 'evaluate' : 'run';
    const started = e.startedAt ? Date.parse(e.startedAt) : Date.now();
    const log = join(this.runDir(e.id), `${phase}.log`);
    const last = existsSync(log) ? readLogTail(log, 1)[0] ?? null : null;
    return {
      elapsedSeconds: Math.round((Date.now() - started) / 1000),
      budgetSeconds: phase === 'evaluate' ? config.evaluate!.budgetSeconds : config.run.budgetSeconds,
      phase,
      lastLogLine: last,
    };
  }

  readMetric(id?: number): MetricReport {
    const { session, config } = this.requireSession();
    const e = id === undefined ? this.ledger.latestExperiment(session.id) : this.requireExperiment(id);
    if (!e) throw new RatchetError('unknown_experiment', 'This session has no experiment yet.', 'Call start_session, or run_experiment after editing.');
    const best = this.bestOf(session);
    const comparison = e.metric === null ? null : compare(e.metric, best, config.metric.direction);
    const checks = JSON.parse(e.constraintChecks) as ConstraintCheck[];
    const ran = e.state === 'crashed' || e.state === 'timed_out' || e.state === 'cancelled';
    const logTail = ran && e.logPath ? this.crashTail(e) : null;
    // A decided experiment shows its recorded verdict; one still measuring shows where it stands.
    let decision: DecisionReport | null = null;
    if (e.kind === 'candidate' && e.verdict) decision = JSON.parse(e.verdict) as DecisionReport;
    else if (e.kind === 'candidate' && (e.metric !== null || e.phase === 'repeats')) decision = this.decisionReport(e, session, config);
    return {
      experiment: this.view(e),
      metricName: config.metric.name,
      comparison,
      constraints: checks,
      keepable: this.keepRefusal(session, config, e, false) === null,
      decision,
      noise: this.noiseReport(session, config),
      logTail,
    };
  }

  private crashTail(e: ExperimentRow): string[] {
    const evaluateLog = join(this.runDir(e.id), 'evaluate.log');
    const log = e.phase === 'done' && existsSync(evaluateLog) ? evaluateLog : e.logPath!;
    return existsSync(log) ? readLogTail(log, CRASH_TAIL_LINES).map((l: string) => (l.length > 500 ? `${l.slice(0, 500)}…` : l)) : [];
  }

  // ---------------------------------------------------------------- keep and revert

  private async keepNow(input: { id: number; force?: boolean; reason?: string }): Promise<{ experiment: ExperimentView; session: SessionView }> {
    this.requireDriver();
    await this.requireOnBranch(this.requireSession().session); // may complete a keep interrupted by a crash
    const { session, config } = this.requireSession();
    const e = this.requireExperiment(input.id, session);
    if (e.decision === 'kept' && session.bestExperimentId === e.id && e.decisionReason?.includes('after a restart')) {
      return { experiment: this.view(e), session: this.sessionView(session) };
    }
    const refusal = this.keepRefusal(session, config, e, input.force === true, input.reason);
    if (refusal) throw refusal;
    const outside = await this.commitViolations(session.bestCommit, e.commit!, config);
    if (outside.length) {
      throw new RatchetError('surface_violation', `Experiment ${e.id}'s commit changes ${outside.join(', ')}, outside the edit surface; it cannot be kept.`, `Call revert {id: ${e.id}}.`);
    }
    await this.git.advanceBranch(session.branch, e.commit!, session.bestCommit);
    const forced =
      input.force === true &&
      (config.decision.rule === 'significant'
        ? (JSON.parse(e.verdict ?? '{}') as Partial<DecisionReport>).verdict !== 'improved'
        : !compare(e.metric!, this.bestOf(session), config.metric.direction).improved);
    this.ledger.db.transaction(() => {
      this.ledger.updateExperiment(e.id, { decision: 'kept', forced: forced ? 1 : 0, decisionReason: forced ? `forced: ${input.reason}` : 'improved' });
      this.ledger.setBest(session.id, e.id, e.commit!);
    })();
    const updated = this.ledger.session(session.id)!;
    this.writeResults(updated);
    this.log.info({ id: e.id, metric: e.metric, forced }, 'kept');
    return { experiment: this.view(this.ledger.experiment(e.id)!), session: this.sessionView(updated) };
  }

  /** Paths a commit changes relative to the best that the surface does not allow (both sides of a rename). */
  private async commitViolations(best: string, commit: string, config: Config): Promise<string[]> {
    const inSurface = surfaceMatcher(config);
    return (await this.changedPaths(best, commit)).filter((p) => !inSurface(p));
  }

  /** Every path that differs between two commits, both sides of a rename. */
  private async changedPaths(from: string, to: string): Promise<string[]> {
    return [...new Set((await this.git.changedBetween(from, to)).flatMap((c) => (c.from ? [c.from, c.path] : [c.path])))];
  }

  /** Null when `keep` may proceed, else the error that says why not and what to do. */
  private keepRefusal(session: SessionRow, config: Config, e: ExperimentRow, force: boolean, reason?: string): RatchetError | null {
    const refuse = (message: string, hint: string) => new RatchetError('not_decidable', message, hint, { experimentId: e.id });
    if (e.kind === 'baseline') return refuse(`Experiment ${e.id} is the baseline; it is already the starting point.`, 'Edit, then call run_experiment.');
    if (e.decision) return refuse(`Experiment ${e.id} was already ${e.decision}.`, 'Run a new experiment.');
    if (e.state !== 'measured') {
      return refuse(`Experiment ${e.id} is ${e.state}, not measured, so there is nothing to keep.`, e.state === 'running' ? `Call wait_experiment {id: ${e.id}} first.` : 'Fix the problem (read_metric shows the log tail) and call run_experiment again.');
    }
    const latest = this.ledger.latestRunExperiment(session.id);
    if (latest && latest.id !== e.id) return refuse(`Experiment ${e.id} is not the latest experiment (${latest.id} is).`, 'Only the latest measured candidate can be kept; re-apply the idea and run it again.');
    const failed = (JSON.parse(e.constraintChecks) as ConstraintCheck[]).filter((c) => !c.ok);
    if (failed.length) {
      return refuse(
        `Experiment ${e.id} violates constraint(s): ${failed.map((c) => `${c.metric}=${c.value ?? 'missing'} (${c.min !== undefined ? `min ${c.min}` : ''}${c.min !== undefined && c.max !== undefined ? ', ' : ''}${c.max !== undefined ? `max ${c.max}` : ''})`).join('; ')}.`,
        `Call revert {id: ${e.id}} and try an idea that stays within the constraints.`,
      );
    }
    const best = this.bestOf(session);
    if (!best || best.metric === null) return null; // the baseline never measured: the first measurement sets the bar
    if (config.decision.rule === 'significant') return this.significantRefusal(config, e, force, reason);
    const cmp = compare(e.metric!, best, config.metric.direction);
    if (cmp.improved) return null;
    if (cmp.equal && force) {
      return reason && reason.trim() ? null : refuse('force needs a reason.', 'Say why the equal result is worth keeping, e.g. "same val_bpb with 40 fewer lines".');
    }
    const verb = config.metric.direction === 'minimize' ? 'lower' : 'higher';
    return refuse(
      `Experiment ${e.id} did not improve: ${config.metric.name} ${fmt(e.metric!)} vs best ${fmt(best.metric)} (delta ${fmt(cmp.delta!)}; must be strictly ${verb}).`,
      cmp.equal
        ? `It ties the best. If it is simpler, call keep {id: ${e.id}, force: true, reason: "..."}; otherwise revert {id: ${e.id}}.`
        : `Call revert {id: ${e.id}} and try another idea.`,
    );
  }

  /** Under `significant`, only a verdict of improved keeps; force keeps an inconclusive (or tied) simplification, never a worse one. */
  private significantRefusal(config: Config, e: ExperimentRow, force: boolean, reason?: string): RatchetError | null {
    const refuse = (message: string, hint: string) => new RatchetError('not_decidable', message, hint, { experimentId: e.id });
    const report = e.verdict ? (JSON.parse(e.verdict) as DecisionReport) : null;
    if (!report) return refuse(`Experiment ${e.id} has no verdict yet.`, `Call wait_experiment {id: ${e.id}} until it is decided.`);
    if (report.verdict === 'improved') return null;
    const stats = `effect ${report.effect === null ? 'unknown' : fmt(report.effect)}${report.effectInterval ? ` (interval ${fmt(report.effectInterval[0])} to ${fmt(report.effectInterval[1])})` : ''} over ${report.runsSpent} runs: ${report.why}`;
    if (report.verdict === 'inconclusive' && force) {
      return reason && reason.trim() ? null : refuse('force needs a reason.', 'Say why the change is worth keeping without a proven gain, e.g. "same val_bpb with 40 fewer lines".');
    }
    if (report.verdict === 'inconclusive') {
      return refuse(
        `Experiment ${e.id} is inconclusive: no significant improvement in ${config.metric.name} at ${config.decision.confidence} confidence (${stats}).`,
        `Call revert {id: ${e.id}}; if the change is a simplification worth keeping anyway, keep {id: ${e.id}, force: true, reason: "..."}.`,
      );
    }
    return refuse(`Experiment ${e.id} is not an improvement: ${config.metric.name} is worse or short of minEffect (${stats}).`, `Call revert {id: ${e.id}} and try another idea.`);
  }

  private async revertNow(input: { id?: number }): Promise<RevertResult> {
    this.requireDriver();
    const { session, config } = this.requireSession();
    const inFlight = this.ledger.unfinishedExperiments()[0];
    if (inFlight) throw new RatchetError('busy', `Experiment ${inFlight.id} is still running.`, `Call cancel_experiment {id: ${inFlight.id}} first, or wait_experiment until it ends.`);
    const e = input.id === undefined ? this.ledger.latestRunExperiment(session.id) : this.requireExperiment(input.id, session);
    if (e && input.id !== undefined) {
      if (e.decision === 'kept') throw new RatchetError('not_decidable', `Experiment ${e.id} was kept; it is the best or part of its history.`, 'Nothing to revert. Edit and run the next experiment.');
      const latest = this.ledger.latestRunExperiment(session.id);
      if (latest && latest.id !== e.id && e.kind === 'candidate' && e.decision === null && e.state === 'measured') {
        throw new RatchetError('not_decidable', `Experiment ${e.id} is not the latest experiment.`, 'Call revert without an id to reset to the best commit.');
      }
    }
    await this.requireOnBranch(session);

    // Whatever is in the working tree is committed under a ref first, so a revert can never lose an edit.
    const snap = await this.git.snapshot(session.bestCommit, `ratchet: working tree before revert${e ? ` of #${e.id}` : ''}`, this.scratchDir);
    const bestTree = await this.git.treeOf(session.bestCommit);
    const candidateTree = e?.commit ? await this.git.treeOf(e.commit) : null;
    let savedWorktree: string | null = null;
    if (snap.tree !== bestTree && snap.tree !== candidateTree) {
      savedWorktree = `refs/ratchet/${session.tag}/worktree-${Date.now()}`;
      await this.git.setRef(savedWorktree, snap.commit);
    }
    const removedUntracked = await this.git.resetTo(session.bestCommit, config.editable, [...config.protected, CONFIG_FILE]);
    // Ignored protected files are outside git's reach; their pinned copies put them back.
    const pins = JSON.parse(session.pins) as Pin[];
    const tampered = (await verifyPins(this.repo, pins, config.protected)).map((v) => v.path);
    if (tampered.length) await restorePinned(this.repo, pins, join(this.stateDir, 'pins'), tampered.filter((p) => pins.some((pin) => pin.path === p)));
    let view: ExperimentView | null = null;
    if (e && e.kind === 'candidate' && e.state === 'measured' && e.decision === null) {
      view = this.view(this.ledger.updateExperiment(e.id, { decision: 'reverted', decisionReason: 'reverted by the agent' }));
      this.writeResults(session);
    } else if (e) {
      view = this.view(e);
    }
    this.log.info({ id: e?.id, savedWorktree }, 'reverted');
    return { experiment: view, resetTo: session.bestCommit, removedUntracked, savedWorktree };
  }

  // ---------------------------------------------------------------- cancel

  private async cancelExperimentNow(id: number): Promise<ExperimentView> {
    this.requireDriver();
    const e = this.requireExperiment(id);
    if (e.state === 'cancelled') return this.view(e); // already done: cancelling twice changes nothing
    if (e.state !== 'running' && e.state !== 'queued') {
      throw new RatchetError('not_decidable', `Experiment ${id} is ${e.state}; only a running experiment can be cancelled.`, 'Call status to see what is running.');
    }
    if (e.kind === 'repeat') {
      throw new RatchetError('invalid_argument', `Run ${id} is a repeat of experiment ${e.repeatOf}.`, `Call cancel_experiment {id: ${e.repeatOf}}.`);
    }
    const config = sessionConfig(this.ledger.session(e.sessionId)!);
    if (e.phase === 'repeats') {
      // The experiment is marked first so its repeat loop starts nothing new, then the run in progress is stopped.
      const active = this.activeRun(e);
      const done = this.finish(id, 'cancelled', 'cancelled by the agent');
      if (active.id !== id && active.supervisorPid && active.runToken) cancelRun(active.supervisorPid, active.runToken);
      const grace = sleep((config.run.graceSeconds + 10) * 1000);
      await Promise.race([this.drive(active.id), grace]);
      if (this.ledger.experiment(active.id)?.state === 'running') {
        if (active.runToken) await sweepRun(active.runToken);
        this.finish(active.id, 'cancelled', 'cancelled with its experiment');
      }
      // The repeat loop puts the candidate back in the working tree as it ends; without one, do it here.
      const loop = this.drivers.get(id);
      if (loop) await Promise.race([loop, grace]);
      else await this.restoreCandidateTree(id);
      return this.view(this.ledger.experiment(done.id)!);
    }
    if (e.supervisorPid && e.runToken && cancelRun(e.supervisorPid, e.runToken)) {
      const grace = (e.phase === 'evaluate' ? config.evaluate?.graceSeconds ?? 10 : config.run.graceSeconds) + 10;
      await Promise.race([this.drive(id), sleep(grace * 1000)]);
    }
    const after = this.ledger.experiment(id)!;
    if (after.state === 'running' || after.state === 'queued') {
      if (after.runToken) await sweepRun(after.runToken);
      return this.view(this.finish(id, 'cancelled', 'cancelled by the agent'));
    }
    return this.view(after);
  }

  // ---------------------------------------------------------------- status and listings

  status(): Status {
    let configError: string | null = null;
    try {
      loadConfig(this.repo);
    } catch (err) {
      configError = isRatchetError(err) ? err.message : String(err);
    }
    const hasLedger = existsSync(ledgerPath(this.repo));
    const session = hasLedger ? this.ledger.activeSession() : undefined;
    const running = hasLedger ? this.ledger.unfinishedExperiments()[0] : undefined;
    let runningView: Status['running'] = null;
    if (running && session) {
      const p = this.progressOf(this.activeRun(running), sessionConfig(session));
      runningView = { id: running.id, phase: p.phase, elapsedSeconds: p.elapsedSeconds, budgetSeconds: p.budgetSeconds, lastLogLine: p.lastLogLine };
    }
    const pending = session ? this.awaitingDecision(session) : undefined;
    const config = session ? sessionConfig(session) : null;
    const plateau = session && config ? this.plateau(session, config) : null;
    return {
      session: session ? this.sessionView(session) : null,
      noise: session && config ? this.noiseReport(session, config) : null,
      plateau,
      runsSpent: session ? this.ledger.runsSpent(session.id).runs : 0,
      counts: session ? this.ledger.countsByState(session.id) : {},
      running: runningView,
      awaitingDecision: pending?.id ?? null,
      config: { valid: configError === null, error: configError },
      ledger: ledgerPath(this.repo),
      resultsTsv: this.resultsTsvPath,
      next: this.heldBy
        ? `This server is read-only: another ratchet server (pid ${this.heldBy.pid}) drives this repo.`
        : nextStep(session, runningView, pending, configError, plateau?.message ?? null),
    };
  }

  listExperiments(input: { limit?: number; offset?: number; state?: ExperimentState }): { experiments: ExperimentView[]; total: number } {
    const { session } = this.requireSession();
    const { rows, total } = this.ledger.listExperiments(session.id, { limit: input.limit ?? 20, offset: input.offset ?? 0, state: input.state });
    return { experiments: rows.map((e) => this.view(e)), total };
  }

  async readLog(input: { id: number; offset?: number; limit?: number; grep?: string; phase?: Phase }): Promise<LogPage & { path: string }> {
    const e = this.requireExperiment(input.id);
    let grep: RegExp | undefined;
    if (input.grep) {
      try {
        grep = new RegExp(input.grep);
      } catch (err) {
        throw new RatchetError('invalid_argument', `grep is not a valid regular expression: ${(err as Error).message}`, 'Pass a JavaScript regular expression such as "loss|error".');
      }
    }
    const path = join(this.runDir(e.id), `${input.phase ?? 'run'}.log`);
    if (input.phase === 'evaluate' && !existsSync(path)) {
      const config = sessionConfig(this.ledger.session(e.sessionId)!);
      throw new RatchetError(
        'invalid_argument',
        config.evaluate ? `Experiment ${e.id} has no evaluate log: its run did not get that far.` : 'This session has no evaluate step configured.',
        `Call read_log {id: ${e.id}} for the run's log.`,
      );
    }
    return { path, ...(await readLogPage(path, { offset: input.offset, limit: input.limit ?? 100, grep })) };
  }

  // ---------------------------------------------------------------- recovery and shutdown

  /** After a restart: re-attach to runs whose supervisor lives on, record finished ones, sweep and mark the rest. */
  async recover(): Promise<number[]> {
    if (this.heldBy || !existsSync(ledgerPath(this.repo))) return [];
    const unfinished = this.ledger.unfinishedExperiments();
    for (const e of unfinished) {
      // A repeat is driven by its experiment's repeat loop, which re-attaches to it.
      if (e.kind === 'repeat' && unfinished.some((r) => r.id === e.repeatOf)) continue;
      if (e.phase === 'repeats') {
        this.log.info({ id: e.id }, 're-attaching to an experiment measuring repeats');
        void this.drive(e.id);
        continue;
      }
      if (e.state === 'queued' || !e.supervisorPid || !e.runToken) {
        if (e.runToken) await sweepRun(e.runToken);
        this.finish(e.id, 'crashed', 'ratchet stopped before the run started');
        continue;
      }
      this.log.info({ id: e.id, phase: e.phase }, 're-attaching to run after restart');
      void this.drive(e.id);
    }
    return unfinished.map((e) => e.id);
  }

  /** Stops following runs; their supervisors keep enforcing the budget and a later server records them. */
  close(): void {
    this.closed = true;
    if (!this.heldBy) releaseServerLock(this.lockPath);
    this.ledgerHandle?.close();
    this.ledgerHandle = null;
  }

  async settle(): Promise<void> {
    await Promise.allSettled([...this.drivers.values()]);
  }

  // ---------------------------------------------------------------- helpers

  private get scratchDir(): string {
    return join(this.stateDir, 'tmp');
  }

  private runDir(id: number): string {
    return join(this.stateDir, 'runs', String(id));
  }

  private requireSession(): { session: SessionRow; config: Config } {
    const session = existsSync(ledgerPath(this.repo)) ? this.ledger.activeSession() : undefined;
    if (!session) throw new RatchetError('no_session', 'No ratchet session is active in this repo.', 'Call start_session first (it creates the branch and runs the baseline).');
    return { session, config: sessionConfig(session) };
  }

  private requireExperiment(id: number, session?: SessionRow): ExperimentRow {
    const e = existsSync(ledgerPath(this.repo)) ? this.ledger.experiment(id) : undefined;
    if (!e || (session && e.sessionId !== session.id)) {
      throw new RatchetError('unknown_experiment', `No experiment ${id}${session ? ` in session ${session.tag}` : ''}.`, 'Call list_experiments to see the ids.');
    }
    return e;
  }

  private awaitingDecision(session: SessionRow): ExperimentRow | undefined {
    const latest = this.ledger.latestRunExperiment(session.id);
    return latest && latest.kind === 'candidate' && latest.state === 'measured' && latest.decision === null ? latest : undefined;
  }

  private async requireOnBranch(session: SessionRow): Promise<void> {
    await this.git.assertUsable();
    const branch = await this.git.currentBranch();
    if (branch !== session.branch) {
      throw new RatchetError(
        'git_state',
        `HEAD is on ${branch ?? 'a detached commit'}, not on the session branch ${session.branch}.`,
        `Run \`git checkout ${session.branch}\` (your edits carry over), then call the tool again.`,
      );
    }
    const tip = await this.git.resolve(`refs/heads/${session.branch}`);
    if (tip !== session.bestCommit && tip !== null && this.finishInterruptedKeep(session, tip)) return;
    if (tip !== session.bestCommit) {
      throw new RatchetError(
        'git_state',
        `Branch ${session.branch} is at ${tip?.slice(0, 7)}, but the session's best commit is ${session.bestCommit.slice(0, 7)}: it was moved outside ratchet.`,
        `Run \`git reset --soft ${session.bestCommit}\` to put the branch back (your files stay as they are), then call the tool again; or start a new session from here.`,
      );
    }
  }

  /**
   * keep moves the branch, then writes the ledger; a crash between the two leaves the branch at an
   * undecided candidate. If that candidate was keepable, finish recording the keep.
   */
  private finishInterruptedKeep(session: SessionRow, tip: string): boolean {
    const pending = this.awaitingDecision(session);
    if (!pending || pending.commit !== tip || pending.parentCommit !== session.bestCommit) return false;
    const config = sessionConfig(session);
    if (this.keepRefusal(session, config, pending, false) !== null) return false;
    this.ledger.db.transaction(() => {
      this.ledger.updateExperiment(pending.id, { decision: 'kept', decisionReason: 'improved (keep completed after a restart)' });
      this.ledger.setBest(session.id, pending.id, tip);
    })();
    session.bestCommit = tip;
    session.bestExperimentId = pending.id;
    this.writeResults(session);
    this.log.warn({ id: pending.id }, 'completed a keep that was interrupted between git and the ledger');
    return true;
  }

  private async freeDefaultTag(): Promise<string> {
    const d = new Date();
    const base = `${d.toLocaleString('en-US', { month: 'short' }).toLowerCase()}${d.getDate()}`;
    for (let i = 1; ; i++) {
      const tag = i === 1 ? base : `${base}-${i}`;
      if (!this.ledger.sessionByTag(tag) && !(await this.git.refExists(`refs/heads/ratchet/${tag}`))) return tag;
    }
  }

  private async requireGpuIfConfigured(config: Config): Promise<Gpu[]> {
    if (!config.gpu) return [];
    const { gpus, error } = await listGpus({ nvidiaSmi: this.opts.nvidiaSmi });
    if (config.gpu.required && gpus.length < config.gpu.perRun) {
      throw new RatchetError(
        'gpu_unavailable',
        `ratchet.json requires ${config.gpu.perRun} GPU(s) per run, but nvidia-smi ${error ? `failed: ${error}` : `lists ${gpus.length}`}.`,
        'Run on a machine where `nvidia-smi` lists the GPUs, or set gpu.required to false in ratchet.json for a CPU run.',
      );
    }
    return gpus;
  }

  private async allocateGpus(config: Config): Promise<{ indices: number[]; model: string | null } | null> {
    if (!config.gpu) return null;
    const gpus = await this.requireGpuIfConfigured(config);
    const chosen = chooseGpus(gpus, config.gpu.perRun, new Set());
    if (!chosen) return null;
    return { indices: chosen, model: gpus.find((g) => g.index === chosen[0])?.name ?? null };
  }

  private bestOf(session: SessionRow): ExperimentRow | undefined {
    return session.bestExperimentId !== null ? this.ledger.experiment(session.bestExperimentId) : undefined;
  }

  private view(e: ExperimentRow): ExperimentView {
    return toView(e, e.kind === 'repeat' ? 1 : this.ledger.runsOf(e.id).length);
  }

  private sessionView(s: SessionRow): SessionView {
    const config = sessionConfig(s);
    const best = this.bestOf(s);
    return {
      tag: s.tag,
      branch: s.branch,
      baseCommit: s.baseCommit,
      bestCommit: s.bestCommit,
      bestExperimentId: s.bestExperimentId,
      bestMetric: best?.metric ?? null,
      baselineMetric: this.ledger.baselineMetric(s.id),
      metricName: config.metric.name,
      direction: config.metric.direction,
      createdAt: s.createdAt,
    };
  }

  /** results.tsv follows the active session; results-<tag>.tsv keeps every session's own file. */
  private writeResults(session: SessionRow): void {
    const config = sessionConfig(session);
    this.ledger.writeResultsTsv(session.id, config.metric.name, join(this.stateDir, `results-${session.tag}.tsv`));
    if (this.ledger.activeSession()?.id === session.id) this.ledger.writeResultsTsv(session.id, config.metric.name, this.resultsTsvPath);
  }
}

// ---------------------------------------------------------------- pure helpers

/** The config the session pinned at its start (not the file on disk, which may have changed). */
function sessionConfig(session: SessionRow): Config {
  return parseConfig(JSON.parse(session.config));
}

/** Editable and not protected: what an experiment may change. */
function surfaceMatcher(config: Config): (path: string) => boolean {
  const isEditable = picomatch(config.editable, { dot: true });
  const isProtected = picomatch([CONFIG_FILE, ...config.protected], { dot: true });
  return (p) => isEditable(p) && !isProtected(p);
}

/** Pooled over groups of repeated runs of one commit within one experiment, so drift between experiments does not count as noise. */
function noiseOf(measurements: Measurement[]): PooledNoise {
  const groups = new Map<string, number[]>();
  for (const m of measurements) {
    const key = `${m.root}:${m.commit}`;
    groups.set(key, [...(groups.get(key) ?? []), m.value]);
  }
  return pooledNoise([...groups.values()]);
}

/** The machine a run measured on: only measurements from the same one are compared or pooled. */
function machineOf(e: ExperimentRow): Machine {
  return { host: e.host ?? hostname(), gpuModel: gpuModelOf(e) };
}

interface Machine {
  host: string;
  gpuModel: string | null;
}

function gpuModelOf(e: ExperimentRow): string | null {
  return e.gpus ? ((JSON.parse(e.gpus) as { model: string | null }).model ?? null) : null;
}

/** Interval of one side's mean with the session's pooled noise, at the per-look confidence. */
function meanInterval(values: number[], noise: PooledNoise, rule: Config['decision']): [number, number] | null {
  if (!values.length || !noise.df || !Number.isFinite(noise.sd)) return null;
  const mean = values.reduce((a, x) => a + x, 0) / values.length;
  const half = criticalValue(rule, noise.df) * (noise.sd / Math.sqrt(values.length));
  return [mean - half, mean + half];
}

function judge(result: RunResult, phase: Phase, config: Config): { state: ExperimentState; reason: string } | null {
  const what = phase === 'run' ? 'run' : 'evaluate command';
  const budget = phase === 'run' ? config.run.budgetSeconds : config.evaluate!.budgetSeconds;
  if (result.cancelled) return { state: 'cancelled', reason: 'cancelled by the agent' };
  if (result.timedOut) return { state: 'timed_out', reason: `the ${what} exceeded its ${budget}s budget and its process tree was killed` };
  if (result.logLimitExceeded) return { state: 'crashed', reason: `the ${what} flooded its log past ${config.run.maxLogMegabytes} MB and was stopped` };
  if (result.spawnError) return { state: 'crashed', reason: `the ${what} could not start: ${result.spawnError}` };
  if (result.exitCode !== 0) {
    const how = result.signal ? `was killed by ${result.signal}` : `exited with code ${result.exitCode}`;
    return { state: 'crashed', reason: `the ${what} ${how}` };
  }
  return null;
}

function checkConstraints(config: Config, metric: number, secondary: Record<string, number>): ConstraintCheck[] {
  return config.metric.constraints.map((c) => {
    const value = c.metric === config.metric.name ? metric : secondary[c.metric] ?? null;
    const ok = value !== null && (c.max === undefined || value <= c.max) && (c.min === undefined || value >= c.min);
    return { metric: c.metric, value, ...(c.min !== undefined ? { min: c.min } : {}), ...(c.max !== undefined ? { max: c.max } : {}), ok };
  });
}

function compare(metric: number, best: ExperimentRow | undefined, direction: 'minimize' | 'maximize') {
  if (!best || best.metric === null) {
    return { bestId: best?.id ?? null, bestMetric: null, delta: null, improved: true, equal: false, direction };
  }
  const delta = metric - best.metric;
  const improved = direction === 'minimize' ? delta < 0 : delta > 0;
  return { bestId: best.id, bestMetric: best.metric, delta, improved, equal: delta === 0, direction };
}

function nextStep(
  session: SessionRow | undefined,
  running: Status['running'],
  pending: ExperimentRow | undefined,
  configError: string | null,
  plateau: string | null,
): string {
  if (configError && !session) return 'Fix ratchet.json (see config.error), then call start_session.';
  if (configError) return 'ratchet.json changed since the session pinned it and is now invalid: restore it (git checkout -- ratchet.json); runs are refused until it matches its pin.';
  if (!session) return 'Call start_session to create the branch and measure the baseline.';
  if (running) return `Experiment ${running.id} is running: call wait_experiment {id: ${running.id}}.`;
  if (pending) return `Experiment ${pending.id} awaits a decision: read_metric, then keep or revert.`;
  return plateau ? `${plateau} Otherwise edit the editable files with one idea, then call run_experiment.` : 'Edit the editable files with one idea, then call run_experiment.';
}

function busyError(id: number): RatchetError {
  return new RatchetError('busy', `Experiment ${id} is still running; one experiment runs at a time.`, `Call wait_experiment {id: ${id}} until it finishes, or cancel_experiment {id: ${id}}.`);
}

function clampWait(seconds: number): number {
  return Math.min(Math.max(0, seconds), MAX_WAIT_SECONDS);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

const fmt = (n: number) => (Math.abs(n) >= 1000 ? n.toFixed(1) : Number(n.toPrecision(6)).toString());

export function toView(e: ExperimentRow, runs = 1): ExperimentView {
  return {
    id: e.id,
    kind: e.kind,
    repeatOf: e.repeatOf,
    runs,
    state: e.state,
    decision: e.decision,
    metric: e.metric,
    secondary: JSON.parse(e.secondary || '{}') as Record<string, number>,
    description: e.description,
    hypothesis: e.hypothesis,
    commit: e.commit,
    parentCommit: e.parentCommit,
    reason: e.decisionReason && e.state === 'measured' ? e.decisionReason : e.reason,
    forced: e.forced === 1,
    durationSeconds: e.durationMs === null ? null : Math.round(e.durationMs / 100) / 10,
    peakMemoryMb: e.peakMemoryBytes === null ? null : Math.round(e.peakMemoryBytes / 1024 / 102.4) / 10,
    memoryMethod: e.memoryMethod,
    exitCode: e.exitCode,
    signal: e.signal,
    gpus: e.gpus ? (JSON.parse(e.gpus) as { indices: number[] }).indices : null,
    diffStats: e.diffStats ? (JSON.parse(e.diffStats) as { files: number; insertions: number; deletions: number }) : null,
    createdAt: e.createdAt,
    endedAt: e.endedAt,
  };
}
