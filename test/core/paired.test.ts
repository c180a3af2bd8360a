// The paired pass-rate test on known distributions: case lines parsed, the exact sign test, Wilson intervals, the
// sequential false-keep rate over thousands of null experiments, power at +10 points, and what futility stopping costs.
import { describe, it, expect } from 'vitest';
import { parseCases, type CaseTrial, type RunCases } from '../../src/core/cases.js';
import { alphaPerLook, assertionChanges, binomialUpperTail, pairUnits, pairedLook, wilson } from '../../src/core/paired.js';
import { caseModel, pairedMinDetectable, sensitivity } from '../../src/core/sensitivity.js';
import type { Config } from '../../src/core/config.js';
import { mulberry32 } from '../../bench/decisions/prng.mjs';

describe('parseCases', () => {
  it('reads case and assert lines, keeps error apart, lets a repeated line replace the earlier one', () => {
    const text = [
      'some log line',
      'case a 1 pass',
      'assert a 1 short pass',
      'assert a 1 names-owner pass',
      'case a 2 fail',
      'assert a 2 short pass',
      'assert a 2 names-owner fail',
      'case b 1 error',
      'assert b 1 short pass', // an error trial checked nothing: dropped
      'assert c 1 short pass', // no case line: dropped
      'case a 2 fail',
      'pass_rate: 75',
    ].join('\n');
    const cases = parseCases(text)!;
    expect(cases).toEqual([
      { case: 'a', trial: 1, outcome: 'pass', asserts: { short: true, 'names-owner': true } },
      { case: 'a', trial: 2, outcome: 'fail', asserts: { short: true, 'names-owner': false } },
      { case: 'b', trial: 1, outcome: 'error', asserts: {} },
    ]);
    expect(parseCases('pass_rate: 50\ncase with spaces in id 1 pass x\n')).toBeNull();
  });
});

describe('the exact sign test and Wilson intervals', () => {
  it('binomialUpperTail matches the binomial sums', () => {
    expect(binomialUpperTail(10, 10)).toBeCloseTo(1 / 1024, 12);
    expect(binomialUpperTail(9, 10)).toBeCloseTo(11 / 1024, 12);
    expect(binomialUpperTail(0, 5)).toBe(1);
    expect(binomialUpperTail(6, 5)).toBe(0);
    // Large n stays accurate: P(X >= 550 | n = 1000) is about 0.00088 (normal approximation with continuity correction).
    expect(binomialUpperTail(550, 1000)).toBeGreaterThan(0.0007);
    expect(binomialUpperTail(550, 1000)).toBeLessThan(0.0011);
  });

  it('wilson gives the textbook interval', () => {
    const [lo, hi] = wilson(8, 10, 1.959964)!;
    expect(lo).toBeCloseTo(49.0, 1);
    expect(hi).toBeCloseTo(94.3, 1);
    expect(wilson(0, 0, 1.96)).toBeNull();
  });
});

// ---- Simulated skills: each case has assertions with known true pass probabilities ----

const rng = mulberry32;

/** 10 cases × 4 assertions, true rates spread from easy to hard (mean about 60%). */
function skill(random: () => number): number[][] {
  return Array.from({ length: 10 }, () => Array.from({ length: 4 }, () => 0.2 + 0.75 * random()));
}

function lift(rates: number[][], points: number): number[][] {
  // A real gain moves every assertion's pass probability by the same number of points, within [0.01, 0.99].
  return rates.map((c) => c.map((p) => Math.min(0.99, Math.max(0.01, p + points / 100))));
}

function run(rates: number[][], trials: number, random: () => number, id: number): RunCases {
  const out: CaseTrial[] = [];
  rates.forEach((assertRates, c) => {
    for (let t = 1; t <= trials; t++) {
      const asserts: Record<string, boolean> = {};
      assertRates.forEach((p, a) => (asserts[`a${a}`] = random() < p));
      out.push({ case: `case-${c}`, trial: t, outcome: Object.values(asserts).every(Boolean) ? 'pass' : 'fail', asserts });
    }
  });
  return { run: id, trials: out };
}

const RULE = { confidence: 0.95, minEffect: 0, maxRepeats: 5 };

/** The decision's sequence of looks, as the loop runs it: screening (candidate run 1 vs the best's last run), then each ABBA pair. */
function decide(best: number[][], candidate: number[][], random: () => number, trials = 3) {
  const history = run(best, trials, random, 0);
  const cand: RunCases[] = [run(candidate, trials, random, 1)];
  const fresh: RunCases[] = [];
  const screen = pairedLook({ units: pairUnits(cand, [history]), paired: false, rule: RULE, pairsDone: 0 });
  if (screen.verdict !== 'pending') return { verdict: screen.verdict, runs: 1 };
  for (;;) {
    fresh.push(run(best, trials, random, fresh.length + 10));
    if (fresh.length > cand.length) cand.push(run(candidate, trials, random, cand.length + 100));
    const look = pairedLook({ units: pairUnits(cand, fresh), paired: true, rule: RULE, pairsDone: fresh.length });
    if (look.verdict !== 'pending') return { verdict: look.verdict, runs: cand.length + fresh.length };
  }
}

describe('the paired rule on simulated skills', () => {
  it('keeps a null candidate at most 1 − confidence of the time over all looks (2,000 null experiments)', () => {
    const random = rng(11);
    let keeps = 0;
    const N = 2000;
    for (let i = 0; i < N; i++) {
      const rates = skill(random);
      if (decide(rates, rates, random).verdict === 'improved') keeps++;
    }
    expect(keeps / N).toBeLessThanOrEqual(1 - RULE.confidence);
  });

  it('keeps at least 80% of real +10-point gains at the default settings (10 cases × 3 trials)', () => {
    const random = rng(12);
    let keeps = 0;
    const N = 400;
    for (let i = 0; i < N; i++) {
      const rates = skill(random);
      if (decide(rates, lift(rates, 10), random).verdict === 'improved') keeps++;
    }
    expect(keeps / N).toBeGreaterThanOrEqual(0.8);
  });

  it('early stopping throws away few real gains of the size the session can detect', () => {
    // Power at the smallest detectable gain with futility stopping against the same looks with futility made impossible.
    const random = rng(13);
    const rates = skill(random);
    const mde = pairedMinDetectable(caseModel([run(rates, 3, random, 0)])!, RULE);
    let withStop = 0;
    let without = 0;
    const N = 300;
    for (let i = 0; i < N; i++) {
      const r = skill(random);
      if (decide(r, lift(r, mde), random).verdict === 'improved') withStop++;
      // Without futility: every pair up to maxRepeats; keep iff some look accepts.
      const history = run(r, 3, random, 0);
      const cand = [run(lift(r, mde), 3, random, 1)];
      const screen = pairedLook({ units: pairUnits(cand, [history]), paired: false, rule: RULE, pairsDone: 0 });
      if (screen.verdict === 'worse') continue;
      const fresh: RunCases[] = [];
      for (let k = 1; k <= RULE.maxRepeats; k++) {
        fresh.push(run(r, 3, random, 10 + k));
        if (k > 1) cand.push(run(lift(r, mde), 3, random, 100 + k));
        const look = pairedLook({ units: pairUnits(cand, fresh), paired: true, rule: RULE, pairsDone: k });
        if (look.verdict === 'improved') {
          without++;
          break;
        }
        if (look.verdict === 'worse') break;
      }
    }
    // Futility may cost some power, but not most of it: within 10 points of the same looks without it.
    expect(withStop / N).toBeGreaterThanOrEqual(without / N - 0.1);
    expect(withStop / N).toBeGreaterThan(0.6);
  });

  it('rejects a clearly harmful edit at the screening look, on one run', () => {
    const random = rng(14);
    const rates = skill(random);
    const verdicts = Array.from({ length: 50 }, () => decide(rates, lift(rates, -30), random));
    expect(verdicts.filter((v) => v.verdict === 'worse' && v.runs === 1).length).toBeGreaterThanOrEqual(45);
  });
});

describe('assertion changes and sensitivity', () => {
  it('names which assertions got better and which worse', () => {
    const t = (outcome: boolean[], trial: number): CaseTrial => ({ case: 'c', trial, outcome: 'fail', asserts: { short: outcome[0]!, owner: outcome[1]! } });
    const best: RunCases[] = [{ run: 1, trials: [t([false, true], 1), t([false, true], 2)] }];
    const cand: RunCases[] = [{ run: 2, trials: [t([true, false], 1), t([true, true], 2)] }];
    expect(assertionChanges(cand, best)).toEqual([
      { name: 'c/short', candidate: 100, best: 0, change: 'better' },
      { name: 'c/owner', candidate: 50, best: 100, change: 'worse' },
    ]);
  });

  it('suggests more repeats, more trials or a lower confidence, each detecting less than now', () => {
    const random = rng(15);
    const model = caseModel([run(skill(random), 3, random, 0)])!;
    expect(model.trials).toBe(3);
    expect(model.checksPerRun).toBe(120);
    const config = { decision: { rule: 'significant', ...RULE } } as unknown as Config;
    const s = sensitivity(config, { sd: NaN, df: 0 }, model)!;
    expect(s.basis).toBe('cases');
    expect(s.minDetectable).toBeGreaterThan(3);
    expect(s.minDetectable).toBeLessThan(20);
    expect(s.suggestions).toHaveLength(3);
    for (const line of s.suggestions) {
      const detects = Number(/detects ([\d.]+)/.exec(line)![1]);
      expect(detects).toBeLessThan(s.minDetectable!);
    }
    expect(s.suggestions.join('\n')).toMatch(/maxRepeats 5 → 10/);
    expect(s.suggestions.join('\n')).toMatch(/--trials 6/);
    expect(s.suggestions.join('\n')).toMatch(/confidence 0.95 → 0.85/);
    expect(alphaPerLook(RULE)).toBeCloseTo(0.01, 12);
  });
});
