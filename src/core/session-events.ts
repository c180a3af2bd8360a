// What the user hears during the night: keeps, crash streaks, plateaus, caps reached and the session's end, each sent once to notify.command.
import type { Config } from './config.js';
import type { LoopContext } from './context.js';
import { formatNumber } from './format.js';
import type { ExperimentRow, SessionEndRow, SessionRow } from './ledger.js';
import { capReached, DEFAULT_CRASH_STREAK, sessionFinished } from './limits.js';
import { Notifier, type NotifyEvent } from './notify.js';
import * as refusals from './refusals.js';
import { plateau } from './reports.js';

export class SessionEvents {
  readonly notifier: Notifier;
  /** Plateaus already told, by session and best experiment: a new keep starts a new count. */
  private readonly plateausTold = new Set<string>();

  constructor(private readonly ctx: LoopContext) {
    this.notifier = new Notifier(ctx.log, ctx.repo);
  }

  /** Follows an experiment to its end in the background, then tells what its end means. */
  follow(id: number, done: Promise<unknown>): void {
    this.notifier.track(done.then(() => this.afterExperiment(id)));
  }

  /** run_experiment's first check: past a cap or after a stop nothing new runs. A cap seen here first is recorded and told. */
  refuseIfFinished(session: SessionRow, config: Config): void {
    const finished = sessionFinished(this.ctx, session, config);
    if (!finished) return;
    this.recordCap(session, config);
    throw refusals.sessionFinished(session.tag, finished);
  }

  afterKeep(before: SessionRow, kept: ExperimentRow): void {
    const { ctx } = this;
    const config = ctx.configOf(before);
    const previous = ctx.bestOf(before)?.metric ?? null;
    const name = config.metric.name;
    this.send(before, config, {
      event: 'keep',
      summary: `kept #${kept.id} "${kept.description}": ${name} ${fmt(kept.metric)} (was ${fmt(previous)})`,
      experimentId: kept.id,
      description: kept.description,
      metricName: name,
      metric: kept.metric,
      previousBest: previous,
      baseline: ctx.ledger.baselineMetric(before.id),
      forced: kept.forced,
    });
  }

  /** A reverted candidate is one more experiment without a keep: the plateau may have begun. */
  afterRevert(session: SessionRow, reverted: ExperimentRow | null): void {
    if (reverted?.kind === 'candidate' && reverted.state === 'measured') this.checkPlateau(session, this.ctx.configOf(session));
  }

  stopped(session: SessionRow, end: SessionEndRow, cancelled: number | null): void {
    this.send(session, this.ctx.configOf(session), {
      event: 'session_end',
      summary: end.reason,
      reason: end.reason,
      cancelledExperimentId: cancelled,
    });
  }

  private afterExperiment(id: number): void {
    const { ctx } = this;
    if (ctx.closed) return;
    const e = ctx.ledger.experiment(id);
    if (!e || e.kind === 'repeat' || e.state === 'running' || e.state === 'queued') return;
    const session = ctx.ledger.session(e.sessionId)!;
    const config = ctx.configOf(session);
    if (e.state === 'crashed' || e.state === 'timed_out') this.checkCrashStreak(session, config, e);
    // A measured candidate counts toward the plateau once it is decided (afterRevert); every other end counts now.
    if (e.kind === 'candidate' && e.state !== 'measured') this.checkPlateau(session, config);
    this.recordCap(session, config);
  }

  private checkCrashStreak(session: SessionRow, config: Config, last: ExperimentRow): void {
    const threshold = config.limits?.maxConsecutiveCrashes ?? DEFAULT_CRASH_STREAK;
    // Told when the streak reaches the threshold, not again for every crash after it.
    if (this.ctx.ledger.crashStreak(session.id, threshold + 1) !== threshold) return;
    this.send(session, config, {
      event: 'crash_streak',
      summary: `${threshold} experiments in a row crashed or timed out; the last, #${last.id}: ${last.reason ?? last.state}`,
      crashes: threshold,
      experimentId: last.id,
      reason: last.reason,
    });
  }

  private checkPlateau(session: SessionRow, config: Config): void {
    const p = plateau(this.ctx, session, config);
    // Told once per plateau: status's count stops at the window, so the plateau is named by the best it sits on.
    const key = `${session.id}:${this.ctx.ledger.session(session.id)?.bestExperimentId ?? 'none'}`;
    if (!p.reached || this.plateausTold.has(key)) return;
    this.plateausTold.add(key);
    this.send(session, config, { event: 'plateau', summary: p.message!, experimentsSinceKeep: p.experimentsSinceKeep, window: p.window });
  }

  /** Records a cap the first time anyone sees it reached, and tells the user that once. */
  private recordCap(session: SessionRow, config: Config): void {
    if (this.ctx.ledger.sessionEnd(session.id)) return;
    const reached = capReached(this.ctx, session, config);
    if (!reached) return;
    const { end, recorded } = this.ctx.ledger.recordCapReached(session.id, { cap: reached.cap, reason: reached.reason });
    if (!recorded) return;
    this.ctx.log.info({ tag: session.tag, cap: end.cap, reason: end.reason }, 'cap reached; the session is finished');
    this.send(session, config, { event: 'cap_reached', summary: `finished: ${end.reason}`, cap: end.cap, reason: end.reason });
  }

  private send(session: SessionRow, config: Config, payload: { event: NotifyEvent; summary: string; [detail: string]: unknown }): void {
    const summary = payload.summary.length > SUMMARY_CHARS ? `${payload.summary.slice(0, SUMMARY_CHARS - 1)}…` : payload.summary;
    this.notifier.send(config, { ...payload, summary: `ratchet ${session.tag}: ${summary}`, tag: session.tag, branch: session.branch, at: new Date().toISOString() });
  }
}

/** A notification is read at a glance: a long experiment description is cut. */
const SUMMARY_CHARS = 200;
const fmt = (x: number | null) => (x === null ? 'n/a' : formatNumber(x));
