// revert: reset branch and working tree to the best commit; candidates stay under refs/ratchet/<tag>/<id>.
import { z } from 'zod';
import { defineTool } from './define.js';
import { ExperimentViewSchema } from '../core/views.js';
import { experimentIdField } from './wait-experiment.js';
import { experimentFacts } from './describe.js';

export const revert = defineTool({
  name: 'revert',
  title: 'Revert to the best commit',
  description:
    'Call when the latest candidate did not improve (or crashed and you want a clean start). Resets the working tree to the best commit. ' +
    'Nothing is lost: every candidate stays under refs/ratchet/<tag>/<id>, and uncommitted edits that differ from it are saved under refs/ratchet/<tag>/worktree-<time> first.',
  kind: 'destructive',
  idempotent: true,
  input: { id: experimentIdField.optional().describe('The candidate to mark reverted; defaults to the latest.') },
  output: {
    experiment: ExperimentViewSchema.nullable(),
    resetTo: z.string().nullable().describe('The best commit the editable files were put back at; null when other edits were in the tree (several experiments in flight) and it was left alone.'),
    removedUntracked: z.array(z.string()).describe('Untracked editable files removed (they are in the saved ref).'),
    savedWorktree: z.string().nullable().describe('Ref holding the working tree as it was, when it differed from the candidate.'),
  },
  async handler(args, { loop }) {
    const result = await loop.revert(args);
    return {
      summary: `Reverted${result.experiment ? ` experiment ${result.experiment.id}` : ''}; ${result.resetTo ? `working tree is at best commit ${result.resetTo.slice(0, 7)}${result.savedWorktree ? ` (edits saved at ${result.savedWorktree})` : ''}` : 'your working tree holds other edits, so it was left as it is (revert with no id puts it back at the best)'}.`,
      ...result,
    };
  },
  text: (r) => [...(r.experiment ? experimentFacts(r.experiment) : []), ...(r.removedUntracked.length ? [`removed untracked: ${r.removedUntracked.join(', ')}`] : [])],
});
