// The paired pass-rate test on known distributions: case lines parsed, the exact sign-flip test, Wilson intervals, the
// sequential false-keep rate over thousands of null experiments, power at +10 points, and what futility stopping costs.
import { describe, it, expect } from 'vitest';
import { parseCases, type CaseTrial, type RunCases } from '../../src/core/cases.js';
import { alphaPerLook, assertionChanges, pairUnits, pairedLook, signFlipUpperTail, wilson } from '../../src/core/paired.js';
import { caseModel, pairedMinDetectable, sensitivity } from '../../src/core/sensitivity.js';
import type { Config } from '../../src/core/config.js';
import { mulberry32 } from '../../bench/decisions/prng.mjs';
import { DEFAULT_RULE, liftedSkill, simulatedDecision, simulatedRun, simulatedSkill } from '../../bench/decisions/paired-sim.js';

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

describe('the exact sign-flip test and Wilson intervals', () => {
  it('with one pass/fail per trial the sign-flip test is McNemar\'s exact binomial test', () => {
    const ones = (n: number, neg = 0) => [...Array(n - neg).fill(1), ...Array(neg).fill(-1), 0, 0];
    expect(signFlipUpperTail(ones(10), 10)).toBeCloseTo(1 / 1024, 12);
    // 9 of 10 discordant pairs better: the sum is 8; P(at least 9 of 10) = 11/1024.
    expect(signFlipUpperTail(ones(10, 1), 8)).toBeCloseTo(11 / 1024, 12);
    expect(signFlipUpperTail(ones(5), -5)).toBe(1);
    expect(signFlipUpperTail(ones(5), 6)).toBe(0);
  });

  it('counts the sums of differences larger than one exactly, and joins the normal limit on large inputs', () => {
    // ±2 ±1: sums 3, 1, -1, -3 each with probability 1/4.
    expect(signFlipUpperTail([2, -1], 3)).toBeCloseTo(0.25, 12);
    expect(signFlipUpperTail([2, -1], 1)).toBeCloseTo(0.5, 12);
    expect(signFlipUpperTail([0, 0], 0)).toBe(1);
    // 4,000 differences of 1..4: past the exact limit; the normal limit with continuity correction agrees with exact counting below it.
    const big = Array.from({ length: 4000 }, (_, i) => 1 + (i % 4));
    const sd = Math.sqrt(big.reduce((a, d) => a + d * d, 0));
    expect(signFlipUpperTail(big, Math.round(2 * sd))).toBeCloseTo(0.0228, 3);
    const mid = big.slice(0, 600);
    const exact = signFlipUpperTail(mid, Math.round(2 * Math.sqrt(mid.reduce((a, d) => a + d * d, 0))));
    expect(exact).toBeGreaterThan(0.018);
    expect(exact).toBeLessThan(0.026);
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
const skill = (random: () => number) => simulatedSkill(random);
const lift = liftedSkill;
const run = simulatedRun;
const RULE = DEFAULT_RULE;
const decide = (best: number[][], candidate: number[][], random: () => number) => simulatedDecision(best, candidate, random);

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
    // Power at the session's smallest detectable gain, with the early stop and with it made impossible (same looks otherwise).
    const random = rng(13);
    const mde = pairedMinDetectable(caseModel([run(skill(random), 3, random, 0)])!, RULE);
    const N = 600;
    const keeps = (futility: boolean) => {
      let kept = 0;
      for (let i = 0; i < N; i++) {
        const r = skill(random);
        if (simulatedDecision(r, lift(r, mde), random, { futility }).verdict === 'improved') kept++;
      }
      return kept / N;
    };
    const withStop = keeps(true);
    const without = keeps(false);
    // bench/decisions/power.ts measures the gap at +10 points as 2.4 points over 2,000 decisions; 6 leaves room for sampling.
    expect(withStop).toBeGreaterThanOrEqual(without - 0.06);
    expect(withStop).toBeGreaterThan(0.7);
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
    expect(alphaPerLook(RULE)).toBeCloseTo(0.005, 12);
  });
});
