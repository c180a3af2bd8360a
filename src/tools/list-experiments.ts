// list_experiments: the session's experiments, newest first, paged and filterable by state.
import { z } from 'zod';
import { defineTool } from './define.js';
import { ExperimentStateSchema, ExperimentViewSchema } from '../core/views.js';

export const listExperiments = defineTool({
  name: 'list_experiments',
  title: 'List experiments',
  description: 'Call to review what has been tried in this session (newest first), e.g. before choosing the next idea so you do not repeat one. Filter by state; page with limit and before_id (the nextBeforeId of the previous page).',
  kind: 'read',
  idempotent: true,
  input: {
    limit: z.number().int().min(1).max(200).optional().describe('Default 20, at most 200.'),
    before_id: z.number().int().min(1).optional().describe('Only experiments with a smaller id: pass the previous page\'s nextBeforeId.'),
    state: ExperimentStateSchema.optional(),
  },
  output: { experiments: z.array(ExperimentViewSchema), total: z.number().int(), nextBeforeId: z.number().int().nullable().describe('Pass as before_id for the next page; null on the last page.') },
  async handler(args, { loop }) {
    const { experiments, total, nextBeforeId } = await loop.listExperiments({ limit: args.limit, beforeId: args.before_id, state: args.state });
    return { summary: `${experiments.length} of ${total} experiment(s)${args.state ? ` in state ${args.state}` : ''}.`, experiments, total, nextBeforeId };
  },
});
