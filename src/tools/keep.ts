// keep: move the branch forward to a measured, strictly better candidate.
import { z } from 'zod';
import { defineTool } from './define.js';
import { ExperimentViewSchema, SessionViewSchema } from '../core/views.js';
import { experimentIdField } from './wait-experiment.js';

export const keep = defineTool({
  name: 'keep',
  title: 'Keep an improvement',
  description:
    'Call when read_metric shows the latest candidate improved. Moves the session branch to the candidate, which becomes the new best. ' +
    'Refused unless the candidate is the latest, measured, strictly better than the best in the metric direction, and within the constraints. ' +
    'force: true with a reason keeps an EQUAL metric (the simplicity criterion: same result, less code); it never keeps a worse one.',
  kind: 'write',
  idempotent: false,
  input: {
    id: experimentIdField,
    force: z.boolean().optional().describe('Keep a candidate whose metric equals the best; needs reason.'),
    reason: z.string().max(2000).optional().describe('Why an equal result is worth keeping, e.g. "same val_bpb, 30 fewer lines". Recorded.'),
  },
  output: { experiment: ExperimentViewSchema, session: SessionViewSchema },
  async handler(args, { loop }) {
    const { experiment, session } = await loop.keep(args);
    return {
      summary: `Kept experiment ${experiment.id}${experiment.forced ? ' (forced)' : ''}: best ${session.metricName} is now ${session.bestMetric} at ${session.bestCommit.slice(0, 7)}.`,
      experiment,
      session,
    };
  },
});
