// list_experiments: the session's experiments, newest first, paged and filterable by state, one compact row each.
import { z } from 'zod';
import { agentField, defineTool } from './define.js';
import { shortText } from './describe.js';
import { formatNumber } from '../core/format.js';
import { ExperimentStateSchema, type ExperimentView } from '../core/views.js';

const DESCRIPTION_CHARS = 80;

// A night runs to hundreds of experiments; full views here cost the agent's context megabytes, and read_metric has the detail.
const ExperimentRowSchema = z.object({
  id: z.number().int(),
  state: ExperimentStateSchema,
  verdict: z
    .enum(['baseline', 'kept', 'forced', 'reverted'])
    .nullable()
    .describe('baseline; kept; forced (kept without a proven gain); reverted; null while undecided, and for a run that needed no decision or measured nothing (crashed, refused, cancelled).'),
  metric: z.number().nullable(),
  description: z.string().describe(`The experiment's description, cut to ${DESCRIPTION_CHARS} characters.`),
});
type ExperimentRow = z.infer<typeof ExperimentRowSchema>;

function rowOf(e: ExperimentView): ExperimentRow {
  const verdict = e.kind === 'baseline' ? 'baseline' : e.decision === 'kept' && e.forced ? 'forced' : e.decision;
  return { id: e.id, state: e.state, verdict, metric: e.metric, description: shortText(e.description, DESCRIPTION_CHARS) };
}

export const listExperiments = defineTool({
  name: 'list_experiments',
  title: 'List experiments',
  description:
    'Call to review what has been tried in this session (newest first), e.g. before choosing the next idea so you do not repeat one. ' +
    `One row per experiment: id, state, verdict, metric and the description cut to ${DESCRIPTION_CHARS} characters; read_metric {id} has the detail. ` +
    'Filter by state; page with limit and before_id (the nextBeforeId of the previous page).',
  kind: 'read',
  idempotent: true,
  input: {
    limit: z.number().int().min(1).max(200).optional().describe('Default 20, at most 200.'),
    before_id: z.number().int().min(1).optional().describe('Only experiments with a smaller id: pass the previous page\'s nextBeforeId.'),
    state: ExperimentStateSchema.optional(),
    agent: agentField.optional().describe('Only this agent\'s experiments (several agents on one ledger: `ratchet worktree add`).'),
  },
  output: { experiments: z.array(ExperimentRowSchema), total: z.number().int(), nextBeforeId: z.number().int().nullable().describe('Pass as before_id for the next page; null on the last page.') },
  async handler(args, { loop }) {
    const { experiments, total, nextBeforeId } = await loop.listExperiments({ limit: args.limit, beforeId: args.before_id, state: args.state, agent: args.agent });
    const next = nextBeforeId === null ? '' : ` Next page: before_id ${nextBeforeId}.`;
    return { summary: `${experiments.length} of ${total} experiment(s)${args.state ? ` in state ${args.state}` : ''}${args.agent ? ` by agent ${args.agent}` : ''}, newest first: id state verdict metric description.${next}`, experiments: experiments.map(rowOf), total, nextBeforeId };
  },
  text: (r) => r.experiments.map((e) => `${e.id} ${e.state} ${e.verdict ?? '-'} ${e.metric === null ? '-' : formatNumber(e.metric)} ${e.description}`),
});
