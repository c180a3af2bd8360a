// Which case-trials an eval runs, and a scheduler that runs at most `limit` of them at once.
import type { EvalCase } from './suite.js';

export type Split = 'train' | 'held-out' | 'all';
export const SPLITS: readonly Split[] = ['train', 'held-out', 'all'];

export interface TrialPlan {
  c: EvalCase;
  /** 1-based. */
  trial: number;
}

export function selectCases(cases: EvalCase[], split: Split): EvalCase[] {
  if (split === 'all') return cases;
  return cases.filter((c) => c.heldOut === (split === 'held-out'));
}

/** Case by case, trial by trial: the order the lines are printed in. */
export function planTrials(cases: EvalCase[], trials: number): TrialPlan[] {
  return cases.flatMap((c) => Array.from({ length: trials }, (_, i) => ({ c, trial: i + 1 })));
}
