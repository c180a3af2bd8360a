// Reports: what status, read_metric, list_experiments and read_log show — reads only, nothing here changes state.
import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { loadConfig, type Config } from './config.js';
import type { LoopContext } from './context.js';
import { compare, machineOf, sinceLastKeep } from './decision.js';
import type { SandboxReport } from './executor/executor.js';
import { isRatchetError } from './errors.js';
import type { Finding } from './integrity.js';
import { keepRefusal } from './keep.js';
import type { ExperimentRow, ExperimentState, GpuUsage, SessionRow } from './ledger.js';
import { readLogPage, type LogPage } from './log-reader.js';
import { compileGrep } from './safe-regex.js';
import * as refusals from './refusals.js';
import { formatNumber } from './format.js';
import { finishedSentence, limitsReport, sessionFinished } from './limits.js';
import { currentReport, secondaryMeans } from './repeats.js';
import { readLogTail } from './runner/runner.js';
import { caseModel, sensitivity } from './sensitivity.js';
import { capacityOf, slots, undecidedCandidates } from './parallel.js';
import { MAIN_AGENT } from './ledger/schema.js';
import { agentRoster } from './agents/roster.js';
import { minimumDetectableEffect, summarize } from './statistics.js';
import type { DecisionReport, ExperimentView, MetricReport, Noise, SessionView, Status } from './views.js';

const CRASH_TAIL_LINES = 50;

export interface Progress {
  elapsedSeconds: number;
  budgetSeconds: number;
  phase: string;
  lastLogLine: string | null;
}

/** A repeated experiment's secondary figures are the mean over its runs, even while its repeats still run. */
export function experimentView(ctx: LoopContext, e: ExperimentRow): ExperimentView {
  const gpu = e.gpus ? ctx.ledger.gpuUsage(e.id) : null;
  const agent = ctx.ledger.agentOf(e.id);
  if (e.kind === 'repeat') return toView(e, 1, gpu, agent);
  const runs = ctx.ledger.runsOf(e.id);
  const view = toView(e, runs.length, gpu, agent);
  if (runs.length < 2) return view;
  const session = ctx.ledger.session(e.sessionId)!;
  return { ...view, secondary: secondaryMeans(ctx, e, runs, ctx.configOf(session).metric.name) };
}

/** `gpu`: the run's GPU samples (Ledger.gpuUsage), for an experiment that held GPUs. */
export function toView(e: ExperimentRow, runs = 1, gpu: GpuUsage | null = null, agent = MAIN_AGENT): ExperimentView {
  return {
    agent,
    id: e.id,
    kind: e.kind,
    repeatOf: e.repeatOf,
    runs,
    state: e.state,
    decision: e.decision,
    metric: e.metric,
    secondary: e.secondary,
    description: e.description,
    hypothesis: e.hypothesis,
    commit: e.commit,
    parentCommit: e.parentCommit,
    reason: e.decisionReason && e.state === 'measured' ? e.decisionReason : e.reason,
    forced: e.forced,
    durationSeconds: e.durationMs === null ? null : Math.round(e.durationMs / 100) / 10,
    peakMemoryMb: e.peakMemoryBytes === null ? null : Math.round(e.peakMemoryBytes / 1024 / 102.4) / 10,
    memoryMethod: e.memoryMethod,
    peakGpuMemoryMb: gpu?.peakMemoryMib == null ? null : Math.round(gpu.peakMemoryMib * 10) / 10,
    gpuUtilizationPercent: gpu?.meanUtilizationPercent == null ? null : Math.round(gpu.meanUtilizationPercent * 10) / 10,
    gpuMemoryMethod: gpu ? gpuMemoryMethod(gpu) : null,
    exitCode: e.exitCode,
    signal: e.signal,
    gpus: e.gpus?.indices ?? null,
    diffStats: e.diffStats,
    metricLines: e.metricLines,
    workspace: e.workspace,
    createdAt: e.createdAt,
    endedAt: e.endedAt,
  };
}

function gpuMemoryMethod(gpu: GpuUsage): string {
  const source =
    gpu.memorySource === 'processes'
      ? "the run's processes"
      : gpu.memorySource === 'devices'
        ? "its GPUs' memory in use (nvidia-smi listed none of the run's processes)"
        : 'no memory figure (nvidia-smi gave none)';
  return `nvidia-smi, ${source}, ${gpu.samples} sample(s)`;
}

export function sessionView(ctx: LoopContext, s: SessionRow): SessionView {
  const config = ctx.configOf(s);
  const best = ctx.bestOf(s);
  return {
    tag: s.tag,
    branch: s.branch,
    baseCommit: s.baseCommit,
    bestCommit: s.bestCommit,
    bestExperimentId: s.bestExperimentId,
    bestMetric: best?.metric ?? null,
    baselineMetric: ctx.ledger.baselineMetric(s.id),
    metricName: config.metric.name,
    direction: config.metric.direction,
    createdAt: s.createdAt,
  };
}

/** The noise as calibrated at session start, with the pooled figure and what it lets the session detect. */
export function noiseReport(ctx: LoopContext, session: SessionRow, config: Config): Noise | null {
  const baselineId = ctx.ledger.baselineId(session.id);
  const baseline = baselineId === null ? undefined : ctx.ledger.experiment(baselineId);
  if (!baseline) return null;
  const machine = machineOf(baseline);
  const { rows: all, noise } = ctx.comparable(session.id, config.metric.name, machine);
  const s = summarize(all.filter((m) => m.root === baseline.id).map((m) => m.value));
  const calibration = ctx.ledger.runsOf(baseline.id).flatMap((r) => {
    const trials = ctx.ledger.caseResults(r.id);
    return trials ? [{ run: r.id, trials }] : [];
  });
  const sense = sensitivity(config, noise, caseModel(calibration));
  return {
    samples: s.n,
    mean: s.mean,
    sd: s.sd,
    mad: s.mad,
    cv: s.cv,
    pooledSd: Number.isFinite(noise.sd) ? noise.sd : null,
    df: noise.df,
    minDetectableEffect: sense ? sense.minDetectable : minimumDetectableEffect(noise, config.decision),
    basis: sense?.basis ?? 'pooled',
    suggestions: sense?.suggestions ?? [],
    ...machine,
  };
}

export function plateau(ctx: LoopContext, session: SessionRow, config: Config): NonNullable<Status['plateau']> {
  const window = config.decision.plateauWindow;
  const latest = ctx.ledger.listExperiments(session.id, { limit: window }).rows;
  const recent = latest.filter((e) => e.kind === 'candidate' && e.state !== 'running' && e.state !== 'queued' && e.state !== 'refused');
  const sinceKeep = sinceLastKeep(latest);
  const best = ctx.bestOf(session);
  const { noise } = ctx.comparable(session.id, config.metric.name, best ? machineOf(best) : { host: hostname(), gpuModel: null });
  const effects = recent.map((e) => e.verdict?.effect ?? null).filter((x): x is number => x !== null);
  const mde = minimumDetectableEffect(noise, config.decision);
  let message: string | null = null;
  if (sinceKeep >= window) {
    message = `The last ${sinceKeep} experiments brought no kept improvement.`;
    if (mde !== null && effects.length && effects.every((x) => Math.abs(x) < mde)) {
      message += ` Every change among them moved ${config.metric.name} by less than the session can detect (${formatNumber(mde)}): try bolder changes, or raise maxRepeats.`;
    } else {
      message += ' Try a different direction, or stop here.';
    }
  }
  return { reached: message !== null, experimentsSinceKeep: sinceKeep, window, message };
}

/**
 * The run actually in progress: an experiment measuring repeats is represented by its oldest repeat running (a batch
 * runs several at once), else one recorded and about to start.
 */
export function activeRun(ctx: LoopContext, e: ExperimentRow): ExperimentRow {
  if (e.phase !== 'repeats') return e;
  const repeats = ctx.ledger.runsOf(e.id).filter((r) => r.id !== e.id);
  return repeats.find((r) => r.state === 'running') ?? repeats.find((r) => r.state === 'queued') ?? e;
}

export function progressOf(ctx: LoopContext, e: ExperimentRow, config: Config): Progress {
  const phase = e.phase === 'evaluate' ? 'evaluate' : 'run';
  const started = e.startedAt ? Date.parse(e.startedAt) : Date.now();
  const log = join(ctx.runDir(e.id), `${phase}.log`);
  return {
    elapsedSeconds: Math.round((Date.now() - started) / 1000),
    budgetSeconds: phase === 'evaluate' ? config.evaluate!.budgetSeconds : config.run.budgetSeconds,
    phase,
    lastLogLine: existsSync(log) ? readLogTail(log, 1)[0] ?? null : null,
  };
}

export function readMetric(ctx: LoopContext, id?: number): MetricReport {
  const { session, config } = ctx.requireSession();
  const e = id === undefined ? ctx.ledger.latestExperiment(session.id) : ctx.requireExperiment(id);
  if (!e) throw refusals.noExperimentYet();
  ctx.shown(e);
  const comparison = e.metric === null ? null : compare(e.metric, ctx.bestOf(session), config.metric.direction);
  const ran = e.state === 'crashed' || e.state === 'timed_out' || e.state === 'cancelled';
  // A decided experiment shows its recorded verdict; one still measuring shows where it stands.
  let decision: DecisionReport | null = null;
  if (e.kind === 'candidate' && e.verdict) decision = e.verdict;
  else if (e.kind === 'candidate' && (e.metric !== null || e.phase === 'repeats')) decision = currentReport(ctx, e, session, config);
  return {
    experiment: experimentView(ctx, e),
    metricName: config.metric.name,
    comparison,
    constraints: e.constraintChecks,
    keepable: keepRefusal(ctx, session, config, e, false) === null,
    decision,
    noise: noiseReport(ctx, session, config),
    logTail: ran && e.logPath ? crashTail(ctx, e) : null,
  };
}

function crashTail(ctx: LoopContext, e: ExperimentRow): string[] {
  const evaluateLog = join(ctx.runDir(e.id), 'evaluate.log');
  const log = e.phase === 'done' && existsSync(evaluateLog) ? evaluateLog : e.logPath!;
  return existsSync(log) ? readLogTail(log, CRASH_TAIL_LINES).map((l: string) => (l.length > 500 ? `${l.slice(0, 500)}…` : l)) : [];
}

/** ratchet.json as it is on disk now (not the session's pinned copy), or why it cannot be read. */
export function configOnDisk(repo: string): { config: Config | null; error: string | null } {
  try {
    return { config: loadConfig(repo), error: null };
  } catch (err) {
    return { config: null, error: isRatchetError(err) ? err.message : String(err) };
  }
}

export function status(
  ctx: LoopContext,
  extra: { sandbox: SandboxReport; findings: Finding[]; readOnlyHolder: { pid: number } | null; configError: string | null; poolCapacity: number | null; agent?: string },
): Status {
  const configError = extra.configError;
  const session = ctx.hasLedger ? ctx.ledger.activeSession() : undefined;
  const running = ctx.hasLedger ? ctx.ledger.unfinishedExperiments()[0] : undefined;
  const config = session ? ctx.configOf(session) : null;
  let runningView: Status['running'] = null;
  if (running && config) {
    const p = progressOf(ctx, activeRun(ctx, running), config);
    runningView = { id: running.id, phase: p.phase, elapsedSeconds: p.elapsedSeconds, budgetSeconds: p.budgetSeconds, lastLogLine: p.lastLogLine };
  }
  const pending = session ? ctx.awaitingDecision(session) : undefined;
  const parallel = session && config ? parallelView(ctx, session, config, extra.poolCapacity, extra.agent) : null;
  const plateauNow = session && config ? plateau(ctx, session, config) : null;
  const finished = session && config ? sessionFinished(ctx, session, config) : null;
  const advice: string[] = [];
  if (session && config && !config.evaluate && ctx.ledger.countMetricRepeats(session.id) > 0) {
    advice.push('Some runs printed the metric line more than once. Without an evaluate step the run reports its own metric; add an "evaluate" command to ratchet.json so a trusted step computes it.');
  }
  if (extra.sandbox.kind === 'none') advice.push(`Runs are not sandboxed: ${extra.sandbox.why}`);
  return {
    session: session ? sessionView(ctx, session) : null,
    noise: session && config ? noiseReport(ctx, session, config) : null,
    plateau: plateauNow,
    runsSpent: session ? ctx.ledger.runsSpent(session.id).runs : 0,
    finished,
    limits: session && config ? limitsReport(ctx, session, config) : null,
    counts: session ? ctx.ledger.countsByState(session.id) : {},
    running: runningView,
    awaitingDecision: pending?.id ?? null,
    parallel,
    agent: agentView(ctx, session),
    config: { valid: configError === null, error: configError },
    sandbox: extra.sandbox,
    integrity: { ok: extra.findings.length === 0, findings: extra.findings.map((f) => f.what) },
    advice,
    ledger: join(ctx.stateDir, 'ratchet.db'),
    resultsTsv: ctx.resultsTsvPath,
    next: extra.readOnlyHolder
      ? `This server is read-only: another ratchet server (pid ${extra.readOnlyHolder.pid}) drives this repo.`
      : parallel && parallel.slots > 1 && !finished && !extra.findings.length
        ? parallelNext(parallel)
        : nextStep(session, runningView, pending, configError, plateauNow?.message ?? null, extra.findings, finished),
  };
}

/** With several experiments at once: every one in flight, the queue, and the measured ones awaiting a decision. */
function parallelView(ctx: LoopContext, session: SessionRow, config: Config, poolCapacity: number | null, agent?: string): NonNullable<Status['parallel']> {
  const { running, queued } = slots(ctx, session);
  const mine = (e: ExperimentRow) => agent === undefined || ctx.ledger.agentOf(e.id) === agent;
  const inFlight = running.filter(mine).map((e) => {
    const p = progressOf(ctx, activeRun(ctx, e), config);
    return { id: e.id, agent: ctx.ledger.agentOf(e.id), phase: p.phase, elapsedSeconds: p.elapsedSeconds, budgetSeconds: p.budgetSeconds, runs: ctx.ledger.runsOf(e.id).length };
  });
  // The scheduler's own bound: `parallel`, and no more than the pool holds.
  const wanted = capacityOf(config);
  const slotCount = wanted === 1 || poolCapacity === null ? wanted : Math.max(1, Math.min(wanted, poolCapacity));
  return { slots: slotCount, inFlight, queued: queued.filter(mine).map((e) => e.id), awaitingDecision: undecidedCandidates(ctx.ledger, session).filter(mine).map((e) => e.id) };
}

/** This server's agent, where its tree stands, and every agent of the ledger with what it has in flight and kept. */
function agentView(ctx: LoopContext, session: SessionRow | undefined): Status['agent'] {
  const base = session ? ctx.baseOf(session) : null;
  const roster = ctx.hasLedger ? agentRoster(ctx.ledger, ctx.registry, ctx.home, session) : [{ name: MAIN_AGENT, worktree: ctx.home, inFlight: 0, kept: 0 }];
  return {
    name: ctx.agent,
    base,
    behind: session !== undefined && base !== session.bestCommit,
    agents: roster.map(({ name, worktree, inFlight, kept }) => ({ name, worktree, inFlight, kept })),
  };
}

function parallelNext(p: NonNullable<Status['parallel']>): string {
  const parts: string[] = [];
  if (p.awaitingDecision.length) parts.push(`Experiment(s) ${p.awaitingDecision.join(', ')} await a decision: read_metric, then keep or revert each.`);
  const free = p.slots - p.inFlight.length;
  if (free > 0 && !p.queued.length) parts.push(`${free} of ${p.slots} slot(s) free: edit one idea and call run_experiment (wait_seconds 0 returns at once).`);
  if (p.inFlight.length) parts.push(`In flight: ${p.inFlight.map((e) => e.id).join(', ')}${p.queued.length ? `; queued: ${p.queued.join(', ')}` : ''}; wait_experiment {id} follows one.`);
  return parts.join(' ') || 'Edit the editable files with one idea, then call run_experiment.';
}

function nextStep(
  session: SessionRow | undefined,
  running: Status['running'],
  pending: ExperimentRow | undefined,
  configError: string | null,
  plateauMessage: string | null,
  findings: Finding[],
  finished: Status['finished'] = null,
): string {
  if (findings.length) return 'ratchet found its evidence changed outside ratchet (see integrity.findings); keep is refused until the user runs `ratchet verify` and `ratchet integrity --accept`.';
  if (configError && !session) return 'Fix ratchet.json (see config.error), then call start_session.';
  if (configError) return 'ratchet.json changed since the session pinned it and is now invalid: restore it (git checkout -- ratchet.json); the session keeps using its pinned rules.';
  if (!session) return 'Call start_session to create the branch and measure the baseline.';
  if (finished) {
    const end = finishedSentence(session.tag, finished);
    if (running) return `${end} Experiment ${running.id} still runs to its end: call wait_experiment {id: ${running.id}}, then keep or revert it.`;
    if (pending) return `${end} Experiment ${pending.id} awaits a decision: read_metric, then keep or revert.`;
    return `${end} No more experiments run: summarise the session for the user and stop.`;
  }
  if (running) return `Experiment ${running.id} is running: call wait_experiment {id: ${running.id}}.`;
  if (pending) return `Experiment ${pending.id} awaits a decision: read_metric, then keep or revert.`;
  return plateauMessage ? `${plateauMessage} Otherwise edit the editable files with one idea, then call run_experiment.` : 'Edit the editable files with one idea, then call run_experiment.';
}

export function listExperiments(ctx: LoopContext, input: { limit?: number; beforeId?: number; state?: ExperimentState; agent?: string }): { experiments: ExperimentView[]; total: number; nextBeforeId: number | null } {
  const { session } = ctx.requireSession();
  const limit = input.limit ?? 20;
  const { rows, total } = ctx.ledger.listExperiments(session.id, { limit, beforeId: input.beforeId, state: input.state, agent: input.agent });
  return { experiments: rows.map((e) => experimentView(ctx, e)), total, nextBeforeId: rows.length === limit ? rows[rows.length - 1]!.id : null };
}

export async function readLog(ctx: LoopContext, input: { id: number; offset?: number; limit?: number; grep?: string; phase?: 'run' | 'evaluate' }): Promise<LogPage & { path: string; workspace: string | null }> {
  const e = ctx.requireExperiment(input.id);
  const grep = input.grep ? compileGrep(input.grep) : undefined;
  const path = join(ctx.runDir(e.id), `${input.phase ?? 'run'}.log`);
  if (input.phase === 'evaluate' && !existsSync(path)) throw refusals.noEvaluateLog(e.id, !!ctx.configOf(ctx.ledger.session(e.sessionId)!).evaluate);
  return { path, workspace: e.workspace, ...(await readLogPage(path, { offset: input.offset, limit: input.limit ?? 100, grep })) };
}
