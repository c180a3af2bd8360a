// The shapes the loop reports: zod schemas that double as the tools' output schemas, so docs, types and checks agree.
import { z } from 'zod';

export const ExperimentStateSchema = z.enum(['queued', 'running', 'measured', 'crashed', 'timed_out', 'refused', 'cancelled']);
export const DecisionSchema = z.enum(['kept', 'reverted']).nullable();

export const ExperimentViewSchema = z.object({
  id: z.number().int(),
  kind: z.enum(['baseline', 'candidate']),
  state: ExperimentStateSchema,
  decision: DecisionSchema,
  metric: z.number().nullable(),
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
  exitCode: z.number().int().nullable(),
  signal: z.string().nullable(),
  gpus: z.array(z.number().int()).nullable(),
  diffStats: z.object({ files: z.number(), insertions: z.number(), deletions: z.number() }).nullable(),
  createdAt: z.string(),
  endedAt: z.string().nullable(),
});
export type ExperimentView = z.infer<typeof ExperimentViewSchema>;

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

export const StatusSchema = z.object({
  session: SessionViewSchema.nullable(),
  counts: z.record(z.string(), z.number()),
  running: z
    .object({ id: z.number().int(), phase: z.string(), elapsedSeconds: z.number(), budgetSeconds: z.number(), lastLogLine: z.string().nullable() })
    .nullable(),
  awaitingDecision: z.number().int().nullable().describe('A measured candidate that needs keep or revert before the next run.'),
  config: z.object({ valid: z.boolean(), error: z.string().nullable() }),
  ledger: z.string(),
  resultsTsv: z.string(),
  next: z.string().describe('What to do next.'),
});
export type Status = z.infer<typeof StatusSchema>;
