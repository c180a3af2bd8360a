// cancel_experiment: stop a running experiment's whole process tree and record it as cancelled.
import { defineTool } from './define.js';
import { ExperimentViewSchema } from '../core/views.js';
import { describeExperiment, experimentFacts } from './describe.js';
import { experimentIdField } from './wait-experiment.js';

export const cancelExperiment = defineTool({
  name: 'cancel_experiment',
  title: 'Cancel a running experiment',
  description: 'Call to stop a run that is clearly broken or no longer wanted. SIGTERM to its process tree, SIGKILL after the grace period, then a sweep; recorded as cancelled (needs no decision).',
  kind: 'destructive',
  idempotent: true,
  input: { id: experimentIdField },
  output: { experiment: ExperimentViewSchema },
  async handler(args, { loop }) {
    const experiment = await loop.cancelExperiment(args.id);
    return { summary: describeExperiment(experiment), experiment };
  },
  text: (r) => experimentFacts(r.experiment),
});
