// What every benchmark scenario does with sessions: run several at a time, and follow an experiment to its end.
import type { ResearchLoop } from '../../src/core/loop.js';

const WAIT_SECONDS = 50;

/** The experiment's final state, waiting as an agent would (wait_experiment, long polls). */
export async function waitDone(loop: ResearchLoop, id: number): Promise<string> {
  for (;;) {
    const view = await loop.waitExperiment(id, WAIT_SECONDS);
    if (view.state !== 'running' && view.state !== 'queued') return view.state;
  }
}

/** Runs `work` over the items, at most `width` at a time, results in the items' order. */
export async function pool<T, R>(items: T[], width: number, work: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const workers = Array.from({ length: Math.min(width, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await work(items[i]!, i);
    }
  });
  await Promise.all(workers);
  return results;
}
