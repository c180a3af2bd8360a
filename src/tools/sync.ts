// sync: bring this agent's tree to the best another agent kept, carrying work in progress along when it applies.
import { z } from 'zod';
import { defineTool } from './define.js';

export const sync = defineTool({
  name: 'sync',
  title: 'Sync to the best',
  description:
    'Call when status says agent.behind (another agent kept a change since your tree was last at the best), before editing the next idea. ' +
    'Brings your editable files to the best. Edits in progress are committed first: when they apply cleanly on the new best they stay in your tree; ' +
    'otherwise your tree is put back at the best and the edits are saved under a ref. With one agent it changes nothing.',
  kind: 'destructive',
  idempotent: true,
  input: {},
  output: {
    from: z.string().nullable().describe('The best your tree stood on before; null for a worktree added before the session, whose tree was saved whole.'),
    to: z.string().describe('The best it stands on now.'),
    carried: z.array(z.string()).describe('Files whose edits in progress were carried onto the new best.'),
    conflicts: z.array(z.string()).describe('Files whose edits conflicted with the new best: saved under savedWorktree, and the tree put back at the best.'),
    savedWorktree: z.string().nullable().describe('Ref holding your edits, when they could not be carried.'),
  },
  async handler(_args, { loop }) {
    const r = await loop.sync();
    const where = r.from === r.to ? `Your tree was already on the best ${r.to.slice(0, 7)}` : `Your tree moved from ${r.from?.slice(0, 7) ?? 'before the session'} to the best ${r.to.slice(0, 7)}`;
    const edits = r.savedWorktree
      ? `; ${r.conflicts.length ? `your edits to ${r.conflicts.join(', ')} conflict with it and ` : 'your tree as it was '}${r.conflicts.length ? 'are' : 'is'} saved at ${r.savedWorktree} (the tree is at the best)`
      : r.carried.length
        ? `; your edits to ${r.carried.join(', ')} were carried along`
        : '';
    return { summary: `${where}${edits}.`, ...r };
  },
  text: () => [],
});
