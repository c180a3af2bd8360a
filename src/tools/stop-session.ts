// stop_session: the user's stop, relayed by the agent: nothing new runs; the running experiment finishes or is cancelled.
import { z } from 'zod';
import { defineTool } from './define.js';
import { experimentFacts } from './describe.js';
import { ExperimentViewSchema, FinishedSchema } from '../core/views.js';

export const stopSession = defineTool({
  name: 'stop_session',
  title: 'Stop the session',
  description:
    'Call only when the user asks to stop the night. Records the stop in the ledger: from then on run_experiment is refused with "stopped by the user" and status reports the session as finished. ' +
    'The running experiment finishes normally (then keep or revert it), or is cancelled with cancel: true. Stopping twice changes nothing.',
  kind: 'destructive',
  idempotent: true,
  input: {
    cancel: z.boolean().optional().describe('Also cancel the running experiment (SIGTERM to its process tree, recorded as cancelled). Default false: it runs to its end.'),
  },
  output: {
    finished: FinishedSchema,
    alreadyStopped: z.boolean().describe('The session was already stopped; nothing was recorded again.'),
    cancelled: ExperimentViewSchema.nullable().describe('The experiment this stop cancelled.'),
    running: ExperimentViewSchema.nullable().describe('The experiment that still runs to its end: wait_experiment, then keep or revert it.'),
  },
  async handler(args, { loop }) {
    const stopped = await loop.stopSession({ cancel: args.cancel === true, by: 'tool' });
    const tail = stopped.cancelled ? ` Experiment ${stopped.cancelled.id} was cancelled.` : stopped.running ? ` Experiment ${stopped.running.id} runs to its end; then keep or revert it.` : '';
    return { summary: `${stopped.alreadyStopped ? 'Already stopped' : 'Stopped'}: ${stopped.finished.reason}.${tail}`, ...stopped };
  },
  // The summary says it all; the experiment's facts follow when there is one.
  text: (r) => {
    const e = r.cancelled ?? r.running;
    return e ? experimentFacts(e) : [];
  },
});
