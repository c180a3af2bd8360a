// The shapes the loop reports: zod schemas that double as the tools' output schemas, so docs, types and checks agree.
import { z } from 'zod';

export const ExperimentStateSchema = z.enum(['queued', 'running', 'measured', 'crashed', 'timed_out', 'refused', 'cancelled', 'pruned']);
export const DecisionSchema = z.enum(['kept', 'reverted']).nullable();

export const ExperimentViewSchema = z.object({
  id: z.number().int(),
  kind: z.enum(['baseline', 'candidate', 'repeat']),
  repeatOf: z.number().int().nullable().describe('For a repeat: the experiment it measures for.'),
  state: ExperimentStateSchema,
  decision: DecisionSchema,
  metric: z.number().nullable().describe('The mean over the experiment\'s own runs when it was repeated.'),
  runs: z.number().int().describe('Runs spent on this experiment, repeats (of it and of the best) included.'),
  secondary: z.record(z.string(), z.number()),
  description: z.string(),
  hypothesis: z.string().nullable(),
  commit: z.string().nullable().describe('Candidate commit, kept under refs/ratchet/<tag>/<id>.'),
  parentCommit: z.string().describe('The best commit the candidate was built on.'),
  reason: z.string().nullable().describe('Why it crashed, timed out, was refused or cancelled; or why it was kept or reverted.'),
  forced: z.boolean(),
  durationSeconds: z.number().nullable(),
  peakMemoryMb: z.number().nullable(),
  memoryMethod: z.string().nullable(),
  peakGpuMemoryMb: z.number().nullable().describe('Peak GPU memory of the run, sampled from nvidia-smi while it went; null when it held no GPU.'),
  gpuUtilizationPercent: z.number().nullable().describe('Mean utilization of its GPUs over the samples; null for MIG instances and cards that do not report it.'),
  gpuMemoryMethod: z.string().nullable().describe('Where peakGpuMemoryMb comes from and how many samples it rests on.'),
  exitCode: z.number().int().nullable(),
  signal: z.string().nullable(),
  gpus: z.array(z.number().int()).nullable(),
  diffStats: z.object({ files: z.number(), insertions: z.number(), deletions: z.number() }).nullable(),
  metricLines: z.number().int().nullable().describe('How often the run printed the metric line; more than once without an evaluate step is suspicious.'),
  workspace: z.string().nullable().describe('A failed run\'s workspace, kept for inspection (the newest workspaces.keepCrashed of them).'),
  createdAt: z.string(),
  endedAt: z.string().nullable(),
  agent: z.string().describe('The agent that proposed it: "main" in the repo\'s own worktree, else the name given to `ratchet worktree add`.'),
});
export type ExperimentView = z.infer<typeof ExperimentViewSchema>;

const Interval = z.tuple([z.number(), z.number()]);

export const SideSchema = z.object({
  commit: z.string().nullable(),
  n: z.number().int(),
  mean: z.number().nullable(),
  interval: Interval.nullable().describe('Confidence interval of the mean (pooled noise).'),
});

const PassRateSchema = z.object({
  passRate: z.number().nullable().describe('Percent of the paired trials\' assertions passed.'),
  interval: Interval.nullable().describe('Wilson interval of the pass rate, at the per-look confidence.'),
});

export const PairedSchema = z.object({
  units: z.number().int().describe('Case trials measured on both sides (trial t of case c in run j of each side).'),
  better: z.number().int().describe('Trial pairs where the candidate passed more assertions.'),
  worse: z.number().int().describe('Trial pairs where it passed fewer.'),
  pBetter: z.number().describe('Exact one-sided p-value that the candidate is better: the sign-flip permutation test on the summed paired differences (McNemar\'s test when a trial is one pass/fail).'),
  pWorse: z.number().describe('The same, for worse.'),
  alpha: z.number().describe('The per-look level: (1 - confidence) / maxRepeats.'),
  screening: z.boolean().describe('True at the first look, against the best\'s latest earlier run: it may only reject.'),
  candidate: PassRateSchema,
  best: PassRateSchema,
  assertions: z
    .array(z.object({ name: z.string().describe('<case>/<assertion>'), candidate: z.number(), best: z.number(), change: z.enum(['better', 'worse', 'same']) }))
    .describe('Each assertion\'s pass rate (percent) on both sides, the largest changes first.'),
});

export const DecisionReportSchema = z.object({
  rule: z.enum(['greedy', 'significant']),
  runs: z
    .array(z.object({ id: z.number().int(), side: z.enum(['candidate', 'best']), value: z.number() }))
    .describe('Every measured run in order; read_log {id} shows any of them.'),
  verdict: z.enum(['improved', 'worse', 'inconclusive', 'pending']).describe('pending: more repeats are coming.'),
  candidate: SideSchema,
  best: SideSchema.describe('The best as re-measured during this experiment (its stored figure is not trusted).'),
  effect: z.number().nullable().describe('Improvement in the metric\'s direction: positive is better.'),
  effectInterval: Interval.nullable(),
  relativeEffect: z.number().nullable().describe('effect / |best mean|.'),
  confidence: z.number().describe('Per-look confidence of the intervals (the session\'s confidence split over maxRepeats looks).'),
  conditionalPower: z.number().nullable(),
  runsSpent: z.number().int(),
  why: z.string(),
  paired: PairedSchema.nullable().optional().describe('Set when the metric step printed case results (`ratchet eval`): the case-by-case comparison that decided.'),
});
export type DecisionReport = z.infer<typeof DecisionReportSchema>;

export const NoiseSchema = z.object({
  samples: z.number().int().describe('Measurements of the calibration (baseline) runs.'),
  mean: z.number().nullable(),
  sd: z.number().nullable().describe('Standard deviation of the calibration runs.'),
  mad: z.number().nullable().describe('Median absolute deviation of the calibration runs.'),
  cv: z.number().nullable().describe('sd / |mean|.'),
  pooledSd: z.number().nullable().describe('Noise pooled over every group of repeated runs in the session, on this machine.'),
  df: z.number().int(),
  minDetectableEffect: z.number().nullable().describe('Smallest true improvement detected 80% of the time within maxRepeats pairs.'),
  basis: z.enum(['cases', 'pooled']).describe('cases: from the binomial model of the calibration\'s case results (paired test); pooled: from the pooled noise.'),
  suggestions: z.array(z.string()).describe('Settings that would detect a smaller gain, each with its new figure and its cost.'),
  host: z.string(),
  gpuModel: z.string().nullable(),
});
export type Noise = z.infer<typeof NoiseSchema>;

export const ConstraintCheckSchema = z.object({
  metric: z.string(),
  value: z.number().nullable(),
  min: z.number().optional(),
  max: z.number().optional(),
  ok: z.boolean(),
});
export type ConstraintCheck = z.infer<typeof ConstraintCheckSchema>;

export const ComparisonSchema = z.object({
  bestId: z.number().int().nullable(),
  bestMetric: z.number().nullable(),
  delta: z.number().nullable().describe('metric - best metric'),
  improved: z.boolean().describe('Strictly better than the best in the metric direction.'),
  equal: z.boolean(),
  direction: z.enum(['minimize', 'maximize']),
});

export const MetricReportSchema = z.object({
  experiment: ExperimentViewSchema,
  metricName: z.string(),
  comparison: ComparisonSchema.nullable(),
  constraints: z.array(ConstraintCheckSchema),
  keepable: z.boolean().describe('Whether `keep` would accept it now (without force).'),
  decision: DecisionReportSchema.nullable().describe('The statistical comparison with the best (significant rule), or the single-run one (greedy).'),
  noise: NoiseSchema.nullable(),
  logTail: z.array(z.string()).nullable().describe('Last lines of the log (at most 50) for a run that did not measure.'),
});
export type MetricReport = z.infer<typeof MetricReportSchema>;

export const SessionViewSchema = z.object({
  tag: z.string(),
  branch: z.string(),
  baseCommit: z.string(),
  bestCommit: z.string(),
  bestExperimentId: z.number().int().nullable(),
  bestMetric: z.number().nullable(),
  baselineMetric: z.number().nullable(),
  metricName: z.string(),
  direction: z.enum(['minimize', 'maximize']),
  createdAt: z.string(),
});
export type SessionView = z.infer<typeof SessionViewSchema>;

const CapUseSchema = z.object({ used: z.number(), limit: z.number().nullable().describe('null: no cap set.'), reached: z.boolean() });

export const LimitsSchema = z.object({
  experiments: CapUseSchema.describe('Candidates run (limits.maxExperiments).'),
  runs: CapUseSchema.describe('Runs spent, calibration and repeats included (limits.maxRuns).'),
  deadline: CapUseSchema.extend({ at: z.string().nullable().describe('When the session ends.') }).describe('Seconds since the session started, of the seconds limits.deadline allows.'),
  consecutiveCrashes: CapUseSchema.describe('Crashed or timed-out experiments in a row (limits.maxConsecutiveCrashes).'),
  cost: CapUseSchema.extend({ unit: z.string() }).nullable().describe('What the session cost so far (limits.maxCost); null without that cap.'),
});
export type Limits = z.infer<typeof LimitsSchema>;

export const FinishedSchema = z.object({
  reason: z.string(),
  at: z.string().nullable().describe('When it ended, where known.'),
  stopped: z.boolean().describe('The user stopped it (ratchet stop or stop_session); else a cap was reached.'),
  cap: z.string().nullable().describe('The limits key that was reached.'),
});
export type Finished = z.infer<typeof FinishedSchema>;

export const StatusSchema = z.object({
  session: SessionViewSchema.nullable(),
  counts: z.record(z.string(), z.number()),
  running: z
    .object({ id: z.number().int(), phase: z.string(), elapsedSeconds: z.number(), budgetSeconds: z.number(), lastLogLine: z.string().nullable() })
    .nullable(),
  awaitingDecision: z.number().int().nullable().describe('A measured candidate that needs keep or revert before the next run.'),
  parallel: z
    .object({
      slots: z.number().int().describe('Experiments that may run at once: ratchet.json `parallel`, and no more than the pool holds (GPUs ÷ gpu.perRun, or the CPU slots).'),
      inFlight: z.array(z.object({ id: z.number().int(), agent: z.string(), phase: z.string(), elapsedSeconds: z.number(), budgetSeconds: z.number(), runs: z.number().int() })),
      queued: z.array(z.number().int()).describe('Candidates waiting for a slot, first to start first.'),
      awaitingDecision: z.array(z.number().int()).describe('Measured candidates not yet kept or reverted.'),
    })
    .nullable()
    .describe('Every experiment in flight, the queue and the candidates awaiting a decision; null without a session.'),
  agent: z
    .object({
      name: z.string().describe('This server\'s agent.'),
      base: z.string().nullable().describe('The best this agent\'s tree was last brought to; its next candidate is its edits since, carried onto the best.'),
      behind: z.boolean().describe('Another agent kept since: sync brings this tree to the new best (revert does too).'),
      agents: z.array(z.object({ name: z.string(), worktree: z.string(), inFlight: z.number().int(), kept: z.number().int() })).describe('Every agent on this ledger.'),
    })
    .describe('Several agents on one ledger (`ratchet worktree add`): who this server proposes for, and the others.'),
  config: z.object({ valid: z.boolean(), error: z.string().nullable() }),
  sandbox: z
    .object({ kind: z.enum(['bwrap', 'none']), mode: z.enum(['auto', 'required', 'off']), why: z.string(), install: z.string().nullable() })
    .describe('The isolation each run and evaluate step gets, and why.'),
  integrity: z
    .object({ ok: z.boolean(), findings: z.array(z.string()) })
    .describe('Changes to ratchet\'s evidence made outside ratchet (ledger rows, refs, the ledger file); keep is refused while there are any.'),
  advice: z.array(z.string()).describe('Things worth fixing for a trustworthy night.'),
  ledger: z.string(),
  resultsTsv: z.string(),
  noise: NoiseSchema.nullable(),
  plateau: z
    .object({ reached: z.boolean(), experimentsSinceKeep: z.number().int(), window: z.number().int(), message: z.string().nullable() })
    .nullable()
    .describe('Whether recent experiments stopped bringing significant improvements.'),
  runsSpent: z.number().int().describe('Runs in this session, repeats and calibration included.'),
  finished: FinishedSchema.nullable().describe('Set once the user stopped the session or a cap of limits was reached: no more experiments run.'),
  limits: LimitsSchema.nullable().describe('Each cap of limits: used, limit and whether it is reached.'),
  next: z.string().describe('What to do next.'),
});
export type Status = z.infer<typeof StatusSchema>;
