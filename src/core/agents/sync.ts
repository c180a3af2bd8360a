// sync: an agent's tree brought to the best another agent kept, carrying its work in progress along when it applies.
import type { Config } from '../config.js';
import type { LoopContext } from '../context.js';
import type { SessionRow } from '../ledger.js';
import { rebaseCandidate } from '../rebase.js';
import { commitCandidate, resetSurface, scanSurface } from '../surface.js';

export interface Synced {
  /** The best the tree stood on before (null for a worktree that had none in this session), and the one it stands on now. */
  from: string | null;
  to: string;
  /** Editable files with edits in progress that were carried onto the new best (merged line by line where both changed). */
  carried: string[];
  /** Files whose edits conflicted with the new best: the tree was put back at the best and the edits saved under `savedWorktree`. */
  conflicts: string[];
  savedWorktree: string | null;
}

/**
 * Brings the agent's editable files to the session's best. Edits in progress are committed first (nothing is lost);
 * when they apply cleanly on the new best they stay in the tree, otherwise the tree is put back at the best and the
 * edits are kept under a ref.
 */
export async function syncToBest(ctx: LoopContext, session: SessionRow, config: Config): Promise<Synced> {
  const base = ctx.baseOf(session);
  const to = session.bestCommit;
  const rules = { editable: config.editable, protectedGlobs: config.protected, outputs: config.run.outputs };
  if (base === null) {
    // A worktree added before the session: its edits cannot be told from the session's changes, so the tree is saved whole.
    const snap = await ctx.git.snapshot(to, `ratchet: ${ctx.agent}'s tree before its first sync in session ${session.tag}`);
    const savedWorktree = `refs/ratchet/${session.tag}/worktree-${ctx.agent}-${Date.now()}`;
    await ctx.git.setRef(savedWorktree, snap.commit);
    await resetSurface({ git: ctx.git, commit: to, ...rules });
    await moveAgentBase(ctx, session, to);
    return { from: null, to, carried: [], conflicts: [], savedWorktree };
  }
  const from = base;
  const { pins } = await ctx.pinned(session);
  const scan = await scanSurface({ repo: ctx.repo, git: ctx.git, baseCommit: from, pins, ...rules });
  if (!scan.changed.length) {
    if (from !== to) await resetSurface({ git: ctx.git, commit: to, ...rules });
    await moveAgentBase(ctx, session, to);
    return { from, to, carried: [], conflicts: [], savedWorktree: null };
  }
  const message = `ratchet: ${ctx.agent}'s work in progress on ${from.slice(0, 7)}, before sync to ${to.slice(0, 7)}`;
  const snap = scan.violations.length ? await ctx.git.snapshot(from, message) : await commitCandidate({ git: ctx.git, parent: from, scan, message });
  const carried = from === to || scan.violations.length ? null : await rebaseCandidate(ctx.git, { parent: from, candidate: snap.commit, best: to, message });
  if (carried?.ok) {
    await resetSurface({ git: ctx.git, commit: carried.commit, ...rules });
    await ctx.git.syncIndex(to);
    await moveAgentBase(ctx, session, to);
    return { from, to, carried: scan.changed.map((c) => c.path).sort(), conflicts: [], savedWorktree: null };
  }
  if (from === to) return { from, to, carried: scan.changed.map((c) => c.path).sort(), conflicts: [], savedWorktree: null };
  const savedWorktree = `refs/ratchet/${session.tag}/worktree-${ctx.agent}-${Date.now()}`;
  await ctx.git.setRef(savedWorktree, snap.commit);
  await resetSurface({ git: ctx.git, commit: to, ...rules });
  await moveAgentBase(ctx, session, to);
  return { from, to, carried: [], conflicts: carried && !carried.ok ? carried.conflicts : scan.changed.map((c) => c.path).sort(), savedWorktree };
}

/** The agent's tree now stands on `commit`: its next edits are read against it, and an agent's worktree shows it as HEAD. */
export async function moveAgentBase(ctx: LoopContext, session: SessionRow, commit: string): Promise<void> {
  ctx.registry.setBase(ctx.agent, session.id, commit);
  if (ctx.linked) await ctx.git.detachHead(commit);
}
