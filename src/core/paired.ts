// The paired pass-rate test: candidate and best compared trial by trial over the same cases, an exact sign-flip test on
// the summed differences (McNemar's test when each trial is one pass/fail), Wilson intervals for each side's pass rate.
import jStatModule from 'jstat';
import { assertionCounts, assertionTallies, trialScore, type RunCases } from './cases.js';
import { predictivePower, type Comparison, type DecisionRule } from './statistics.js';

/**
 * Below this predictive probability a pass-rate decision stops early. Lower than the unpaired rule's FUTILITY: at 0.1 the
 * early stop kept 8 points fewer of the +10-point gains (82.8% against 90.5% with no early stop), at 0.05 2.4 points fewer
 * for a third more runs per neutral edit (bench/decisions/power.ts).
 */
export const PAIRED_FUTILITY = 0.05;
const { jStat } = jStatModule as unknown as { jStat: { normal: { inv(p: number, m: number, s: number): number; cdf(x: number, m: number, s: number): number } } };

/**
 * The one-sided level of each look: the session's error rate split over its maxRepeats looks (Bonferroni), halved as
 * the unpaired rule's two-sided interval halves it, so `confidence` means the same under both tests.
 */
export function alphaPerLook(rule: DecisionRule): number {
  return (1 - rule.confidence) / rule.maxRepeats / 2;
}

/** Above this much work (units × range of the sum), the exact sign-flip distribution gives way to its normal limit. */
const EXACT_FLIP_WORK = 20_000_000;

/**
 * P(T >= observed) for T = sum of ±|d| with independent fair signs: the exact null distribution of the summed paired
 * differences when each pair's two sides are exchangeable (Fisher's sign-flip permutation test). The differences are
 * whole numbers (passed-assertion counts), so the distribution is counted exactly over the possible sums; with one
 * pass/fail per trial it is McNemar's exact test. Very large inputs use the normal limit, whose error is then negligible.
 */
export function signFlipUpperTail(differences: number[], observed: number): number {
  const sizes = differences.map(Math.abs).filter((a) => a > 0);
  const range = sizes.reduce((s, a) => s + a, 0);
  if (!sizes.every(Number.isInteger) || sizes.length * range > EXACT_FLIP_WORK) {
    const sd = Math.sqrt(sizes.reduce((s, a) => s + a * a, 0));
    return sd === 0 ? (observed <= 0 ? 1 : 0) : 1 - jStat.normal.cdf((observed - 0.5) / sd, 0, 1);
  }
  let dist = new Float64Array(2 * range + 1);
  dist[range] = 1;
  let reach = 0;
  for (const a of sizes) {
    const next = new Float64Array(dist.length);
    for (let x = range - reach; x <= range + reach; x++) {
      const p = dist[x]!;
      if (!p) continue;
      next[x - a] = next[x - a]! + p / 2;
      next[x + a] = next[x + a]! + p / 2;
    }
    dist = next;
    reach += a;
  }
  let tail = 0;
  for (let x = Math.max(0, Math.ceil(observed) + range); x < dist.length; x++) tail += dist[x]!;
  return Math.min(1, tail);
}

/** Wilson score interval of a proportion, in percent. */
export function wilson(successes: number, n: number, z: number): [number, number] | null {
  if (n <= 0) return null;
  const p = successes / n;
  const z2 = z * z;
  const centre = (p + z2 / (2 * n)) / (1 + z2 / n);
  const half = (z / (1 + z2 / n)) * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n));
  return [Math.max(0, centre - half) * 100, Math.min(1, centre + half) * 100];
}

export interface PairedUnits {
  /** Candidate score minus best score for each trial present on both sides (run j of one side with run j of the other). */
  differences: number[];
  /** Assertions checked per side over those trials: the pass rate's denominator. */
  checks: number;
  candidatePassed: number;
  bestPassed: number;
}

/** Pairs run j of the candidate with run j of the best, case and trial alike; trials only one side has are left out. */
export function pairUnits(candidate: RunCases[], best: RunCases[]): PairedUnits {
  const counts = assertionCounts([...candidate, ...best]);
  const out: PairedUnits = { differences: [], checks: 0, candidatePassed: 0, bestPassed: 0 };
  for (let j = 0; j < Math.min(candidate.length, best.length); j++) {
    const other = new Map(best[j]!.trials.map((t) => [`${t.case}\0${t.trial}`, t]));
    for (const c of candidate[j]!.trials) {
      const b = other.get(`${c.case}\0${c.trial}`);
      if (!b) continue;
      const cs = trialScore(c);
      const bs = trialScore(b);
      out.differences.push(cs - bs);
      out.checks += counts.get(c.case) ?? 1;
      out.candidatePassed += cs;
      out.bestPassed += bs;
    }
  }
  return out;
}

export interface PairedDetail {
  units: number;
  better: number;
  worse: number;
  /** One-sided exact p-values of the sign-flip test: the candidate better, and the candidate worse. */
  pBetter: number;
  pWorse: number;
  alpha: number;
  candidate: { passRate: number | null; interval: [number, number] | null };
  best: { passRate: number | null; interval: [number, number] | null };
}

/**
 * One look of the paired test. At a paired look (the best re-measured in this experiment) it may accept, reject, or
 * stop for futility; at the screening look (the candidate's first run against the best's latest earlier run) it may
 * only reject, as the unpaired screening does. `minEffect` is in pass-rate points.
 */
export function pairedLook(input: { units: PairedUnits; paired: boolean; rule: DecisionRule; pairsDone: number }): Comparison & { detail: PairedDetail } {
  const { units, rule } = input;
  const alpha = alphaPerLook(rule);
  const z = jStat.normal.inv(1 - alpha, 0, 1);
  const better = units.differences.filter((d) => d > 0).length;
  const worse = units.differences.filter((d) => d < 0).length;
  const total = units.differences.reduce((a, d) => a + d, 0);
  const pBetter = signFlipUpperTail(units.differences, total);
  const pWorse = signFlipUpperTail(units.differences, -total);
  const side = (passed: number) => ({ passRate: units.checks ? (100 * passed) / units.checks : null, interval: wilson(passed, units.checks, z) });
  const detail: PairedDetail = { units: units.differences.length, better, worse, pBetter, pWorse, alpha, candidate: side(units.candidatePassed), best: side(units.bestPassed) };
  const base = { confidence: 1 - alpha, relative: null, conditionalPower: null, detail };
  if (!units.differences.length || !units.checks) return { ...base, verdict: 'pending', effect: null, interval: null, why: 'no case was measured on both sides yet' };

  const n = units.differences.length;
  const mean = units.differences.reduce((a, d) => a + d, 0) / n;
  const variance = n > 1 ? units.differences.reduce((a, d) => a + (d - mean) ** 2, 0) / (n - 1) : 0;
  // The pass-rate difference and its interval, in points: the sum of the differences over the checks made.
  const scale = (100 * n) / units.checks;
  const effect = mean * scale;
  const half = z * Math.sqrt(variance / n) * scale;
  const out = { ...base, effect, interval: [effect - half, effect + half] as [number, number], relative: detail.best.passRate ? effect / detail.best.passRate : null };
  const counts = `${better} trial pair(s) better, ${worse} worse, ${n - better - worse} tied`;

  if (pWorse <= alpha) return { ...out, verdict: 'worse', why: `paired over the same cases: ${counts}; worse at p=${p(pWorse)} (exact sign-flip test, per-look level ${p(alpha)})` };
  // The screening look pairs with the best's last run, which won its place: it may reject or stop, never accept.
  if (input.paired && pBetter <= alpha && effect > rule.minEffect) {
    return { ...out, verdict: 'improved', why: `paired over the same cases: ${counts}; better at p=${p(pBetter)} (exact sign-flip test, per-look level ${p(alpha)})` };
  }
  if (out.interval[1] < rule.minEffect) return { ...out, verdict: 'worse', why: `paired over the same cases: ${counts}; the whole interval is below minEffect (${rule.minEffect})` };
  if (input.paired && input.pairsDone >= rule.maxRepeats) {
    return { ...out, verdict: 'inconclusive', why: `paired over the same cases: ${counts}; p=${p(pBetter)} after maxRepeats (${rule.maxRepeats}) pairs` };
  }
  // Stochastic curtailment as the unpaired test does it, on the mean difference per trial: stop when even the remaining
  // pairs would show an improvement with less than PAIRED_FUTILITY predictive probability. The screening look stops too.
  const power = conditionalPower(mean, Math.sqrt(variance), n, Math.max(1, input.pairsDone), rule, z, scale);
  if (power !== null && power < PAIRED_FUTILITY) {
    return { ...out, conditionalPower: power, verdict: 'inconclusive', why: `stopped early (${counts}): even ${rule.maxRepeats} pairs would show an improvement with only ${(power * 100).toFixed(1)}% probability` };
  }
  const where = input.paired ? 'paired over the same cases' : "screened against the best's last run";
  const next = input.paired ? 'not clear yet, measuring another pair' : 're-measuring the best beside it';
  return { ...out, conditionalPower: power, verdict: 'pending', why: `${where}: ${counts}; ${next}` };
}

/** Predictive probability that maxRepeats pairs end in `improved`, from the mean and sd of the paired differences so far. */
function conditionalPower(mean: number, sd: number, n: number, pairsDone: number, rule: DecisionRule, z: number, scale: number): number | null {
  if (sd === 0) return null;
  const finalSe = sd / Math.sqrt((n * rule.maxRepeats) / pairsDone);
  return predictivePower(mean, sd / Math.sqrt(n), finalSe, rule.minEffect / scale + z * finalSe);
}

export interface AssertionChange {
  name: string;
  candidate: number;
  best: number;
  change: 'better' | 'worse' | 'same';
}

/** Each assertion's pass rate on both sides, the changed ones first (largest change first). */
export function assertionChanges(candidate: RunCases[], best: RunCases[]): AssertionChange[] {
  const c = assertionTallies(candidate);
  const b = assertionTallies(best);
  const rows: AssertionChange[] = [];
  for (const name of new Set([...c.keys(), ...b.keys()])) {
    const cr = rate(c.get(name));
    const br = rate(b.get(name));
    if (cr === null || br === null) continue;
    rows.push({ name, candidate: cr, best: br, change: cr > br ? 'better' : cr < br ? 'worse' : 'same' });
  }
  return rows.sort((x, y) => Math.abs(y.candidate - y.best) - Math.abs(x.candidate - x.best) || x.name.localeCompare(y.name));
}

const rate = (t: { passed: number; total: number } | undefined) => (t && t.total ? (100 * t.passed) / t.total : null);
const p = (x: number) => (x < 0.001 ? x.toExponential(1) : Number(x.toPrecision(2)).toString());
