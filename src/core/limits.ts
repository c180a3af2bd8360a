// The caps on a night (ratchet.json "limits"): how much of each is used, and whether the session is finished.
import { durationSeconds, type Config } from './config.js';
import type { LoopContext } from './context.js';
import type { SessionRow } from './ledger.js';
import type { Finished, Limits } from './views.js';

/** Crashes in a row that earn a crash_streak notification when limits.maxConsecutiveCrashes is not set. */
export const DEFAULT_CRASH_STREAK = 3;
/** How far back status counts a crash streak that no cap bounds. */
const STREAK_LOOKBACK = 100;

/** Why a cap stops the session, keyed by the limits key that was reached. */
export interface CapReached {
  cap: keyof NonNullable<Config['limits']>;
  reason: string;
  /** When it was reached, where that moment is known (a deadline); else null. */
  at: string | null;
}

/**
 * Null while the session may go on; else why it is finished: the user's stop or the first cap recorded,
 * else a cap reached now. Reads only; the loop records a cap when it first sees it.
 */
export function sessionFinished(ctx: LoopContext, session: SessionRow, config: Config): Finished | null {
  const end = ctx.ledger.sessionEnd(session.id);
  if (end) return { reason: end.reason, at: end.createdAt, stopped: end.kind === 'stopped', cap: end.cap };
  const reached = capReached(ctx, session, config);
  return reached ? { reason: reached.reason, at: reached.at, stopped: false, cap: reached.cap } : null;
}

/** One sentence for refusals and status: who or what ended the session, and why. */
export function finishedSentence(tag: string, finished: Pick<Finished, 'reason' | 'stopped'>): string {
  return finished.stopped ? `Session ${tag} was ${finished.reason}.` : `Session ${tag} is finished: ${finished.reason}.`;
}

/** The first cap the session has reached, in the order a person would name them, or null. */
export function capReached(ctx: LoopContext, session: SessionRow, config: Config, now = Date.now()): CapReached | null {
  const limits = config.limits;
  if (!limits) return null;
  const use = limitsReport(ctx, session, config, now);
  if (use.deadline.reached) return { cap: 'deadline', reason: `its deadline ${use.deadline.at} passed (limits.deadline "${limits.deadline}")`, at: use.deadline.at };
  if (use.experiments.reached) return { cap: 'maxExperiments', reason: `${use.experiments.used} of ${use.experiments.limit} experiments ran (limits.maxExperiments)`, at: null };
  if (use.runs.reached) return { cap: 'maxRuns', reason: `${use.runs.used} of ${use.runs.limit} runs were spent (limits.maxRuns)`, at: null };
  if (use.consecutiveCrashes.reached) {
    return { cap: 'maxConsecutiveCrashes', reason: `${use.consecutiveCrashes.used} experiments in a row crashed or timed out (limits.maxConsecutiveCrashes)`, at: null };
  }
  if (use.cost?.reached) return { cap: 'maxCost', reason: `it cost ${Math.round(use.cost.used * 1e4) / 1e4} of ${use.cost.limit} ${use.cost.unit} (limits.maxCost)`, at: null };
  return null;
}

/** What status shows per cap: used, the limit (null when not set) and whether it is reached. */
export function limitsReport(ctx: LoopContext, session: SessionRow, config: Config, now = Date.now()): Limits {
  const limits = config.limits ?? {};
  const { ledger } = ctx;
  const cap = (used: number, limit: number | undefined) => ({ used, limit: limit ?? null, reached: limit !== undefined && used >= limit });
  const started = Date.parse(session.createdAt);
  const deadline = limits.deadline === undefined ? null : deadlineOf(limits.deadline, started);
  const crashLimit = limits.maxConsecutiveCrashes;
  return {
    experiments: cap(ledger.candidatesRun(session.id), limits.maxExperiments),
    runs: cap(ledger.runsSpent(session.id).runs, limits.maxRuns),
    deadline: {
      used: Math.max(0, Math.round((now - started) / 1000)),
      limit: deadline === null ? null : Math.round((deadline - started) / 1000),
      reached: deadline !== null && now >= deadline,
      at: deadline === null ? null : new Date(deadline).toISOString(),
    },
    consecutiveCrashes: cap(ledger.crashStreak(session.id, Math.max(crashLimit ?? 0, STREAK_LOOKBACK)), crashLimit),
    cost: limits.maxCost ? costOf(ctx, session, limits.maxCost) : null,
  };
}

/** The deadline as epoch milliseconds: a duration counts from the session's start. */
export function deadlineOf(text: string, startedMs: number): number {
  const seconds = durationSeconds(text);
  return seconds === null ? Date.parse(text) : startedMs + seconds * 1000;
}

function costOf(ctx: LoopContext, session: SessionRow, maxCost: NonNullable<NonNullable<Config['limits']>['maxCost']>): NonNullable<Limits['cost']> {
  const used =
    maxCost.source === 'metric'
      ? ctx.ledger.metricTotal(session.id, maxCost.metric)
      : (ctx.ledger.gpuSeconds(session.id) / 3600) * maxCost.pricePerGpuHour;
  const unit = maxCost.source === 'metric' ? `(sum of ${maxCost.metric})` : `(GPU-hours x ${maxCost.pricePerGpuHour})`;
  return { used, limit: maxCost.amount, reached: used >= maxCost.amount, unit };
}
