// wait_experiment: block up to wait_seconds on a running experiment, with progress notifications.
import { z } from 'zod';
import { defineTool } from './define.js';
import { ExperimentViewSchema } from '../core/views.js';
import { DEFAULT_WAIT_SECONDS } from '../core/loop.js';
import { describeExperiment, experimentFacts } from './describe.js';
import { waitSecondsField } from './run-experiment.js';

export const experimentIdField = z
  .number({ error: 'id must be an experiment id (an integer); list_experiments shows them' })
  .int({ error: 'id must be an integer experiment id' })
  .positive({ error: 'id must be a positive experiment id' })
  .describe('Experiment id, as returned by start_session, run_experiment, status or list_experiments.');

export const waitExperiment = defineTool({
  name: 'wait_experiment',
  title: 'Wait for an experiment',
  description:
    'Call while an experiment is "running" (after start_session or run_experiment). Waits up to wait_seconds and returns its state; call again if it is still running. ' +
    'With several experiments in flight (ratchet.json `parallel` > 1), pass `next: true` instead of an id to wait for whichever finishes first (a candidate already measured and awaiting your decision, or one that crashed or timed out since a tool last showed it, comes back at once). ' +
    'Sends progress notifications every few seconds (elapsed time, budget, last log line) when the client asks for them.',
  kind: 'read',
  idempotent: true,
  input: {
    id: experimentIdField.optional(),
    next: z.boolean().optional().describe('Wait for the next experiment in flight to finish, whichever it is (instead of an id).'),
    wait_seconds: waitSecondsField,
  },
  output: { experiment: ExperimentViewSchema },
  async handler(args, { loop, progress }) {
    const wait = args.wait_seconds ?? DEFAULT_WAIT_SECONDS;
    const experiment = args.id !== undefined ? await loop.waitExperiment(args.id, wait, progress) : await loop.waitNext(args.next === true, wait);
    return { summary: describeExperiment(experiment), experiment };
  },
  text: (r) => experimentFacts(r.experiment),
});
