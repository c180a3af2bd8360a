// Pruning (decision.prune): a candidate run whose learning curve is clearly worse than the best's at the same step is stopped early.
import { join } from 'node:path';
import type { Config } from './config.js';
import type { LoopContext } from './context.js';
import { machineOf } from './decision.js';
import type { ExperimentRow } from './ledger.js';
import { ProgressTail, progressRegex } from './progress.js';
import { checkPrune, pruneMargin } from './statistics.js';

/**
 * A check to call while a candidate's run goes: once past the warm-up, an intermediate value clearly
 * worse than the best's runs at the same step stops it as pruned. The best's own runs are never
 * pruned (they are the reference), and nothing is pruned until the best has been re-measured.
 */
export function prunerFor(ctx: LoopContext, e: ExperimentRow, stop: () => void): (() => void) | null {
  const session = ctx.ledger.session(e.sessionId)!;
  const config = ctx.configOf(session);
  if (!config.decision.prune) return null;
  const root = e.repeatOf !== null ? ctx.ledger.experiment(e.repeatOf)! : e;
  if (root.kind !== 'candidate' || e.commit !== root.commit) return null;
  const tail = new ProgressTail(join(ctx.runDir(e.id), 'run.log'), progressRegex(config.metric.name, config.metric.progressPattern));
  // The runs that made the best win read luckier than it is (the winner's curse); its calibration and later re-measurements do not.
  const best = ctx.bestOf(session);
  const won = best?.kind === 'candidate' ? best.id : null;
  const { noise } = ctx.comparable(session.id, config.metric.name, machineOf(root));
  const references = ctx
    .measurements(session.id, config.metric.name)
    .filter((m) => m.commit === root.parentCommit && m.root !== won)
    .map((m) => ctx.ledger.progress(m.run))
    .filter((curve) => curve.length > 0);
  if (!references.length) return null;
  return () => {
    if (!tail.read().length) return;
    const check = checkPrune({
      curve: tail.points,
      references,
      warmupFraction: config.decision.pruneWarmup,
      margin: pruneMargin(noise, config.decision, references.length),
      direction: config.metric.direction,
    });
    if (!check?.prune) return;
    // Recorded before the stop, so a restart in between still reads it as pruned, not cancelled.
    ctx.ledger.requestPrune(e.id, check.why);
    ctx.log.info({ id: e.id, step: check.step }, 'pruned');
    stop();
  };
}

/** Stores a finished run's learning curve: the reference later runs are pruned against. */
export function recordCurve(ctx: LoopContext, e: ExperimentRow, config: Config): void {
  if (ctx.ledger.progress(e.id).length) return;
  const points = new ProgressTail(join(ctx.runDir(e.id), 'run.log'), progressRegex(config.metric.name, config.metric.progressPattern)).readAll();
  if (points.length) ctx.ledger.addProgress(e.id, points);
}
