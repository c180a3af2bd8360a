// A candidate: the agent's edits inside the surface, committed on top of the best, or refused with what to undo.
import { hostname } from 'node:os';
import type { Config } from './config.js';
import type { LoopContext } from './context.js';
import { globMatcher } from './globs.js';
import type { ExperimentRow, SessionRow } from './ledger.js';
import * as refusals from './refusals.js';
import { rebaseCandidate } from './rebase.js';
import { CONFIG_PATH, commitCandidate, describeViolations, scanSurface } from './surface.js';

/**
 * Builds the candidate commit from the files in the edit surface as they are on disk (ignore files
 * are not trusted there), records it, and returns its queued row. Refused changes are recorded too.
 */
export async function createCandidate(ctx: LoopContext, session: SessionRow, config: Config, input: { description: string; hypothesis?: string }): Promise<ExperimentRow> {
  const { pins } = await ctx.pinned(session);
  // The agent's edits are read against the best its tree was last brought to; another agent may have kept since.
  const agentBase = ctx.baseOf(session);
  if (agentBase === null) throw refusals.noBase(ctx.agent, session.tag);
  const scan = await scanSurface({
    repo: ctx.repo,
    git: ctx.git,
    baseCommit: agentBase,
    editable: config.editable,
    protectedGlobs: config.protected,
    outputs: config.run.outputs,
    pins,
  });
  const base = { sessionId: session.id, kind: 'candidate' as const, parentCommit: session.bestCommit, description: input.description, hypothesis: input.hypothesis ?? null };
  if (scan.violations.length) {
    const refused = ctx.ledger.createRefused({ ...base, reason: `edit surface violated by ${scan.violations.map((v) => v.path).join(', ')}`, violations: scan.violations });
    ctx.log.warn({ id: refused.id, violations: scan.violations }, 'experiment refused');
    ctx.writeResults(session); // a refusal is a final line of results.tsv and refusals.tsv at once, not at the next decision
    throw refusals.surfaceRefused(refused.id, describeViolations(scan.violations), config.editable, scan.violations);
  }
  if (!scan.changed.length) throw refusals.nothingToTry(config.editable);

  const e = ctx.createOwnExperiment({ ...base, host: hostname() });
  const message = `ratchet #${e.id}: ${input.description}${input.hypothesis ? `\n\n${input.hypothesis}` : ''}\n\nRatchet-Experiment: ${e.id}`;
  let { commit } = await commitCandidate({ git: ctx.git, parent: agentBase, scan, message });
  if (agentBase !== session.bestCommit) {
    // Parented on the best at the moment it is submitted: the agent's change, carried onto the new best.
    const carried = await rebaseCandidate(ctx.git, { parent: agentBase, candidate: commit, best: session.bestCommit, message });
    if (!carried.ok) {
      await ctx.git.setRef(`refs/ratchet/${session.tag}/${e.id}`, commit);
      ctx.ledger.finish(e.id, 'refused', `made on ${agentBase.slice(0, 7)}; another agent has kept ${session.bestCommit.slice(0, 7)} since, and the change conflicts with it in ${carried.conflicts.join(', ')}`);
      ctx.writeResults(session);
      throw refusals.behindBest(e.id, agentBase, session.bestCommit, carried.conflicts);
    }
    commit = carried.commit;
  }
  await ctx.git.setRef(`refs/ratchet/${session.tag}/${e.id}`, commit);
  // The commit is built from the scan's own list, so nothing outside the surface can ride along; checked anyway, as keep does.
  const outside = await pathsOutsideSurface(ctx, session.bestCommit, commit, config);
  if (outside.length) {
    ctx.ledger.finish(e.id, 'refused', `the commit changes files outside the edit surface: ${outside.join(', ')}`);
    throw refusals.commitOutsideSurface(e.id, outside);
  }
  // The diff's size is recorded by the caller while the run starts: nothing needs it before then.
  return ctx.ledger.setCommit(e.id, commit, null);
}

/** Paths a commit changes relative to the best that the surface does not allow (both sides of a rename). */
export async function pathsOutsideSurface(ctx: LoopContext, best: string, commit: string, config: Config): Promise<string[]> {
  const isEditable = globMatcher(config.editable);
  const isProtected = globMatcher([CONFIG_PATH, ...config.protected]);
  const changed = (await ctx.git.changedBetween(best, commit)).flatMap((c) => (c.from ? [c.from, c.path] : [c.path]));
  return [...new Set(changed)].filter((p) => !isEditable(p) || isProtected(p));
}
