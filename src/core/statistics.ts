// The statistics behind a keep under the `significant` rule: noise, intervals, verdicts, early stopping, pruning.
// Pure functions over numbers, so every verdict path is testable against known distributions.
import jstatModule from 'jstat';

const { jStat } = jstatModule as unknown as { jStat: JStat };

interface JStat {
  mean(values: number[]): number;
  median(values: number[]): number;
  studentt: { inv(p: number, dof: number): number };
  normal: { inv(p: number, mean: number, sd: number): number; cdf(x: number, mean: number, sd: number): number };
}

export type Direction = 'minimize' | 'maximize';
export type Verdict = 'improved' | 'worse' | 'inconclusive';

/** What one side of a comparison looks like: its samples summarised. */
export interface SampleSummary {
  n: number;
  mean: number | null;
  sd: number | null;
  /** Median absolute deviation (raw, not scaled to σ). */
  mad: number | null;
  /** sd / |mean|. */
  cv: number | null;
}

export function summarize(values: number[]): SampleSummary {
  const n = values.length;
  if (!n) return { n, mean: null, sd: null, mad: null, cv: null };
  const mean = jStat.mean(values);
  const sd = n > 1 ? Math.sqrt(values.reduce((a, x) => a + (x - mean) ** 2, 0) / (n - 1)) : null;
  const median = jStat.median(values);
  const mad = jStat.median(values.map((x) => Math.abs(x - median)));
  return { n, mean, sd, mad, cv: sd !== null && mean !== 0 ? sd / Math.abs(mean) : null };
}

/**
 * The session's noise: the pooled within-group standard deviation over groups of repeated runs of
 * one commit on one machine (as in a one-way ANOVA). Pooling many small groups gives the degrees of
 * freedom that a single experiment's 2–5 runs cannot.
 */
export interface PooledNoise {
  sd: number;
  df: number;
  /** Judged exact (see exactness): only then may a zero sd be trusted, and a difference taken as real. */
  exact?: boolean;
  /**
   * Least sd to assume for a metric on a coarse grid of step g, whose runs agree more often than they are precise:
   * g/√12, the sd of a reading rounded to that grid (the standard uncertainty of a resolution g, as in the GUM).
   */
  floor?: number;
}

/** The sd the intervals use: the pooled one, never below the floor. */
export function noiseSd(noise: PooledNoise): number {
  return Math.max(noise.sd, noise.floor ?? 0);
}

/**
 * Runs of one commit that must agree exactly before a metric is taken as exact. Five identical runs: a metric
 * whose run repeated the previous value only half the time would do so four times running 1 time in 16, and a
 * noisy fine-grained metric almost never repeats a value at all. The baseline's three calibration runs alone
 * are not enough: one re-measurement of the best or two of a candidate must agree too.
 */
export const EXACT_RUNS = 5;

/** Largest denominator tried for a grid: pass rates of up to 100 cases, counts, percentages, two-decimal figures. */
const MAX_GRID_DENOMINATOR = 100;

/**
 * The step of the coarse grid every value lies on (k/d for one d up to 100, or an integer), or null for a
 * fine-grained metric. A pass rate or a count can only take a few values, so runs agree by chance: such a
 * metric is never taken as exact. The step is the smallest gap seen between distinct values (at least 1/d).
 */
export function gridStep(values: number[]): number | null {
  if (!values.length) return null;
  let denominator = 0;
  for (let d = 1; d <= MAX_GRID_DENOMINATOR && !denominator; d++) {
    if (values.every((v) => Math.abs(v * d - Math.round(v * d)) <= 1e-9 * Math.max(1, Math.abs(v * d)))) denominator = d;
  }
  if (!denominator) return null;
  const distinct = [...new Set(values)].sort((a, b) => a - b);
  let gap = Infinity;
  for (let i = 1; i < distinct.length; i++) gap = Math.min(gap, distinct[i]! - distinct[i - 1]!);
  return Math.max(1 / denominator, Number.isFinite(gap) ? gap : 0);
}

/**
 * Whether the session's metric is exact, from its values grouped by commit (across experiments, so the best's
 * re-measurements count): never on a coarse grid, never once one commit gave two different values, and only
 * once some commit gave EXACT_RUNS identical values.
 */
export function exactness(byCommit: number[][]): { exact: boolean; grid: number | null } {
  const grid = gridStep(byCommit.flat());
  if (grid !== null) return { exact: false, grid };
  if (byCommit.some((g) => g.some((v) => v !== g[0]))) return { exact: false, grid };
  return { exact: byCommit.some((g) => g.length >= EXACT_RUNS), grid };
}

export function pooledNoise(groups: number[][]): PooledNoise {
  let squares = 0;
  let df = 0;
  for (const g of groups) {
    if (g.length < 2) continue;
    const m = jStat.mean(g);
    squares += g.reduce((a, x) => a + (x - m) ** 2, 0);
    df += g.length - 1;
  }
  return { sd: df ? Math.sqrt(squares / df) : NaN, df };
}

export interface DecisionRule {
  confidence: number;
  minEffect: number;
  maxRepeats: number;
}

/**
 * Each look spends an equal share of the error rate (Bonferroni over the `maxRepeats` looks), so
 * stopping at whichever look first clears the bar keeps the chance of keeping a non-improvement
 * below 1 − confidence over the whole experiment.
 */
export function criticalValue(rule: DecisionRule, df: number): number {
  const alphaPerLook = (1 - rule.confidence) / rule.maxRepeats;
  return jStat.studentt.inv(1 - alphaPerLook / 2, df);
}

/** The smallest true improvement the final look detects 80% of the time, in metric units. */
export function minimumDetectableEffect(noise: PooledNoise, rule: DecisionRule): number | null {
  if (!noise.df || !Number.isFinite(noise.sd)) return null;
  const crit = criticalValue(rule, noise.df);
  return (crit + jStat.normal.inv(0.8, 0, 1)) * noiseSd(noise) * Math.sqrt(2 / rule.maxRepeats);
}

export interface Comparison {
  verdict: Verdict | 'pending';
  /** Improvement in the metric's direction (positive = better), candidate mean vs best mean. */
  effect: number | null;
  interval: [number, number] | null;
  /** effect / |best mean|. */
  relative: number | null;
  confidence: number;
  /** Predictive probability that the remaining repeats end in `improved`, given the runs so far. */
  conditionalPower: number | null;
  why: string;
}

/**
 * One look at the evidence. `reference` is what the candidate is compared with: at a screening
 * look (the candidate's first run) the best's earlier samples, which may only ever reject; at a
 * paired look the best's samples re-measured within this experiment, which alone may accept.
 */
export function look(input: {
  candidate: number[];
  reference: number[];
  paired: boolean;
  noise: PooledNoise;
  rule: DecisionRule;
  direction: Direction;
  /** Pairs that may still be measured after this look. */
  pairsLeft: number;
}): Comparison {
  const { candidate, reference, noise, rule, direction } = input;
  const confidence = 1 - (1 - rule.confidence) / rule.maxRepeats;
  const base: Comparison = { verdict: 'pending', effect: null, interval: null, relative: null, confidence, conditionalPower: null, why: '' };
  if (!candidate.length || !reference.length) return { ...base, why: 'no samples to compare yet' };
  const sign = direction === 'minimize' ? -1 : 1;
  const refMean = jStat.mean(reference);
  const effect = sign * (jStat.mean(candidate) - refMean);
  const relative = refMean !== 0 ? effect / Math.abs(refMean) : null;
  const out = { ...base, effect, relative };
  const last = input.pairsLeft <= 0;

  if (noise.df > 0 && noise.sd === 0 && noise.exact === true) {
    // Judged exact (fine-grained, EXACT_RUNS identical runs of one commit, no commit ever varied): a difference is real.
    out.interval = [effect, effect];
    if (effect < rule.minEffect) return { ...out, verdict: 'worse', why: 'deterministic metric: the candidate measured no better than the best' };
    if (!input.paired) return { ...out, why: 'deterministic so far: one re-measurement of the best confirms it' };
    if (effect > rule.minEffect) return { ...out, verdict: 'improved', why: 'deterministic metric: the candidate measured better than the re-measured best' };
    return { ...out, verdict: 'inconclusive', why: 'deterministic metric: the candidate ties the best' };
  }
  if (!noise.df) return { ...out, why: 'the noise is not known yet (no metric was measured twice); measuring again' };
  const sd = noiseSd(noise);
  if (sd === 0) {
    const why = `no run has varied yet, but the metric is not known to be exact until one commit gives ${EXACT_RUNS} identical runs; measuring again`;
    return { ...out, verdict: last && input.paired ? 'inconclusive' : 'pending', why };
  }

  const se = sd * Math.sqrt(1 / candidate.length + 1 / reference.length);
  const crit = criticalValue(rule, noise.df);
  out.interval = [effect - crit * se, effect + crit * se];
  if (input.paired && out.interval[0] > rule.minEffect) return { ...out, verdict: 'improved', why: `the whole interval is better than minEffect (${rule.minEffect})` };
  if (out.interval[1] < rule.minEffect) {
    return { ...out, verdict: 'worse', why: rule.minEffect ? `the whole interval is below minEffect (${rule.minEffect})` : 'the whole interval is on the worse side' };
  }
  if (last && input.paired) return { ...out, verdict: 'inconclusive', why: `maxRepeats (${rule.maxRepeats}) pairs spent and the interval still straddles minEffect` };

  // Stochastic curtailment by predictive power (Spiegelhalter, Freedman & Blackburn 1986): stop when the remaining
  // repeats are unlikely to end in an improvement, averaging over what the true effect may be given the runs so far.
  // The final look will also know the noise better: each further run adds a degree of freedom.
  const finalSe = sd * Math.sqrt(2 / rule.maxRepeats);
  const finalCrit = criticalValue(rule, noise.df + 2 * Math.max(0, input.pairsLeft));
  const power = predictivePower(effect, se, finalSe, rule.minEffect + finalCrit * finalSe);
  if (power !== null) {
    out.conditionalPower = power;
    if (out.conditionalPower < FUTILITY) {
      return {
        ...out,
        verdict: 'inconclusive',
        why: `stopped early: even ${rule.maxRepeats} pairs would show an improvement with only ${(out.conditionalPower * 100).toFixed(1)}% probability`,
      };
    }
  }
  return { ...out, why: 'not clear yet; measuring another pair' };
}

/**
 * Where an experiment stands after its latest run. The candidate's first run is screened against the
 * best's earlier runs (`history`), which can reject it but never accept it; from then on, looks happen
 * at each completed pair, against the best as re-measured within this experiment (`fresh`).
 */
export function decide(input: {
  candidate: number[];
  fresh: number[];
  history: number[];
  noise: PooledNoise;
  rule: DecisionRule;
  direction: Direction;
  /** No further run is possible (a repeat of the best failed): a pending verdict becomes inconclusive. */
  final?: boolean;
}): Comparison {
  const { candidate, fresh, rule } = input;
  const paired = fresh.length > 0;
  if (paired && candidate.length !== fresh.length && !input.final) {
    return { verdict: 'pending', effect: null, interval: null, relative: null, confidence: 0, conditionalPower: null, why: 'mid-pair' };
  }
  const pairs = Math.min(candidate.length, fresh.length);
  let cmp = look({
    candidate,
    reference: paired ? fresh : input.history,
    paired,
    noise: input.noise,
    rule,
    direction: input.direction,
    pairsLeft: rule.maxRepeats - pairs,
  });
  if (input.final && cmp.verdict === 'pending') cmp = { ...cmp, verdict: 'inconclusive', why: `${cmp.why}; no further runs were possible` };
  if (paired && cmp.verdict === 'pending' && pairs >= rule.maxRepeats) {
    cmp = { ...cmp, verdict: 'inconclusive', why: `${cmp.why}; maxRepeats (${rule.maxRepeats}) pairs spent` };
  }
  return cmp;
}

/**
 * The predictive probability that the final look's estimate clears `bar`, given the estimate now (standard error `se`)
 * and the final look's standard error `finalSe`: the current information is the fraction r of the final, and the final
 * estimate is spread by both what is still to be measured and what the true effect may be. Null when no more
 * information is coming (r ≥ 1).
 */
export function predictivePower(estimate: number, se: number, finalSe: number, bar: number): number | null {
  const r = finalSe ** 2 / se ** 2;
  if (!(r < 1)) return null;
  const spread = Math.sqrt(finalSe ** 2 * (1 - r) + (1 - r) ** 2 * se ** 2);
  return jStat.normal.cdf((estimate - bar) / spread, 0, 1);
}

/** Below this conditional power, further repeats are not worth their runs. */
export const FUTILITY = 0.1;

/**
 * Which commit the next repeat measures. Runs go candidate, best, best, candidate, candidate, best …
 * (ABBA), which cancels a linear drift within each pair of pairs and swaps the working tree once per pair.
 */
export function nextSide(runsSoFar: number): Side {
  return ['candidate', 'best', 'best', 'candidate'][runsSoFar % 4] as Side;
}

export type Side = 'candidate' | 'best';

/**
 * The sides of a batch of runs measured at once, one per device. `history[i]` is what device i measured before in this
 * decision, oldest first (empty for a device new to it, or one that cannot be told apart, like a CPU slot); `before`
 * counts the decision's runs of each side. The batch brings the sides level when its size allows, since a look needs
 * whole pairs. Each device keeps its own ABBA order, so every two of its runs measure both sides and a device faster
 * than its peers weighs on both alike; a device new to the decision takes the side the batch still needs, and where
 * either would do, `swap` (a coin the caller flips) decides which new device takes which, so no device is the
 * candidate's decision after decision. On one device this is nextSide's order.
 */
export function batchSides(before: { candidate: number; best: number }, history: Side[][], swap = false): Side[] {
  const size = history.length;
  const runs = before.candidate + before.best;
  const even = (size - (before.candidate - before.best)) / 2;
  // An odd batch cannot level the sides: its extra run goes where the ABBA order would put it.
  const candidates = Math.min(size, Math.max(0, Number.isInteger(even) ? even : nextSide(runs) === 'candidate' ? Math.ceil(even) : Math.floor(even)));
  const left = { candidate: candidates, best: size - candidates };
  const sides: (Side | null)[] = history.map((past) => {
    if (!past.length) return null;
    const first = past[0]!;
    const wanted = nextSide(past.length) === 'candidate' ? first : other(first);
    if (!left[wanted]) return null;
    left[wanted]--;
    return wanted;
  });
  return sides.map((side, i) => {
    if (side) return side;
    const pick = left.candidate > left.best ? 'candidate' : left.best > left.candidate ? 'best' : ((i + runs) % 2 === 0) !== swap ? 'candidate' : 'best';
    left[pick]--;
    return pick;
  });
}

function other(side: Side): Side {
  return side === 'candidate' ? 'best' : 'candidate';
}

// ---------------------------------------------------------------- pruning

export interface CurvePoint {
  step: number;
  value: number;
}

/** The curve's value at `step`: the last point at or before it. */
export function valueAt(curve: CurvePoint[], step: number): number | null {
  let found: number | null = null;
  for (const p of curve) {
    if (p.step <= step) found = p.value;
    else break;
  }
  return found;
}

export interface PruneCheck {
  prune: boolean;
  step: number;
  value: number;
  /** Median of the best's curves at this step. */
  median: number | null;
  margin: number;
  why: string;
}

/**
 * How much worse than the best's median an intermediate value must be to count as clearly worse: as
 * much as the screening look needs to call a finished run worse (the same per-look confidence), so
 * pruning only stops runs the decision would reject anyway. With no noise known yet it is 0, the
 * plain median rule.
 */
export function pruneMargin(noise: PooledNoise, rule: DecisionRule, referenceRuns: number): number {
  if (!noise.df || !Number.isFinite(noise.sd)) return 0;
  return criticalValue(rule, noise.df) * noiseSd(noise) * Math.sqrt(1 + 1 / Math.max(1, referenceRuns));
}

/**
 * Median-style pruning as in Optuna's MedianPruner: after the warm-up, a run whose latest
 * intermediate value is worse than the median of the best's runs at the same step by more than
 * `margin` (see pruneMargin) is stopped. Curves are compared only where the best reached the step.
 */
export function checkPrune(input: {
  curve: CurvePoint[];
  references: CurvePoint[][];
  warmupFraction: number;
  margin: number;
  direction: Direction;
}): PruneCheck | null {
  const latest = input.curve[input.curve.length - 1];
  const refs = input.references.filter((r) => r.length > 0);
  if (!latest || !refs.length) return null;
  const lastRefStep = Math.max(...refs.map((r) => r[r.length - 1]!.step));
  if (latest.step < input.warmupFraction * lastRefStep || latest.step > lastRefStep) return null;
  const atStep = refs.map((r) => valueAt(r, latest.step)).filter((v): v is number => v !== null);
  if (!atStep.length) return null;
  const median = jStat.median(atStep);
  const worseBy = input.direction === 'minimize' ? latest.value - median : median - latest.value;
  const prune = worseBy > input.margin;
  return {
    prune,
    step: latest.step,
    value: latest.value,
    median,
    margin: input.margin,
    why: `at step ${latest.step} the run reads ${fmt(latest.value)}, the best's runs ${fmt(median)} (median of ${atStep.length}); ${prune ? 'worse' : 'not worse'} by more than the margin ${fmt(input.margin)}`,
  };
}

const fmt = (n: number) => Number(n.toPrecision(6)).toString();
