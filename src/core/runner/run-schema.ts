// Validation of the runner's files on the server side: the spec before it is handed over, results and start records read back.
import { z } from 'zod';
import { isValidToken, type RunResult, type RunSpec, type RunStarted } from './run-spec.js';

const containment = z.enum(['cgroup-v2', 'cgroup-v1', 'proc']);

export const RunSpecSchema: z.ZodType<RunSpec> = z.object({
  command: z.union([z.string().min(1), z.array(z.string()).min(1)]),
  cwd: z.string().min(1),
  env: z.record(z.string(), z.string()),
  exactEnv: z.boolean().optional(),
  budgetSeconds: z.number().positive().finite(),
  graceSeconds: z.number().nonnegative().finite(),
  logPath: z.string().min(1),
  stdoutPath: z.string().min(1).optional(),
  resultPath: z.string().min(1),
  maxLogBytes: z.number().int().positive(),
  containment: z.enum(['auto', 'cgroup', 'proc']).optional(),
  token: z.string().refine(isValidToken, 'letters, digits, "_", "." or "-" only (at most 128)'),
  sandbox: z.object({ argv: z.array(z.string().min(1)).min(2) }).optional(),
});

export const RunResultSchema: z.ZodType<RunResult> = z.object({
  token: z.string(),
  exitCode: z.number().int().nullable(),
  signal: z.string().nullable(),
  timedOut: z.boolean(),
  cancelled: z.boolean(),
  logLimitExceeded: z.boolean(),
  startedAt: z.string(),
  endedAt: z.string(),
  durationMs: z.number(),
  peakMemoryBytes: z.number().nullable(),
  memoryMethod: z.string(),
  containment,
  sandboxed: z.boolean().optional(),
  sweptProcesses: z.number().int(),
  spawnError: z.string().nullable(),
  supervisorPid: z.number().int(),
  childPid: z.number().int().nullable(),
});

export const RunStartedSchema: z.ZodType<RunStarted> = z.object({
  token: z.string(),
  supervisorPid: z.number().int(),
  childPid: z.number().int(),
  startedAt: z.string(),
  containment,
  sandboxed: z.boolean().optional(),
  cgroupDirs: z.array(z.string()),
});
