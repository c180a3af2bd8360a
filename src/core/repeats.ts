// Repeats: the baseline's calibration runs, and a candidate measured against the best (ABBA) until the verdict is clear.
import { randomInt } from 'node:crypto';
import { hostname } from 'node:os';
import { baselineRepeatsOf } from './config.js';
import type { LoopContext } from './context.js';
import type { RunCases } from './cases.js';
import { checkConstraints, constraintFailureOf, decisionReport, machineOf, type PairedCases } from './decision.js';
import type { Driver } from './driver.js';
import type { ExperimentRow, FinalState, GpuAssignment, SessionRow } from './ledger.js';
import { capacityOf, slots } from './parallel.js';
import { batchSides, summarize, type Side } from './statistics.js';
import type { Config } from './config.js';
import type { DecisionReport } from './views.js';

/**
 * Runs more measurements until the experiment is decided. Each repeat is an ordinary run with its own row, workspace,
 * budget, kill and log; the agent's tree is never touched, so it may keep editing. With devices (or CPU slots) free,
 * the runs go in batches: one on the experiment's own devices, the others on spare devices of the same model, all
 * followed to their end before one look at the evidence. A batch is one look, so there are never more looks than one
 * run at a time would take, and the decision's error rate holds.
 */
export async function repeatUntilDecided(ctx: LoopContext, driver: Driver, rootId: number): Promise<void> {
  for (;;) {
    if (ctx.closed || !ctx.stillRunning(rootId)) return;
    const root = ctx.ledger.experiment(rootId)!;
    const session = ctx.ledger.session(root.sessionId)!;
    const config = ctx.configOf(session);
    const runs = ctx.ledger.runsOf(rootId);
    const inFlight = runs.filter((r) => r.id !== rootId && (r.state === 'running' || r.state === 'queued'));
    if (inFlight.length) {
      // Only a restart between recording a batch and starting it leaves repeats queued: they never ran.
      for (const q of inFlight.filter((r) => r.state === 'queued')) driver.finish(q.id, 'cancelled', 'ratchet restarted before this repeat started');
      await followBatch(ctx, driver, rootId, inFlight.filter((r) => r.state === 'running'));
      continue;
    }
    const failures = runs.filter((r) => r.id !== rootId && r.state !== 'measured' && r.state !== 'cancelled');
    // In a batch both sides may fail: the candidate's own failure decides.
    const failed = failures.find((r) => r.commit === root.commit) ?? failures[0];
    if (failed && root.kind !== 'baseline' && failed.commit === root.commit) {
      driver.finish(rootId, failed.state as FinalState, `its repeat #${failed.id} ${failed.state}: ${failed.reason ?? 'no reason recorded'}`);
      return;
    }
    let room: number;
    if (root.kind === 'baseline') {
      // Case results carry their own binomial noise: the paired test needs no calibration runs unless the config asks.
      const wanted = config.decision.baselineRepeats ?? (ctx.ledger.caseResults(root.id) ? 1 : baselineRepeatsOf(config));
      if (failed || runs.length >= wanted) return concludeBaseline(ctx, driver, root, runs.length, failed);
      room = wanted - runs.length;
    } else {
      // maxRepeats pairs at most: a batch never takes the decision past them.
      room = 2 * config.decision.maxRepeats - measuredRuns(root, runs).length;
      const report = currentReport(ctx, root, session, config, { final: !!failed || room <= 0 });
      if (report.verdict !== 'pending') return concludeCandidate(ctx, driver, root, report, failed);
    }
    const batch = await launchBatch(ctx, driver, root, config, runs, room);
    await followBatch(ctx, driver, rootId, batch);
  }
}

/** The root's run and its measured repeats: what the sides are counted over. */
function measuredRuns(root: ExperimentRow, runs: ExperimentRow[]): ExperimentRow[] {
  return runs.filter((r) => r.id === root.id || r.state === 'measured');
}

/**
 * Records and starts the next batch of at most `room` runs: one on the experiment's own devices, one on each spare
 * lease the pool gives now. The slots `parallel` leaves unfilled stay free for candidates the agent may submit.
 */
async function launchBatch(ctx: LoopContext, driver: Driver, root: ExperimentRow, config: Config, runs: ExperimentRow[], room: number): Promise<ExperimentRow[]> {
  const spares = await driver.pool.leaseSpare(root, config, { max: room - 1, keepFree: await unfilledSlots(ctx, driver, root, config) });
  const measured = measuredRuns(root, runs);
  // A look needs whole pairs: a batch that would leave one side a run ahead is one run smaller.
  if (root.kind !== 'baseline' && spares.length && (measured.length + 1 + spares.length) % 2 === 1) driver.pool.giveBack(spares.splice(-1));
  const devices = [root.gpus, ...spares.map((s) => s.gpus)];
  const sides: Side[] = root.kind === 'baseline' ? devices.map(() => 'candidate') : sidesFor(root, measured, devices);
  const batch: ExperimentRow[] = [];
  try {
    for (const [i, side] of sides.entries()) {
      const repeat = ctx.ledger.createExperiment({
        sessionId: root.sessionId,
        kind: 'repeat',
        repeatOf: root.id,
        commit: side === 'candidate' ? root.commit! : root.parentCommit,
        parentCommit: root.parentCommit,
        description: `${root.kind === 'baseline' ? 'calibration' : side === 'best' ? 'best re-measured' : 'candidate repeated'} for #${root.id}`,
        host: hostname(),
        // The experiment's agent, whichever server drives it (it may have adopted the run of another agent's server).
        agent: ctx.ledger.agentOf(root.id),
      });
      if (i > 0) driver.pool.hold(spares[i - 1]!, repeat.id);
      batch.push(repeat);
    }
  } finally {
    driver.pool.giveBack(spares.slice(Math.max(0, batch.length - 1)));
  }
  for (const [i, repeat] of batch.entries()) {
    if (ctx.closed) break; // the next server cancels what was not started
    // Cancelled while the batch starts: the runs not started yet never will.
    if (!ctx.stillRunning(root.id)) driver.finish(repeat.id, 'cancelled', 'cancelled with its experiment');
    else await driver.launch(repeat, config, 'run', devices[i]);
  }
  return batch;
}

/** The side each device of a batch measures, from what each measured before in this decision (see batchSides). */
function sidesFor(root: ExperimentRow, measured: ExperimentRow[], devices: (GpuAssignment | null)[]): Side[] {
  const sideOf = (r: ExperimentRow): Side => (r.commit === root.commit ? 'candidate' : 'best');
  const history = devices.map((d) => {
    const key = deviceKey(d);
    return key === null ? [] : measured.filter((r) => deviceKey(r.gpus) === key).map(sideOf);
  });
  const candidate = measured.filter((r) => sideOf(r) === 'candidate').length;
  // A coin decides which new device takes which side: a device's own speed becomes noise across decisions, never a
  // bias of one side. Runs on several devices sit in one group of repeats, so the pooled noise includes their spread.
  return batchSides({ candidate, best: measured.length - candidate }, history, randomInt(2) === 1);
}

/** Which devices a run used, or null for a CPU slot (slots are alike, and a run does not record which it had). */
function deviceKey(gpus: GpuAssignment | null): string | null {
  return gpus ? (gpus.uuids ?? gpus.indices.map(String)).join(',') : null;
}

/** Runs' worth of devices to leave free: the slots under `parallel` that no experiment of the session fills now. */
async function unfilledSlots(ctx: LoopContext, driver: Driver, root: ExperimentRow, config: Config): Promise<number> {
  const wanted = capacityOf(config);
  if (wanted === 1) return 0; // one experiment at a time: this one
  const session = ctx.ledger.session(root.sessionId)!;
  return Math.max(0, Math.min(wanted, await driver.pool.capacity(config)) - slots(ctx, session).running.length);
}

/**
 * Follows a batch's runs to their ends. An experiment cancelled meanwhile stops them all: the cancel stops its oldest
 * run, and the others are stopped here as soon as the experiment is seen ended.
 */
async function followBatch(ctx: LoopContext, driver: Driver, rootId: number, batch: ExperimentRow[]): Promise<void> {
  const stopIfEnded = () => {
    if (ctx.closed || ctx.stillRunning(rootId)) return;
    for (const r of batch) {
      const now = ctx.ledger.experiment(r.id)!;
      if (now.state === 'running') driver.cancelStep(now);
    }
  };
  stopIfEnded();
  await Promise.all(batch.map((r) => driver.drive(r.id).then(stopIfEnded)));
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
