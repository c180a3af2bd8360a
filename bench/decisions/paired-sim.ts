// Simulated skill evals for the paired test, without the loop: true pass rates per case and assertion, binomial trials,
// and one decision's looks in the order the loop takes them. Shared by the power table (power.ts) and the unit tests.
import type { CaseTrial, RunCases } from '../../src/core/cases.js';
import { pairUnits, pairedLook } from '../../src/core/paired.js';
import type { DecisionRule } from '../../src/core/statistics.js';
import { lifted } from './skill-truth.mjs';

export const DEFAULT_RULE: DecisionRule = { confidence: 0.95, minEffect: 0, maxRepeats: 5 };

/** A skill of `cases` cases × `asserts` assertions, true rates spread from hard to easy (20% to 95%, mean about 57%). */
export function simulatedSkill(random: () => number, cases = 10, asserts = 4): number[][] {
  return Array.from({ length: cases }, () => Array.from({ length: asserts }, () => 0.2 + 0.75 * random()));
}

/** The same skill after an edit worth `points`: every assertion's rate moves by them, within [1%, 99%]. */
export function liftedSkill(rates: number[][], points: number): number[][] {
  return rates.map((c) => c.map((p) => lifted(p, points)));
}

/** One run of the eval: `trials` trials of every case, each assertion passing with its true rate. */
export function simulatedRun(rates: number[][], trials: number, random: () => number, id: number): RunCases {
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

/**
 * One decision as the loop takes it: the screening look (the candidate's first run against the best's last run), then a
 * look after each pair. `futility: false` lets every decision run to an accept, a reject or maxRepeats pairs.
 */
export function simulatedDecision(
  best: number[][],
  candidate: number[][],
  random: () => number,
  opts: { trials?: number; rule?: DecisionRule; futility?: boolean } = {},
): { verdict: string; runs: number } {
  const trials = opts.trials ?? 3;
  const rule = opts.rule ?? DEFAULT_RULE;
  const settled = (verdict: string, pairs: number) => verdict !== 'pending' && (opts.futility !== false || verdict !== 'inconclusive' || pairs >= rule.maxRepeats);
  const history = simulatedRun(best, trials, random, 0);
  const cand: RunCases[] = [simulatedRun(candidate, trials, random, 1)];
  const fresh: RunCases[] = [];
  const screen = pairedLook({ units: pairUnits(cand, [history]), paired: false, rule, pairsDone: 0 });
  if (settled(screen.verdict, 0)) return { verdict: screen.verdict, runs: 1 };
  for (;;) {
    fresh.push(simulatedRun(best, trials, random, 10 + fresh.length));
    if (fresh.length > cand.length) cand.push(simulatedRun(candidate, trials, random, 100 + cand.length));
    const look = pairedLook({ units: pairUnits(cand, fresh), paired: true, rule, pairsDone: fresh.length });
    if (settled(look.verdict, fresh.length)) return { verdict: look.verdict, runs: cand.length + fresh.length };
  }
}
