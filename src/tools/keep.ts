// keep: move the branch forward to a candidate whose improvement is established (significant) or measured (greedy).
import { z } from 'zod';
import { defineTool } from './define.js';
import { ExperimentViewSchema, SessionViewSchema } from '../core/views.js';
import { experimentIdField } from './wait-experiment.js';
import { cleanText } from '../core/arguments.js';
import { experimentFacts } from './describe.js';
import { formatNumber } from '../core/format.js';

export const keep = defineTool({
  name: 'keep',
  title: 'Keep an improvement',
  description:
    'Call when read_metric shows the latest candidate improved. Moves the session branch to the candidate, which becomes the new best. ' +
    'Refused unless the candidate is the latest, measured, within the constraints and improved: under the significant rule its verdict must be "improved" ' +
    '(the improvement\'s interval clears minEffect against the re-measured best); under greedy, strictly better on its one run. ' +
    'force: true with a reason keeps an inconclusive (significant) or exactly equal (greedy) result, for the simplicity criterion; it never keeps a worse one.',
  kind: 'write',
  idempotent: false,
  input: {
    id: experimentIdField,
    force: z.boolean().optional().describe('Keep a candidate that is no proven gain but no loss (inconclusive, or an exact tie under greedy); needs reason.'),
    reason: cleanText(2000, 'reason').optional().describe('Why it is worth keeping without a proven gain, e.g. "same val_bpb, 30 fewer lines". Recorded.'),
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
  text: ({ experiment, session: s }) => [
    ...experimentFacts(experiment),
    `best: ${s.metricName} ${s.bestMetric} (experiment ${s.bestExperimentId}) vs baseline ${s.baselineMetric === null ? 'n/a' : formatNumber(s.baselineMetric)}, ${s.direction}`,
  ],
});
