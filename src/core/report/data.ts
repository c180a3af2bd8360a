// What the morning report shows, gathered from the Ledger alone: the headline, time, kept changes, rejected ideas, crashes, noise.
import { parseConfig, type Config } from '../config.js';
import { machineOf, meanInterval, noiseOf, onMachine, sinceLastKeep } from '../decision.js';
import type { ExperimentRow, Ledger, Measurement, SessionRow } from '../ledger.js';
import { decimalsForNoise, resultsStatus, type ResultsStatus } from '../ledger/results-tsv.js';
import { readLogTail } from '../runner/log-tail.js';
import { minimumDetectableEffect, summarize } from '../statistics.js';
import { groupIdeas, type IdeaGroup } from './ideas.js';

export type Interval = [number, number];
export type Outcome = ResultsStatus | 'running' | 'pending';

/** One measured run, placed at the experiment it belongs to. */
export interface RunPoint {
  experiment: number;
  run: number;
  value: number;
  /** The candidate's own run, the best re-measured beside it, or a calibration run of the baseline. */
  side: 'candidate' | 'best' | 'baseline';
  outcome: Outcome;
}

export interface ExperimentSummary {
  id: number;
  description: string;
  outcome: Outcome;
  metric: number | null;
  /** The candidate's mean interval, as the decision computed it from the pooled noise. */
  interval: Interval | null;
  /** Runs of the candidate's own commit (the best's re-measurements not counted). */
  candidateRuns: number;
  effect: number | null;
  effectInterval: Interval | null;
  verdict: string | null;
  runs: number;
  reason: string | null;
}

export interface Crash {
  id: number;
  description: string;
  outcome: Outcome;
  reason: string | null;
  exit: string | null;
  lastLogLine: string | null;
}

/** What the caps helper adds to status: how the session finished, and each cap's use. Shown when present. */
export interface Caps {
  finished: { reason: string; at: string | null } | null;
  limits: Record<string, unknown> | null;
}

export interface ReportData {
  tag: string;
  branch: string;
  metricName: string;
  direction: Config['metric']['direction'];
  rule: Config['decision']['rule'];
  /** Per-look confidence of the intervals (the session's confidence split over maxRepeats looks). */
  intervalConfidence: number | null;
  /** Decimals the noise justifies, as results.tsv writes them. */
  decimals: number;
  active: boolean;
  startedAt: string;
  endedAt: string;
  wallSeconds: number;
  runningSeconds: number;
  runs: number;
  ideas: number;
  baseline: { id: number; mean: number | null; interval: Interval | null } | null;
  best: { id: number; mean: number | null; interval: Interval | null; description: string } | null;
  /** Best against baseline, positive when better. */
  improvement: number | null;
  experiments: ExperimentSummary[];
  kept: ExperimentSummary[];
  rejected: IdeaGroup<ExperimentSummary>[];
  crashes: Crash[];
  refusals: { id: number; description: string; reason: string | null }[];
  noise: { samples: number; sd: number | null; pooledSd: number | null; df: number; minDetectableEffect: number | null } | null;
  plateau: { sinceKeep: number; window: number; reached: boolean };
  caps: Caps | null;
  points: RunPoint[];
}

const PAGE = 500;

/** Every experiment of the session (repeats belong to theirs), oldest first. */
function allExperiments(ledger: Ledger, sessionId: number): ExperimentRow[] {
  const rows: ExperimentRow[] = [];
  let beforeId: number | undefined;
  for (;;) {
    const page = ledger.listExperiments(sessionId, { limit: PAGE, beforeId });
    rows.push(...page.rows);
    if (page.nextBeforeId === null) break;
    beforeId = page.nextBeforeId;
  }
  return rows.reverse();
}

function outcomeOf(e: ExperimentRow): Outcome {
  if (e.state === 'queued' || e.state === 'running') return 'running';
  if (e.state === 'measured' && e.decision === null && e.kind !== 'baseline') return 'pending';
  return resultsStatus(e);
}

/** The session a report is about: by tag, else the active one, else the latest. */
export function reportSession(ledger: Ledger, tag?: string): SessionRow | undefined {
  return tag ? ledger.sessionByTag(tag) : ledger.activeSession() ?? ledger.latestSession();
}

/** `logs: false` skips reading the crashed runs' logs, for the chart alone (the dashboard redraws it often). */
export function gatherReport(ledger: Ledger, sessionId: number, opts: { caps?: Caps | null; now?: Date; logs?: boolean } = {}): ReportData {
  const session = ledger.session(sessionId);
  if (!session) throw new Error(`there is no session ${sessionId} in the ledger`);
  const config = parseConfig(session.config);
  const rows = allExperiments(ledger, sessionId);
  const baselineRow = rows.find((e) => e.kind === 'baseline');
  const machine = baselineRow ? machineOf(baselineRow) : null;
  const measured = ledger.measurements(sessionId, config.metric.name);
  const pooled = noiseOf(machine ? onMachine(measured, machine) : measured);
  const calibration = baselineRow ? measured.filter((m) => m.root === baselineRow.id).map((m) => m.value) : [];
  const calibrated = summarize(calibration);
  const byId = new Map(rows.map((e) => [e.id, e]));

  const runsByRoot = new Map<number, number>();
  for (const m of measured) runsByRoot.set(m.root, (runsByRoot.get(m.root) ?? 0) + 1);
  const experiments = rows.map((e) => summaryOf(e, runsByRoot.get(e.id) ?? 0));
  const baselineInterval = baselineRow ? meanInterval(calibration, pooled, config.decision) : null;
  const bestRow = session.bestExperimentId !== null ? byId.get(session.bestExperimentId) : undefined;
  const bestSummary = bestRow ? experiments.find((x) => x.id === bestRow.id) : undefined;
  const baselineMean = baselineRow?.metric ?? null;
  const bestMean = bestRow?.metric ?? null;
  const sign = config.metric.direction === 'minimize' ? -1 : 1;

  const now = opts.now ?? new Date();
  const ends = rows.map((e) => e.endedAt).filter((t): t is string => t !== null);
  const lastEnd = ends.reduce((a, t) => (t > a ? t : a), session.createdAt);
  const finishedAt = opts.caps?.finished?.at ?? null;
  const endedAt = session.active && !finishedAt ? now.toISOString() : finishedAt ?? lastEnd;
  const wallSeconds = Math.max(0, (Date.parse(endedAt) - Date.parse(session.createdAt)) / 1000);

  const candidates = experiments.filter((x) => byId.get(x.id)!.kind === 'candidate');
  return {
    tag: session.tag,
    branch: session.branch,
    metricName: config.metric.name,
    direction: config.metric.direction,
    rule: config.decision.rule,
    intervalConfidence: config.decision.rule === 'significant' ? 1 - (1 - config.decision.confidence) / config.decision.maxRepeats : null,
    decimals: decimalsForNoise(calibrated.sd),
    active: session.active,
    startedAt: session.createdAt,
    endedAt,
    wallSeconds,
    runningSeconds: runningSeconds(rows, endedAt),
    runs: ledger.runsSpent(sessionId).runs,
    ideas: candidates.length,
    baseline: baselineRow ? { id: baselineRow.id, mean: baselineMean, interval: baselineInterval } : null,
    best: bestRow
      ? { id: bestRow.id, mean: bestMean, interval: bestRow.kind === 'baseline' ? baselineInterval : bestSummary?.interval ?? null, description: bestRow.description }
      : null,
    improvement: baselineMean !== null && bestMean !== null ? sign * (bestMean - baselineMean) : null,
    experiments,
    kept: candidates.filter((x) => x.outcome === 'keep' || x.outcome === 'keep (forced)'),
    rejected: groupIdeas(candidates.filter((x) => x.outcome === 'discard' || x.outcome === 'pruned' || x.outcome === 'cancelled')),
    crashes: experiments
      .filter((x) => x.outcome === 'crash' || x.outcome === 'timeout')
      .map((x) => crashOf(byId.get(x.id)!, x.outcome, opts.logs !== false)),
    refusals: candidates.filter((x) => x.outcome === 'refused').map((x) => ({ id: x.id, description: x.description, reason: x.reason })),
    noise: baselineRow
      ? {
          samples: calibrated.n,
          sd: calibrated.sd,
          pooledSd: Number.isFinite(pooled.sd) ? pooled.sd : null,
          df: pooled.df,
          minDetectableEffect: config.decision.rule === 'significant' ? minimumDetectableEffect(pooled, config.decision) : null,
        }
      : null,
    plateau: plateauOf(rows, config.decision.plateauWindow),
    caps: opts.caps ?? null,
    points: pointsOf(rows, measured, new Map(experiments.map((x) => [x.id, x.outcome]))),
  };
}

function summaryOf(e: ExperimentRow, runs: number): ExperimentSummary {
  const v = e.verdict;
  return {
    id: e.id,
    description: e.description,
    outcome: outcomeOf(e),
    metric: e.metric,
    interval: v?.candidate.interval ?? null,
    candidateRuns: v?.candidate.n ?? (e.metric === null ? 0 : 1),
    effect: v?.effect ?? null,
    effectInterval: v?.effectInterval ?? null,
    verdict: v?.verdict ?? null,
    runs: Math.max(runs, e.metric === null ? 0 : 1),
    reason: e.decisionReason && e.state === 'measured' ? e.decisionReason : e.reason,
  };
}

function crashOf(e: ExperimentRow, outcome: Outcome, logs: boolean): Crash {
  const exit = e.signal ? `signal ${e.signal}` : e.exitCode !== null ? `exit code ${e.exitCode}` : null;
  const last = logs && e.logPath ? readLogTail(e.logPath, 5).filter((l) => l.trim()).at(-1) ?? null : null;
  return { id: e.id, description: e.description, outcome, reason: e.reason, exit, lastLogLine: last && last.length > 300 ? `${last.slice(0, 300)}…` : last };
}

/** Each measured run at its experiment: the candidate's runs, and the best's re-measurements beside it. */
function pointsOf(rows: ExperimentRow[], measured: Measurement[], outcomes: Map<number, Outcome>): RunPoint[] {
  const kinds = new Map(rows.map((e) => [e.id, e]));
  return measured.flatMap((m) => {
    const root = kinds.get(m.root);
    if (!root) return [];
    const side = root.kind === 'baseline' ? 'baseline' : m.commit === root.commit ? 'candidate' : 'best';
    return [{ experiment: m.root, run: m.run, value: m.value, side, outcome: outcomes.get(m.root) ?? 'pending' } satisfies RunPoint];
  });
}

/** Time with an experiment in flight: the union of the experiments' [start, end] spans (repeats fall inside their experiment's). */
function runningSeconds(rows: ExperimentRow[], until: string): number {
  const spans = rows
    .filter((e) => e.startedAt !== null)
    .map((e) => [Date.parse(e.startedAt!), Date.parse(e.endedAt ?? until)] as const)
    .sort((a, b) => a[0] - b[0]);
  let total = 0;
  let [from, to] = [Number.NaN, Number.NaN];
  for (const [start, end] of spans) {
    if (Number.isNaN(from) || start > to) {
      if (!Number.isNaN(from)) total += to - from;
      [from, to] = [start, end];
    } else if (end > to) to = end;
  }
  if (!Number.isNaN(from)) total += to - from;
  return total / 1000;
}

function plateauOf(rows: ExperimentRow[], window: number): ReportData['plateau'] {
  const sinceKeep = sinceLastKeep([...rows].reverse());
  return { sinceKeep, window, reached: sinceKeep >= window };
}

/** `finished` and `limits` from a status result, where this build's status has them (they come from the caps part). */
export function capsFromStatus(status: unknown): Caps | null {
  if (!status || typeof status !== 'object') return null;
  const s = status as { finished?: unknown; limits?: unknown };
  if (s.finished === undefined && s.limits === undefined) return null;
  const f = s.finished as { reason?: unknown; at?: unknown } | null | undefined;
  return {
    finished: f && typeof f.reason === 'string' ? { reason: f.reason, at: typeof f.at === 'string' ? f.at : null } : null,
    limits: s.limits && typeof s.limits === 'object' ? (s.limits as Record<string, unknown>) : null,
  };
}
