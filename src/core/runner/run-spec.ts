// Shared types and file names of a supervised run: the spec the server writes, the result the supervisor writes.
import { z } from 'zod';

export type Containment = 'cgroup-v2' | 'cgroup-v1' | 'proc';

export interface RunSpec {
  /** A string runs via /bin/sh -c; an array is argv, run directly. */
  command: string | string[];
  cwd: string;
  /** Merged over the supervisor's process.env. */
  env: Record<string, string>;
  budgetSeconds: number;
  graceSeconds: number;
  /** stdout and stderr are appended here. */
  logPath: string;
  /** The RunResult JSON, written atomically when the run is over. */
  resultPath: string;
  /** Bytes this run may add to the log before it is stopped. */
  maxLogBytes: number;
  /** auto (default): cgroup where the machine allows it, else proc. cgroup: required, the run fails without one. */
  containment?: 'auto' | 'cgroup' | 'proc';
  /** Unique id of the run, exported to every process of it as RATCHET_RUN_TOKEN. */
  token: string;
}

export interface RunResult {
  token: string;
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  cancelled: boolean;
  logLimitExceeded: boolean;
  startedAt: string;
  endedAt: string;
  durationMs: number;
  peakMemoryBytes: number | null;
  memoryMethod: string;
  containment: Containment;
  /** Processes found alive after the main process exited, which the final sweep then killed. */
  sweptProcesses: number;
  spawnError: string | null;
  supervisorPid: number;
  childPid: number | null;
}

/** What the supervisor writes once the child is running; startRun waits for it. */
export interface RunStarted {
  token: string;
  supervisorPid: number;
  childPid: number;
  startedAt: string;
  containment: Containment;
  cgroupDirs: string[];
}

export const TOKEN_ENV = 'RATCHET_RUN_TOKEN';

// The token lands in cgroup directory names and is matched in /proc/<pid>/environ.
const TOKEN_PATTERN = /^[A-Za-z0-9_.-]{1,128}$/;

export function isValidToken(token: string): boolean {
  return TOKEN_PATTERN.test(token) && token !== '.' && token !== '..';
}

export const RunSpecSchema: z.ZodType<RunSpec> = z.object({
  command: z.union([z.string().min(1), z.array(z.string()).min(1)]),
  cwd: z.string().min(1),
  env: z.record(z.string(), z.string()),
  budgetSeconds: z.number().positive().finite(),
  graceSeconds: z.number().nonnegative().finite(),
  logPath: z.string().min(1),
  resultPath: z.string().min(1),
  maxLogBytes: z.number().int().positive(),
  containment: z.enum(['auto', 'cgroup', 'proc']).optional(),
  token: z.string().refine(isValidToken, 'letters, digits, "_", "." or "-" only (at most 128)'),
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
  containment: z.enum(['cgroup-v2', 'cgroup-v1', 'proc']),
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
  containment: z.enum(['cgroup-v2', 'cgroup-v1', 'proc']),
  cgroupDirs: z.array(z.string()),
});

export function specPathFor(resultPath: string): string {
  return `${resultPath}.spec.json`;
}

export function startedPathFor(resultPath: string): string {
  return `${resultPath}.started`;
}

/** The supervisor's stderr: empty unless the supervisor itself failed. */
export function supervisorLogPathFor(resultPath: string): string {
  return `${resultPath}.supervisor.log`;
}
