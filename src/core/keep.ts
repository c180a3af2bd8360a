// keep and revert: the branch moves forward only to a measured improvement; everything else goes back to the best, losing no edit.
import { join } from 'node:path';
import type { Config } from './config.js';
import type { LoopContext } from './context.js';
import { compare } from './decision.js';
import type { ExperimentRow, SessionRow } from './ledger.js';
import { pathsOutsideSurface } from './candidate.js';
import { undecidedCandidates } from './parallel.js';
import { moveAgentBase, syncToBest } from './agents/sync.js';
import { RatchetError } from './errors.js';
import * as refusals from './refusals.js';
import { commitCandidate, resetSurface, restorePinned, scanSurface, verifyPins } from './surface.js';

/** Null when `keep` may proceed, else the error that says why not and what to do. */
export function keepRefusal(
  ctx: LoopContext,
  session: SessionRow,
  config: Config,
  e: ExperimentRow,
  force: boolean,
  reason?: string,
  /** The best to compare with; the session's by default, the one it was measured against for a stale candidate. */
  against: ExperimentRow | undefined = ctx.bestOf(session),
): RatchetError | null {
  if (e.kind === 'baseline') return refusals.keepBaseline(e.id);
  if (e.decision) return refusals.alreadyDecided(e.id, e.decision);
  if (e.state !== 'measured') return refusals.notMeasured(e.id, e.state);
  // One at a time, only the latest may be kept; with several in flight any measured one may (a stale one is carried over first).
  const latest = ctx.ledger.latestRunExperiment(session.id);
  if (config.parallel === 1 && latest && latest.id !== e.id) return refusals.notLatest(e.id, latest.id);
  const failed = e.constraintChecks.filter((c) => !c.ok);
  if (failed.length) return refusals.constraintsViolated(e.id, failed);
  const best = against;
  if (!best || best.metric === null) return null; // the baseline never measured: the first measurement sets the bar
  if (config.decision.rule === 'significant') return significantRefusal(config, e, force, reason);
  const cmp = compare(e.metric!, best, config.metric.direction);
  if (cmp.improved) return null;
  if (cmp.equal && force) return reason?.trim() ? null : refusals.forceNeedsReason(e.id, 'tie');
  return refusals.greedyNotImproved(e.id, config.metric.name, e.metric!, best.metric, cmp.delta!, config.metric.direction, cmp.equal);
}

/** Under `significant`, only a verdict of improved keeps; force keeps an inconclusive (or tied) simplification, never a worse one. */
function significantRefusal(config: Config, e: ExperimentRow, force: boolean, reason?: string): RatchetError | null {
  const report = e.verdict;
  if (!report) return refusals.noVerdictYet(e.id);
  if (report.verdict === 'improved') return null;
  if (report.verdict === 'inconclusive' && force) return reason?.trim() ? null : refusals.forceNeedsReason(e.id, 'inconclusive');
  if (report.verdict === 'inconclusive') return refusals.inconclusive(e.id, config.metric.name, config.decision.confidence, report);
  return refusals.notAnImprovement(e.id, config.metric.name, report);
}

/** Moves the branch to the candidate (compare-and-swap) and records the keep. */
export async function keep(ctx: LoopContext, session: SessionRow, config: Config, e: ExperimentRow, input: { force?: boolean; reason?: string }): Promise<ExperimentRow> {
  const refusal = keepRefusal(ctx, session, config, e, input.force === true, input.reason);
  if (refusal) throw refusal;
  const outside = await pathsOutsideSurface(ctx, session.bestCommit, e.commit!, config);
  if (outside.length) throw refusals.commitOutsideSurface(e.id, outside);
  await ctx.git.advanceBranch(session.branch, e.commit!, session.bestCommit);
  const forced =
    input.force === true &&
    (config.decision.rule === 'significant' ? e.verdict?.verdict !== 'improved' : !compare(e.metric!, ctx.bestOf(session), config.metric.direction).improved);
  const base = ctx.baseOf(session);
  ctx.ledger.keep(session.id, e.id, e.commit!, { reason: forced ? `forced: ${input.reason}` : 'improved', forced, completedAfterRestart: false });
  // The keeper's tree holds the kept change, so its next edits start from the new best. A change carried onto another
  // agent's keep also holds that agent's work, which the tree lacks: it is brought along, as sync would.
  if (base === e.parentCommit) await moveAgentBase(ctx, session, e.commit!);
  else await syncToBest(ctx, ctx.ledger.session(session.id)!, config);
  ctx.writeResults(ctx.ledger.session(session.id)!);
  ctx.log.info({ id: e.id, metric: e.metric, forced }, 'kept');
  return ctx.ledger.experiment(e.id)!;
}

/**
 * keep moves the branch, then writes the ledger; a crash between the two leaves the branch at an
 * undecided candidate. If that candidate was keepable, the keep is completed and marked so.
 */
export function completeInterruptedKeep(ctx: LoopContext, session: SessionRow, tip: string): boolean {
  // With several in flight (or several agents) the one kept need not be the latest: the branch names it by its commit.
  const pending = undecidedCandidates(ctx.ledger, session).find((c) => c.commit === tip);
  if (!pending || pending.parentCommit !== session.bestCommit) return false;
  if (keepRefusal(ctx, session, ctx.configOf(session), pending, false) !== null) return false;
  const keeper = ctx.ledger.agentOf(pending.id);
  const keeperBase = ctx.registry.baseOf(keeper, session.id) ?? session.bestCommit;
  ctx.ledger.keep(session.id, pending.id, tip, { reason: 'improved (keep completed after a restart)', forced: false, completedAfterRestart: true });
  // The keeper's tree holds the candidate: its base moves as keep would have moved it, when the candidate is its tree's
  // change on that base. Otherwise (carried onto another agent's keep) the base stays, and its next candidate is carried.
  if (keeperBase === pending.parentCommit) ctx.registry.setBase(keeper, session.id, tip);
  session.bestCommit = tip;
  session.bestExperimentId = pending.id;
  ctx.writeResults(session);
  ctx.log.warn({ id: pending.id }, 'completed a keep that was interrupted between git and the ledger');
  return true;
}

export interface Reverted {
  experiment: ExperimentRow | null;
  /** The best commit the editable files were put back at; null when the tree had moved on to other edits and was left alone. */
  resetTo: string | null;
  removedUntracked: string[];
  savedWorktree: string | null;
}

/** Whether one of this agent's latest candidates (the 20 newest experiments) was committed with exactly this tree. */
async function heldByRecentCandidate(ctx: LoopContext, session: SessionRow, tree: string): Promise<boolean> {
  const recent = ctx.ledger.listExperiments(session.id, { limit: 20 }).rows.filter((x) => x.kind === 'candidate' && x.commit && ctx.ledger.agentOf(x.id) === ctx.agent);
  for (const x of recent) if ((await ctx.git.treeOf(x.commit!)) === tree) return true;
  return false;
}

/**
 * Puts the editable files back at the best commit; whatever was there is first committed under a ref, so no edit is lost.
 * With `onlyIfTreeIsCandidate` (several experiments in flight), a tree that already holds other edits than the candidate's
 * is left as it is: the agent has moved on to its next idea, and only the decision is recorded.
 */
export async function revert(ctx: LoopContext, session: SessionRow, config: Config, e: ExperimentRow | undefined, opts: { onlyIfTreeIsCandidate?: boolean } = {}): Promise<Reverted> {
  const { pins } = await ctx.pinned(session);
  const scan = await scanSurface({ repo: ctx.repo, git: ctx.git, baseCommit: session.bestCommit, editable: config.editable, protectedGlobs: config.protected, outputs: config.run.outputs, pins });
  let savedWorktree: string | null = null;
  if (scan.changed.length) {
    const message = `ratchet: working tree before revert${e ? ` of #${e.id}` : ''}`;
    // A tree the surface refuses (a nested repository, say) is still saved, as git sees it.
    const snap = scan.violations.length ? await ctx.git.snapshot(session.bestCommit, message) : await commitCandidate({ git: ctx.git, parent: session.bestCommit, scan, message });
    const candidateTree = e?.commit ? await ctx.git.treeOf(e.commit) : null;
    if (opts.onlyIfTreeIsCandidate && snap.tree !== candidateTree) return { experiment: decideReverted(ctx, session, e), resetTo: null, removedUntracked: [], savedWorktree: null };
    // A tree that one of the agent's candidates already holds is saved under that experiment's ref: no second copy.
    if (snap.tree !== candidateTree && !(e === undefined && (await heldByRecentCandidate(ctx, session, snap.tree)))) {
      savedWorktree = `refs/ratchet/${session.tag}/worktree-${Date.now()}`;
      await ctx.git.setRef(savedWorktree, snap.commit);
    }
  }
  const removedUntracked = await resetSurface({ git: ctx.git, commit: session.bestCommit, editable: config.editable, protectedGlobs: config.protected, outputs: config.run.outputs });
  // Ignored protected files are outside git's reach; their pinned copies put them back.
  const tampered = (await verifyPins(ctx.repo, pins, config.protected)).map((v) => v.path);
  if (tampered.length) await restorePinned(ctx.repo, pins, join(ctx.stateDir, 'pins'), tampered.filter((p) => pins.some((pin) => pin.path === p)));
  await moveAgentBase(ctx, session, session.bestCommit);
  const row = decideReverted(ctx, session, e);
  ctx.log.info({ id: e?.id, savedWorktree }, 'reverted');
  return { experiment: row, resetTo: session.bestCommit, removedUntracked, savedWorktree };
}

function decideReverted(ctx: LoopContext, session: SessionRow, e: ExperimentRow | undefined): ExperimentRow | null {
  if (!e || e.kind !== 'candidate' || e.state !== 'measured' || e.decision !== null) return e ?? null;
  const row = ctx.ledger.decide(e.id, { decision: 'reverted', reason: 'reverted by the agent', forced: false });
  ctx.writeResults(session);
  return row;
}
