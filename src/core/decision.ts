// The decision, pure: how a candidate compares with the best under the session's rule, from measurements alone.
import { hostname } from 'node:os';
import type { Config } from './config.js';
import type { ExperimentRow, Measurement } from './ledger.js';
import { criticalValue, decide, exactness, noiseSd, pooledNoise, summarize, type PooledNoise } from './statistics.js';
import type { RunCases } from './cases.js';
import { assertionChanges, pairUnits, pairedLook } from './paired.js';
import type { ConstraintCheck, DecisionReport } from './views.js';

/** The machine a run measured on: only measurements from the same host and GPU model are compared or pooled. */
export interface Machine {
  host: string;
  gpuModel: string | null;
}

export function machineOf(e: Pick<ExperimentRow, 'host' | 'gpus'>): Machine {
  return { host: e.host ?? hostname(), gpuModel: e.gpus?.model ?? null };
}

export function onMachine(measurements: Measurement[], machine: Machine): Measurement[] {
  return measurements.filter((m) => m.host === machine.host && m.gpuModel === machine.gpuModel);
}

/**
 * Pooled over groups of repeated runs of one commit within one experiment, so drift between experiments does not
 * count as noise. Whether a zero sd may be trusted is judged per commit across experiments (see exactness).
 */
export function noiseOf(measurements: Measurement[]): PooledNoise {
  const groups = new Map<string, number[]>();
  const byCommit = new Map<string, number[]>();
  for (const m of measurements) {
    const key = `${m.root}:${m.commit}`;
    const group = groups.get(key);
    if (group) group.push(m.value);
    else groups.set(key, [m.value]);
    const same = byCommit.get(m.commit);
    if (same) same.push(m.value);
    else byCommit.set(m.commit, [m.value]);
  }
  const { exact, grid } = exactness([...byCommit.values()]);
  return { ...pooledNoise([...groups.values()]), exact, ...(grid !== null ? { floor: grid / Math.sqrt(12) } : {}) };
}

export interface Comparison {
  bestId: number | null;
  bestMetric: number | null;
  delta: number | null;
  improved: boolean;
  equal: boolean;
  direction: 'minimize' | 'maximize';
}

/** One figure against the best's stored figure: the greedy rule's whole decision. */
export function compare(metric: number, best: Pick<ExperimentRow, 'id' | 'metric'> | undefined, direction: 'minimize' | 'maximize'): Comparison {
  if (!best || best.metric === null) return { bestId: best?.id ?? null, bestMetric: null, delta: null, improved: true, equal: false, direction };
  const delta = metric - best.metric;
  const improved = direction === 'minimize' ? delta < 0 : delta > 0;
  return { bestId: best.id, bestMetric: best.metric, delta, improved, equal: delta === 0, direction };
}

/** Interval of one side's mean with the session's pooled noise, at the per-look confidence. */
export function meanInterval(values: number[], noise: PooledNoise, rule: Config['decision']): [number, number] | null {
  if (!values.length || !noise.df || !Number.isFinite(noise.sd)) return null;
  const mean = values.reduce((a, x) => a + x, 0) / values.length;
  const half = criticalValue(rule, noise.df) * (noiseSd(noise) / Math.sqrt(values.length));
  return [mean - half, mean + half];
}

export function checkConstraints(config: Config, metric: number, secondary: Record<string, number>): ConstraintCheck[] {
  return config.metric.constraints.map((c) => {
    const value = c.metric === config.metric.name ? metric : secondary[c.metric] ?? null;
    const ok = value !== null && (c.max === undefined || value <= c.max) && (c.min === undefined || value >= c.min);
    return { metric: c.metric, value, ...(c.min !== undefined ? { min: c.min } : {}), ...(c.max !== undefined ? { max: c.max } : {}), ok };
  });
}

export interface DecisionInput {
  root: ExperimentRow;
  best: ExperimentRow | undefined;
  config: Config;
  /** The session's measurements of the primary metric on the root's machine. */
  measurements: Measurement[];
  /** Their pooled noise, when the caller already has it (it is the costly part at 100k measurements). */
  noise?: PooledNoise;
  runsSpent: number;
  /** A failed re-measurement of the best ends the decision with the runs it has. */
  final?: boolean;
  /** The first of the candidate's runs that failed a constraint; by default the root's own run, if it did. */
  constraintFailure?: ConstraintFailure | null;
  /** Case-by-case results, when the metric step prints them: the decision is then the paired test over cases. */
  cases?: PairedCases | null;
}

/** The case results of the candidate's runs and of the best's re-measurements (in run order), and the best's latest earlier run. */
export interface PairedCases {
  candidate: RunCases[];
  fresh: RunCases[];
  history: RunCases | null;
}

export interface ConstraintFailure {
  run: number;
  checks: ConstraintCheck[];
}

/** The candidate's first run (its own or a repeat of it) that failed a constraint, or null. */
export function constraintFailureOf(root: ExperimentRow, runs: ExperimentRow[]): ConstraintFailure | null {
  const failed = runs.find((r) => r.commit === root.commit && r.constraintChecks.some((c) => !c.ok));
  return failed ? { run: failed.id, checks: failed.constraintChecks } : null;
}

/**
 * Where a candidate stands: greedy compares one run with the best's figure; significant runs the sequential test.
 * A failed constraint makes it worse at once, whatever the metric: no further run could make it keepable.
 */
export function decisionReport(input: DecisionInput): DecisionReport {
  const report = input.config.decision.rule === 'greedy' ? greedyReport(input) : significantReport(input);
  const failure = input.constraintFailure !== undefined ? input.constraintFailure : constraintFailureOf(input.root, [input.root]);
  if (!failure) return report;
  return { ...report, verdict: 'worse', why: `run #${failure.run} failed constraint(s) ${describeChecks(failure.checks)}: worse whatever the metric, so no more runs are spent on it` };
}

/** `peak_vram_mb=600 (max 500)` for each failed check. */
export function describeChecks(checks: ConstraintCheck[]): string {
  const bounds = (c: ConstraintCheck) => [c.min !== undefined ? `min ${c.min}` : '', c.max !== undefined ? `max ${c.max}` : ''].filter(Boolean).join(', ');
  return checks
    .filter((c) => !c.ok)
    .map((c) => `${c.metric}=${c.value ?? 'missing'} (${bounds(c)})`)
    .join('; ');
}

function greedyReport({ root, best, config, runsSpent }: DecisionInput): DecisionReport {
  const cmp = root.metric === null ? null : compare(root.metric, best, config.metric.direction);
  const sign = config.metric.direction === 'minimize' ? -1 : 1;
  const effect = cmp === null || cmp.delta === null ? null : sign * cmp.delta;
  return {
    rule: 'greedy',
    runs: root.metric === null ? [] : [{ id: root.id, side: 'candidate', value: root.metric }],
    verdict: cmp === null ? 'pending' : cmp.improved ? 'improved' : cmp.equal ? 'inconclusive' : 'worse',
    candidate: { commit: root.commit, n: root.metric === null ? 0 : 1, mean: root.metric, interval: null },
    best: { commit: best?.commit ?? null, n: best?.metric != null ? 1 : 0, mean: best?.metric ?? null, interval: null },
    effect,
    effectInterval: null,
    relativeEffect: effect !== null && best?.metric ? effect / Math.abs(best.metric) : null,
    confidence: 0,
    conditionalPower: null,
    runsSpent,
    why: 'greedy rule: one run each, strictly better keeps',
  };
}

function significantReport(input: DecisionInput): DecisionReport {
  const paired = input.cases ? pairedReport(input, input.cases) : null;
  if (paired) return paired;
  const { root, config, measurements, runsSpent, final, noise: known } = input;
  const rule = config.decision;
  const mine = measurements.filter((m) => m.root === root.id);
  const candidate = mine.filter((m) => m.commit === root.commit).map((m) => m.value);
  const fresh = mine.filter((m) => m.commit === root.parentCommit).map((m) => m.value);
  const noise = known ?? noiseOf(measurements);
  const side = (commit: string | null, values: number[]) => ({ commit, n: values.length, mean: summarize(values).mean, interval: meanInterval(values, noise, rule) });
  const cmp = decide({
    candidate,
    fresh,
    history: measurements.filter((m) => m.commit === root.parentCommit && m.root !== root.id).map((m) => m.value),
    noise,
    rule,
    direction: config.metric.direction,
    final,
  });
  return {
    rule: 'significant',
    runs: mine.map((m) => ({ id: m.run, side: m.commit === root.commit ? ('candidate' as const) : ('best' as const), value: m.value })),
    verdict: cmp.verdict,
    candidate: side(root.commit, candidate),
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

/**
 * The paired test over cases, when both sides printed case results: the candidate's runs against the best re-measured
 * within this experiment, or at the screening look its first run against the best's latest earlier run. Null when
 * there is nothing to pair yet (then the unpaired test decides, as for any metric).
 */
function pairedReport({ root, config, measurements, runsSpent, final }: DecisionInput, cases: PairedCases): DecisionReport | null {
  const rule = config.decision;
  const isPaired = cases.fresh.length > 0;
  if (!cases.candidate.length || (!isPaired && !cases.history)) return null;
  const mine = measurements.filter((m) => m.root === root.id);
  const candidateValues = mine.filter((m) => m.commit === root.commit).map((m) => m.value);
  const freshValues = mine.filter((m) => m.commit === root.parentCommit).map((m) => m.value);
  const pairs = Math.min(cases.candidate.length, cases.fresh.length);
  const reference = isPaired ? cases.fresh : [cases.history!];
  const look = pairedLook({ units: pairUnits(isPaired ? cases.candidate.slice(0, pairs) : cases.candidate.slice(0, 1), isPaired ? cases.fresh.slice(0, pairs) : reference), paired: isPaired, rule, pairsDone: pairs });
  let verdict = look.verdict;
  let why = look.why;
  if (isPaired && cases.candidate.length !== cases.fresh.length && !final) {
    verdict = 'pending';
    why = 'mid-pair';
  } else if (verdict === 'pending' && (final || pairs >= rule.maxRepeats)) {
    verdict = 'inconclusive';
    why = `${why}; ${final ? 'no further runs were possible' : `maxRepeats (${rule.maxRepeats}) pairs spent`}`;
  }
  const d = look.detail;
  return {
    rule: 'significant',
    runs: mine.map((m) => ({ id: m.run, side: m.commit === root.commit ? ('candidate' as const) : ('best' as const), value: m.value })),
    verdict,
    candidate: { commit: root.commit, n: candidateValues.length, mean: summarize(candidateValues).mean, interval: d.candidate.interval },
    best: { commit: root.parentCommit, n: freshValues.length, mean: summarize(freshValues).mean, interval: d.best.interval },
    effect: look.effect,
    effectInterval: look.interval,
    relativeEffect: look.relative,
    confidence: look.confidence,
    conditionalPower: look.conditionalPower,
    runsSpent,
    why,
    paired: { ...d, screening: !isPaired, assertions: assertionChanges(cases.candidate, reference) },
  };
}

/**
 * Candidates decided since the last keep, from experiments newest first: the plateau's count. Refusals and runs
 * still going are not tries yet; the baseline and repeats are not candidates.
 */
export function sinceLastKeep(newestFirst: ExperimentRow[]): number {
  let count = 0;
  for (const e of newestFirst) {
    if (e.kind !== 'candidate' || e.state === 'refused' || e.state === 'running' || e.state === 'queued') continue;
    if (e.decision === 'kept') break;
    count++;
  }
  return count;
}
