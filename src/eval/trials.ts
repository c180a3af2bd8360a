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

/** Runs work on every item with at most `limit` in flight; results keep the items' order. */
export async function runLimited<T, R>(items: readonly T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await work(items[index] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}
