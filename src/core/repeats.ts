// Repeats: the baseline's calibration runs, and a candidate measured against the best (ABBA) until the verdict is clear.
import { hostname } from 'node:os';
import { baselineRepeatsOf } from './config.js';
import type { LoopContext } from './context.js';
import type { RunCases } from './cases.js';
import { checkConstraints, constraintFailureOf, decisionReport, machineOf, type PairedCases } from './decision.js';
import type { Driver } from './driver.js';
import type { ExperimentRow, FinalState, SessionRow } from './ledger.js';
import { nextSide, summarize } from './statistics.js';
import type { Config } from './config.js';
import type { DecisionReport } from './views.js';

/**
 * Runs more measurements until the experiment is decided. Each repeat is an ordinary run with its
 * own row, workspace, budget, kill and log; the agent's tree is never touched, so it may keep editing.
 */
export async function repeatUntilDecided(ctx: LoopContext, driver: Driver, rootId: number): Promise<void> {
  for (;;) {
    if (ctx.closed || !ctx.stillRunning(rootId)) return;
    const root = ctx.ledger.experiment(rootId)!;
    const session = ctx.ledger.session(root.sessionId)!;
    const config = ctx.configOf(session);
    const runs = ctx.ledger.runsOf(rootId);
    const active = runs.find((r) => r.id !== rootId && (r.state === 'running' || r.state === 'queued'));
    if (active?.state === 'queued') {
      // Only a restart between recording a repeat and starting it leaves one queued: it never ran.
      driver.finish(active.id, 'cancelled', 'ratchet restarted before this repeat started');
      continue;
    }
    if (active) {
      await driver.drive(active.id);
      continue;
    }
    const failed = runs.find((r) => r.id !== rootId && r.state !== 'measured' && r.state !== 'cancelled');
    if (failed && root.kind !== 'baseline' && failed.commit === root.commit) {
      driver.finish(rootId, failed.state as FinalState, `its repeat #${failed.id} ${failed.state}: ${failed.reason ?? 'no reason recorded'}`);
      return;
    }
    if (root.kind === 'baseline') {
      // Case results carry their own binomial noise: the paired test needs no calibration runs unless the config asks.
      const wanted = config.decision.baselineRepeats ?? (ctx.ledger.caseResults(root.id) ? 1 : baselineRepeatsOf(config));
      if (failed || runs.length >= wanted) return concludeBaseline(ctx, driver, root, runs.length, failed);
    } else {
      const report = currentReport(ctx, root, session, config, { final: !!failed });
      if (report.verdict !== 'pending') return concludeCandidate(ctx, driver, root, report, failed);
    }
    const side = root.kind === 'baseline' ? 'candidate' : nextSide(runs.length);
    const repeat = ctx.ledger.createExperiment({
      sessionId: session.id,
      kind: 'repeat',
      repeatOf: rootId,
      commit: side === 'candidate' ? root.commit! : root.parentCommit,
      parentCommit: root.parentCommit,
      description: `${root.kind === 'baseline' ? 'calibration' : side === 'best' ? 'best re-measured' : 'candidate repeated'} for #${rootId}`,
      host: hostname(),
    });
    await driver.launch(repeat, config, 'run', root.gpus);
    await driver.drive(repeat.id);
  }
}

/** Where a candidate stands now, from the session's measurements on its machine. */
export function currentReport(ctx: LoopContext, root: ExperimentRow, session: SessionRow, config: Config, opts: { final?: boolean } = {}): DecisionReport {
  const runs = ctx.ledger.runsOf(root.id);
  const { rows, noise } = ctx.comparable(session.id, config.metric.name, machineOf(root));
  return decisionReport({
    root,
    best: ctx.bestOf(session),
    config,
    measurements: rows,
    noise,
    runsSpent: runs.filter((r) => r.id === root.id || (r.state !== 'queued' && r.state !== 'running')).length,
    final: opts.final,
    constraintFailure: constraintFailureOf(root, runs),
    cases: pairedCasesOf(ctx, root, runs),
  });
}

/**
 * The case results of the candidate's measured runs and the best's re-measurements, in run order, or null unless every
 * one of them recorded some (pairs would not line up otherwise); and the best's latest earlier run with case results.
 */
export function pairedCasesOf(ctx: LoopContext, root: ExperimentRow, runs: ExperimentRow[]): PairedCases | null {
  const measured = runs.filter((r) => r.state === 'measured' || (r.id === root.id && r.metric !== null));
  const candidate: RunCases[] = [];
  const fresh: RunCases[] = [];
  for (const r of measured) {
    const trials = ctx.ledger.caseResults(r.id);
    if (!trials) return null;
    (r.commit === root.commit ? candidate : fresh).push({ run: r.id, trials });
  }
  if (!candidate.length) return null;
  return { candidate, fresh, history: ctx.ledger.latestCasesOf(root.sessionId, root.parentCommit, root.id) };
}

/**
 * The experiment's secondary figures as the mean over its own measured runs of its commit (the best's
 * re-measurements are not its runs), each over the runs that reported it; the root's own figures when it ran once.
 */
export function secondaryMeans(ctx: LoopContext, root: ExperimentRow, runs: ExperimentRow[], metricName: string): Record<string, number> {
  const own = runs.filter((r) => r.commit === root.commit && (r.id === root.id || r.state === 'measured'));
  if (own.length < 2) return root.secondary;
  const sums = new Map<string, { sum: number; n: number }>();
  for (const r of own) {
    for (const s of ctx.ledger.samples(r.id)) {
      if (s.name === metricName) continue;
      const t = sums.get(s.name) ?? { sum: 0, n: 0 };
      sums.set(s.name, { sum: t.sum + s.value, n: t.n + 1 });
    }
  }
  return Object.fromEntries([...sums].map(([name, t]) => [name, t.sum / t.n]));
}

/**
 * Records the experiment's figures over all its runs (no new samples): the mean secondary figures, and constraint
 * checks on them unless a run failed one (then that run's checks, so keep names the constraint it failed).
 */
function recordMeans(ctx: LoopContext, root: ExperimentRow, config: Config, metric: number | null): void {
  const runs = ctx.ledger.runsOf(root.id);
  if (metric === null || runs.length < 2) return;
  const secondary = secondaryMeans(ctx, root, runs, config.metric.name);
  const failure = constraintFailureOf(root, runs);
  const constraintChecks = failure ? failure.checks : checkConstraints(config, metric, secondary);
  ctx.ledger.recordMeasurement(root.id, { metric, secondary, constraintChecks, metricLines: root.metricLines, samples: [] });
}

function concludeBaseline(ctx: LoopContext, driver: Driver, root: ExperimentRow, runs: number, failed: ExperimentRow | undefined): void {
  const config = ctx.configOf(ctx.ledger.session(root.sessionId)!);
  const values = ctx.measurements(root.sessionId, config.metric.name).filter((m) => m.root === root.id).map((m) => m.value);
  recordMeans(ctx, root, config, summarize(values).mean);
  ctx.ledger.recordVerdict(root.id, null, summarize(values).mean);
  driver.finish(root.id, 'measured', failed ? `calibration stopped at ${values.length} run(s): repeat #${failed.id} ${failed.state}` : null);
  driver.adoptBaseline(ctx.ledger.experiment(root.id)!);
  ctx.log.info({ id: root.id, runs }, 'baseline calibrated');
}

function concludeCandidate(ctx: LoopContext, driver: Driver, root: ExperimentRow, report: DecisionReport, failed: ExperimentRow | undefined): void {
  const note = failed ? ` The best's repeat #${failed.id} ${failed.state}, so the decision uses the runs before it.` : '';
  recordMeans(ctx, root, ctx.configOf(ctx.ledger.session(root.sessionId)!), report.candidate.mean);
  ctx.ledger.recordVerdict(root.id, { ...report, why: report.why + note }, report.candidate.mean);
  driver.finish(root.id, 'measured', null);
  ctx.log.info({ id: root.id, verdict: report.verdict, runs: report.runsSpent }, 'decided');
}
