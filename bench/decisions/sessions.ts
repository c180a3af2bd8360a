// What every benchmark scenario does with a session's experiments: follow one to its end, as an agent would.
import type { ResearchLoop } from '../../src/core/loop.js';

const WAIT_SECONDS = 50;

/** The experiment's final state, waiting as an agent would (wait_experiment, long polls). */
export async function waitDone(loop: ResearchLoop, id: number): Promise<string> {
  for (;;) {
    const view = await loop.waitExperiment(id, WAIT_SECONDS);
    if (view.state !== 'running' && view.state !== 'queued') return view.state;
  }
}
