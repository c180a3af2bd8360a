// Several experiments at once from one agent: how many may run, which wait, and a stale candidate carried onto the best.
import { hostname } from 'node:os';
import type { Config } from './config.js';
import type { LoopContext } from './context.js';
import type { ExperimentRow, ExperimentState, Ledger, SessionRow } from './ledger.js';
import { rebaseCandidate } from './rebase.js';
import { RatchetError } from './errors.js';
import * as refusals from './refusals.js';

/**
 * Experiments that may run at once: `parallel` in ratchet.json (1 by default, the one-at-a-time loop). With more
 * than one, run_experiment accepts new candidates while others run, and the ones beyond it wait, first in first out.
 */
export function capacityOf(config: Config): number {
  return config.parallel;
}

/** Experiments of the session that hold a slot (running) and wait for one (queued), oldest first; repeats ride on their experiment's slot. */
export function slots(ctx: LoopContext, session: SessionRow): { running: ExperimentRow[]; queued: ExperimentRow[] } {
  const mine = ctx.ledger.unfinishedExperiments().filter((e) => e.sessionId === session.id && e.kind !== 'repeat');
  return { running: mine.filter((e) => e.state === 'running'), queued: mine.filter((e) => e.state === 'queued' && e.commit !== null) };
}

/** Measured candidates not yet kept or reverted, oldest first (among the `newest` measured, 50 by default). */
export function undecidedCandidates(ledger: Ledger, session: SessionRow, newest = 50): ExperimentRow[] {
  const newestFirst = ledger.listExperiments(session.id, { limit: newest, state: 'measured' }).rows;
  return newestFirst.filter((e) => e.kind === 'candidate' && e.decision === null).reverse();
}

/**
 * What wait_experiment {next: true} returns: the oldest candidate awaiting a decision at once (so one that ended between
 * two calls is not missed), else whichever experiment in flight ends first within `waitMs`, else the oldest still going.
 */
export async function nextToFinish(ctx: LoopContext, session: SessionRow, waitMs: number, agent: string): Promise<ExperimentRow> {
  // Each agent follows its own experiments; others' are theirs to decide.
  const own = (e: ExperimentRow) => ctx.ledger.agentOf(e.id) === agent;
  const undecided = undecidedCandidates(ctx.ledger, session).find(own);
  if (undecided) return undecided;
  // A candidate that crashed (or timed out, or was pruned) between two calls needs no decision, so it would
  // otherwise never come back: it is returned once, the oldest first.
  const failed = unshownFailures(ctx, session).find(own);
  if (failed) return ctx.shown(failed);
  const { running, queued } = slots(ctx, session);
  const watched = [...running, ...queued].filter(own).map((e) => e.id);
  if (!watched.length) throw refusals.nothingInFlight();
  const deadline = Date.now() + waitMs;
  for (;;) {
    const done = watched.map((id) => ctx.ledger.experiment(id)!).find((e) => e.state !== 'running' && e.state !== 'queued');
    if (done) return ctx.shown(done);
    if (Date.now() >= deadline || ctx.closed) return ctx.ledger.experiment(watched[0]!)!;
    await new Promise((resolve) => setTimeout(resolve, 250).unref());
  }
}

const FAILED: ReadonlySet<ExperimentState> = new Set(['crashed', 'timed_out', 'pruned']);

/** Candidates that ended without a measurement since this server opened, and that no tool has shown its agent yet. */
function unshownFailures(ctx: LoopContext, session: SessionRow): ExperimentRow[] {
  const newestFirst = ctx.ledger.listExperiments(session.id, { limit: 50 }).rows;
  const since = (e: ExperimentRow) => e.endedAt !== null && Date.parse(e.endedAt) >= ctx.openedAt;
  return newestFirst.filter((e) => e.kind === 'candidate' && FAILED.has(e.state) && since(e) && !ctx.shownEnded.has(e.id)).reverse();
}

export type StaleOutcome = { kind: 'rebased'; experiment: ExperimentRow; merged: string[] } | { kind: 'conflict'; conflicts: string[] };

/**
 * A candidate measured against a best that has since moved: its change, carried onto the current best, becomes a new
 * candidate to measure (linked by its description and its ref), or the paths that conflict. The original is decided
 * `reverted` with the reason, and stays as evidence either way.
 */
export async function carryOntoBest(ctx: LoopContext, session: SessionRow, e: ExperimentRow): Promise<StaleOutcome> {
  const rebased = await rebaseCandidate(ctx.git, {
    parent: e.parentCommit,
    candidate: e.commit!,
    best: session.bestCommit,
    message: `ratchet: #${e.id} carried onto ${session.bestCommit.slice(0, 7)}: ${e.description}\n\nRatchet-Rebased-From: ${e.id}`,
  });
  if (!rebased.ok) {
    ctx.ledger.decide(e.id, { decision: 'reverted', reason: `stale: measured against ${e.parentCommit.slice(0, 7)}, and its change conflicts with the new best in ${rebased.conflicts.join(', ')}`, forced: false });
    ctx.writeResults(session);
    return { kind: 'conflict', conflicts: rebased.conflicts };
  }
  const next = ctx.createOwnExperiment({
    sessionId: session.id,
    kind: 'candidate',
    parentCommit: session.bestCommit,
    description: `${e.description} (#${e.id} carried onto the new best)`.slice(0, 500),
    hypothesis: e.hypothesis,
    host: hostname(),
  });
  await ctx.git.setRef(`refs/ratchet/${session.tag}/${next.id}`, rebased.commit);
  const row = ctx.ledger.setCommit(next.id, rebased.commit, await ctx.git.diffStats(session.bestCommit, rebased.commit));
  ctx.ledger.decide(e.id, { decision: 'reverted', reason: `stale: measured against ${e.parentCommit.slice(0, 7)}; its change is measured again on the new best as #${next.id}`, forced: false });
  ctx.writeResults(session);
  return { kind: 'rebased', experiment: row, merged: rebased.merged };
}

/** What keep says when it could not keep a stale candidate: what happened to it, and what to call next. */
export function staleRefusal(e: ExperimentRow, outcome: StaleOutcome): RatchetError {
  if (outcome.kind === 'conflict') {
    return new RatchetError(
      'stale_candidate',
      `Experiment ${e.id} was measured against a best that has moved since (another candidate was kept), and its change conflicts with the new best in ${outcome.conflicts.join(', ')}. It stays recorded as evidence, reverted.`,
      'Redo the idea on the current best: revert to bring your tree there, edit, and run_experiment again.',
      { conflicts: outcome.conflicts },
    );
  }
  return new RatchetError(
    'stale_candidate',
    `Experiment ${e.id} was measured against a best that has moved since (another candidate was kept), so it cannot be kept as it is. Its change applied cleanly to the new best and is being measured as experiment ${outcome.experiment.id}.`,
    `wait_experiment {id: ${outcome.experiment.id}}, then keep that one if it is improved.`,
    { remeasuredAs: outcome.experiment.id, merged: outcome.merged },
  );
}
