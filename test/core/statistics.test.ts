// The statistics against known distributions: summaries, pooled noise, the error rate and power of the
// sequential decision (simulated with a seeded generator through the same `decide` the loop uses), pruning.
import { describe, it, expect } from 'vitest';
import { noiseOf } from '../../src/core/decision.js';
import type { Measurement } from '../../src/core/ledger.js';
import {
  checkPrune,
  EXACT_RUNS,
  exactness,
  gridStep,
  pruneMargin,
  decide,
  minimumDetectableEffect,
  nextSide,
  pooledNoise,
  summarize,
  valueAt,
  type DecisionRule,
  type Verdict,
} from '../../src/core/statistics.js';

function seeded(seed: number) {
  let s = seed >>> 0;
  const rand = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
}

const RULE: DecisionRule = { confidence: 0.95, minEffect: 0, maxRepeats: 5 };

/**
 * One experiment as the loop runs it: a calibrated best (3 runs), then the candidate's first run,
 * then best/candidate repeats in ABBA order until `decide` returns a verdict. Minimize.
 */
function simulate(trueEffect: number, sigma: number, gauss: () => number, rule = RULE): { verdict: Verdict; runs: number } {
  const history = [0, 0, 0].map(() => 1 + sigma * gauss());
  const candidate: number[] = [];
  const fresh: number[] = [];
  for (let run = 0; ; run++) {
    const side = nextSide(run);
    if (side === 'candidate') candidate.push(1 - trueEffect + sigma * gauss());
    else fresh.push(1 + sigma * gauss());
    const noise = pooledNoise([history, candidate, fresh]);
    const cmp = decide({ candidate, fresh, history, noise, rule, direction: 'minimize' });
    if (cmp.verdict !== 'pending') return { verdict: cmp.verdict, runs: run + 1 };
  }
}

function rates(trueEffect: number, trials: number, seed: number, rule = RULE) {
  const gauss = seeded(seed);
  const counts = { improved: 0, worse: 0, inconclusive: 0, runs: 0 };
  for (let i = 0; i < trials; i++) {
    const { verdict, runs } = simulate(trueEffect, 1, gauss, rule);
    counts[verdict]++;
    counts.runs += runs;
  }
  return { improved: counts.improved / trials, worse: counts.worse / trials, runsPerExperiment: counts.runs / trials };
}

describe('summaries', () => {
  it('computes sd, MAD and CV of a known sample', () => {
    const s = summarize([2, 4, 4, 4, 5, 5, 7, 9]);
    expect(s.mean).toBe(5);
    expect(s.sd).toBeCloseTo(Math.sqrt(32 / 7), 12);
    expect(s.mad).toBe(0.5);
    expect(s.cv).toBeCloseTo(Math.sqrt(32 / 7) / 5, 12);
    expect(summarize([3]).sd).toBeNull();
    expect(summarize([]).mean).toBeNull();
  });

  it('recovers σ of a normal distribution from many small groups, ignoring group means', () => {
    const gauss = seeded(11);
    const groups = Array.from({ length: 400 }, (_, g) => [0, 0, 0].map(() => g * 10 + 2 * gauss()));
    const noise = pooledNoise(groups);
    expect(noise.df).toBe(800);
    expect(noise.sd).toBeGreaterThan(1.9);
    expect(noise.sd).toBeLessThan(2.1);
    expect(pooledNoise([[1], [2]]).df).toBe(0);
  });

  it('reports a detectable effect that shrinks with more repeats and grows with confidence', () => {
    const noise = { sd: 1, df: 30 };
    const five = minimumDetectableEffect(noise, RULE)!;
    expect(minimumDetectableEffect(noise, { ...RULE, maxRepeats: 20 })!).toBeLessThan(five);
    expect(minimumDetectableEffect(noise, { ...RULE, confidence: 0.99 })!).toBeGreaterThan(five);
    expect(minimumDetectableEffect({ sd: NaN, df: 0 }, RULE)).toBeNull();
  });
});

describe('the sequential decision', () => {
  it('keeps a change with no true effect at most 1 − confidence of the time, one-sided, despite looking after every pair', () => {
    const { improved } = rates(0, 4000, 1);
    expect(improved).toBeLessThan((1 - RULE.confidence) / 2);
  });

  it('keeps a harmful change even more rarely, and mostly rejects it early', () => {
    const r = rates(-1, 2000, 2);
    expect(r.improved).toBeLessThan(0.005);
    expect(r.runsPerExperiment).toBeLessThan(4);
  });

  it('detects a large true improvement nearly always, even in a fresh session that knows its noise from three runs', () => {
    expect(rates(4, 1000, 3).improved).toBeGreaterThan(0.95);
  });

  it('detects an improvement of the reported minimum detectable effect a fair share of the time', () => {
    // The figure assumes all maxRepeats pairs; early stopping for futility gives up a little of that power.
    const mde = minimumDetectableEffect({ sd: 1, df: 30 }, RULE)!;
    const { improved } = rates(mde, 1000, 4);
    expect(improved).toBeGreaterThan(0.5);
    expect(improved).toBeLessThan(0.95);
  });

  it('never accepts on the screening look, however good the first run reads', () => {
    const cmp = decide({
      candidate: [0],
      fresh: [],
      history: [1, 1.01, 0.99],
      noise: { sd: 0.01, df: 2 },
      rule: RULE,
      direction: 'minimize',
    });
    expect(cmp.verdict).toBe('pending');
    expect(cmp.effect).toBeCloseTo(1, 10);
  });

  it('waits for a complete pair before looking again', () => {
    const cmp = decide({ candidate: [0.9], fresh: [1, 1], history: [1, 1, 1.01], noise: { sd: 0.01, df: 4 }, rule: RULE, direction: 'minimize' });
    expect(cmp.verdict).toBe('pending');
    expect(cmp.why).toBe('mid-pair');
  });

  it('respects the direction and minEffect', () => {
    const base = { history: [10, 10.1, 9.9], noise: { sd: 0.1, df: 10 }, rule: RULE };
    const higher = decide({ ...base, candidate: [12, 12], fresh: [10, 10], direction: 'maximize' });
    expect(higher.verdict).toBe('improved');
    expect(higher.effect).toBeCloseTo(2, 10);
    expect(decide({ ...base, candidate: [12, 12], fresh: [10, 10], direction: 'minimize' }).verdict).toBe('worse');
    const tooSmall = decide({ ...base, rule: { ...RULE, minEffect: 5 }, candidate: [12, 12], fresh: [10, 10], direction: 'maximize' });
    expect(tooSmall.verdict).toBe('worse');
  });

  it('ends inconclusive when maxRepeats pairs are spent, or when no further run is possible', () => {
    const spent = decide({
      candidate: [1, 0.99],
      fresh: [1, 1.01],
      history: [1],
      noise: { sd: 0.02, df: 20 },
      rule: { ...RULE, maxRepeats: 2 },
      direction: 'minimize',
    });
    expect(spent.verdict).toBe('inconclusive');
    const stuck = decide({ candidate: [0.99], fresh: [1, 1.01], history: [1], noise: { sd: 0.02, df: 20 }, rule: RULE, direction: 'minimize', final: true });
    expect(stuck.verdict).toBe('inconclusive');
  });

  it('treats a metric judged exact as deterministic: one pair decides', () => {
    const noise = { sd: 0, df: 2, exact: true };
    expect(decide({ candidate: [0.9], fresh: [], history: [1, 1, 1], noise, rule: RULE, direction: 'minimize' }).verdict).toBe('pending');
    expect(decide({ candidate: [0.9], fresh: [1], history: [1, 1, 1], noise, rule: RULE, direction: 'minimize' }).verdict).toBe('improved');
    expect(decide({ candidate: [1.1], fresh: [], history: [1, 1, 1], noise, rule: RULE, direction: 'minimize' }).verdict).toBe('worse');
    expect(decide({ candidate: [1], fresh: [1], history: [1, 1, 1], noise, rule: RULE, direction: 'minimize' }).verdict).toBe('inconclusive');
  });

  it('never takes a zero sd as exact unless it was judged exact: no zero-width interval, no keep from one pair', () => {
    // A pass rate in steps of 10: a baseline that read 0, 0, 0 and a neutral edit that read 10 once.
    const coarse = { sd: 0, df: 2, exact: false, floor: 10 / Math.sqrt(12) };
    const one = decide({ candidate: [10], fresh: [0], history: [0, 0, 0], noise: coarse, rule: RULE, direction: 'maximize' });
    expect(one.verdict).not.toBe('improved');
    expect(one.interval![1] - one.interval![0]).toBeGreaterThan(10);
    // A fine-grained metric not yet judged exact keeps measuring instead of deciding on a zero-width interval.
    const unsure = decide({ candidate: [0.9], fresh: [1], history: [1, 1, 1], noise: { sd: 0, df: 2, exact: false }, rule: RULE, direction: 'minimize' });
    expect(unsure.verdict).toBe('pending');
    expect(unsure.interval).toBeNull();
    expect(decide({ candidate: [0.9, 0.9], fresh: [1, 1], history: [1], noise: { sd: 0, df: 4 }, rule: { ...RULE, maxRepeats: 2 }, direction: 'minimize' }).verdict).toBe('inconclusive');
  });

  it('orders runs candidate, best, best, candidate (ABBA)', () => {
    expect([0, 1, 2, 3, 4, 5, 6, 7].map(nextSide)).toEqual(['candidate', 'best', 'best', 'candidate', 'candidate', 'best', 'best', 'candidate']);
  });
});

describe('pruning', () => {
  const best = [
    [1, 5],
    [5, 3],
    [10, 2],
    [20, 1.5],
  ].map(([step, value]) => ({ step: step!, value: value! }));

  it('asks a run to be as clearly worse as the screening look would to reject it', () => {
    // Per-look confidence 0.99 two-sided → z 2.576 with plenty of degrees of freedom; the best's median is itself uncertain.
    expect(pruneMargin({ sd: 1, df: 100_000 }, RULE, 3)).toBeCloseTo(2.576 * Math.sqrt(4 / 3), 2);
    expect(pruneMargin({ sd: 1, df: 4 }, RULE, 3)).toBeGreaterThan(pruneMargin({ sd: 1, df: 40 }, RULE, 3));
    expect(pruneMargin({ sd: NaN, df: 0 }, RULE, 3)).toBe(0);
  });

  it('reads a curve at the last point at or before a step', () => {
    expect(valueAt(best, 7)).toBe(3);
    expect(valueAt(best, 0)).toBeNull();
  });

  it('prunes only after the warm-up, and only when worse than the best\'s median by more than the margin', () => {
    const args = { references: [best, best.map((p) => ({ ...p, value: p.value + 0.2 }))], warmupFraction: 0.25, margin: 0.3, direction: 'minimize' as const };
    expect(checkPrune({ ...args, curve: [{ step: 1, value: 50 }] })?.prune ?? false).toBe(false); // inside the warm-up
    expect(checkPrune({ ...args, curve: [{ step: 10, value: 2.3 }] })?.prune).toBe(false); // median 2.1, within the margin
    const pruned = checkPrune({ ...args, curve: [{ step: 10, value: 2.5 }] })!;
    expect(pruned.prune).toBe(true);
    expect(pruned.median).toBeCloseTo(2.1, 10);
    expect(checkPrune({ ...args, direction: 'maximize', curve: [{ step: 10, value: 2.5 }] })?.prune).toBe(false);
    expect(checkPrune({ ...args, references: [], curve: [{ step: 10, value: 99 }] })).toBeNull();
  });
});

describe('exactness', () => {
  const m = (commit: string, root: number, value: number, i: number): Measurement => ({ sampleId: i, root, run: i, commit, value, host: 'h', gpuModel: null });
  const runs = (commit: string, root: number, values: number[], from = 0) => values.map((v, i) => m(commit, root, v, from + i));

  it('finds the grid of a metric that can only take a few values', () => {
    expect(gridStep([0, 0, 0])).toBe(1);
    expect(gridStep([0, 10, 20])).toBe(10);
    expect(gridStep([0.8, 0.9])).toBeCloseTo(0.1, 12);
    expect(gridStep([1 / 3, 2 / 3])).toBeCloseTo(1 / 3, 12);
    expect(gridStep([1.012345, 0.912345])).toBeNull();
    expect(gridStep([0, 10, 1.012345])).toBeNull();
  });

  it('never takes a coarse metric as exact, however often it repeats', () => {
    expect(exactness([[0, 0, 0, 0, 0, 0, 0, 0]]).exact).toBe(false);
    const noise = noiseOf(runs('a', 1, [0, 0, 0]));
    expect(noise.sd).toBe(0);
    expect(noise.exact).toBe(false);
    expect(noise.floor).toBeCloseTo(1 / Math.sqrt(12), 12);
  });

  it('takes a fine-grained metric as exact only after EXACT_RUNS identical runs of one commit', () => {
    const v = 1.012345;
    expect(exactness([Array(EXACT_RUNS - 1).fill(v)]).exact).toBe(false);
    expect(exactness([Array(EXACT_RUNS).fill(v)]).exact).toBe(true);
    // Runs of one commit across experiments count together (the best's re-measurements included).
    expect(noiseOf([...runs('a', 1, [v, v, v]), ...runs('a', 2, [v, v], 3)]).exact).toBe(true);
  });

  it('never after one commit gave two different values, even in different experiments', () => {
    const v = 1.012345;
    // Each experiment's group agrees with itself, so the pooled sd is 0; the commit still measured two values.
    const rows = [...runs('a', 1, [v, v, v, v, v]), ...runs('a', 2, [v + 0.5], 5), ...runs('b', 2, [0.912345], 6)];
    const noise = noiseOf(rows);
    expect(noise.sd).toBe(0);
    expect(noise.exact).toBe(false);
    expect(decide({ candidate: [0.912345], fresh: [v + 0.5], history: [v], noise, rule: RULE, direction: 'minimize' }).verdict).toBe('pending');
  });
});
