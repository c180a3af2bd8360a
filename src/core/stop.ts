// The user's stop: recorded in the ledger, so this server, another one and the Stop hook all see the session as finished.
import type { LoopContext } from './context.js';
import type { ExperimentRow, SessionEndRow, SessionRow } from './ledger.js';
import type { ExperimentView, Finished } from './views.js';
import { sessionFinished } from './limits.js';
import * as refusals from './refusals.js';

export interface Stopped {
  /** The stop as recorded. */
  finished: Finished;
  /** The session was already stopped: nothing was recorded or told again. */
  alreadyStopped: boolean;
  /** The experiment the stop cancelled (with cancel). */
  cancelled: ExperimentView | null;
  /** The experiment that still runs to its end (without cancel); keep or revert it once it is measured. */
  running: ExperimentView | null;
}

export interface RecordedStop {
  session: SessionRow;
  end: SessionEndRow;
  recorded: boolean;
  finished: Finished;
  /** The session's experiment in progress, if any (its repeats belong to it). */
  running: ExperimentRow | null;
}

export function stopSession(ctx: LoopContext, input: { cancel?: boolean; by: 'cli' | 'tool' }): RecordedStop {
  const { session } = ctx.requireSession();
  const running = ctx.ledger.unfinishedExperiments().find((e) => e.sessionId === session.id && e.kind !== 'repeat') ?? null;
  const how = input.by === 'cli' ? 'with `ratchet stop`' : 'through the stop_session tool';
  const cancelling = input.cancel && running ? `, cancelling experiment ${running.id}` : '';
  const { end, recorded } = ctx.ledger.stopSession(session.id, { reason: `stopped by the user ${how}${cancelling}`, cancelledExperimentId: input.cancel ? running?.id ?? null : null });
  if (recorded) ctx.log.info({ tag: session.tag, reason: end.reason }, 'session stopped');
  // The stop itself, even where a cap had finished the session before (status names the first end).
  return { session, end, recorded, running, finished: { reason: end.reason, at: end.createdAt, stopped: true, cap: null } };
}

/**
 * `ratchet close`: the user ends the session for good (stopping it first if it was not finished), so the agent may
 * start the next one; refused while an experiment of it runs or awaits keep or revert, which would be orphaned.
 */
export function closeSession(ctx: LoopContext): { session: SessionRow; finished: Finished } {
  const { session } = ctx.requireSession();
  const running = ctx.ledger.unfinishedExperiments().find((e) => e.sessionId === session.id);
  if (running) throw refusals.notClosable(session.tag, running.id, 'is still running');
  const undecided = ctx.awaitingDecision(session);
  if (undecided) throw refusals.notClosable(session.tag, undecided.id, 'is measured and awaits keep or revert');
  const finished = sessionFinished(ctx, session, ctx.configOf(session)) ?? stopSession(ctx, { by: 'cli' }).finished;
  ctx.ledger.closeSession(session.id);
  ctx.log.info({ tag: session.tag }, 'session closed by the user');
  return { session: ctx.ledger.session(session.id)!, finished };
}
