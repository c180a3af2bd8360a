// Shared types and file names of a supervised run: the spec the server writes, the result the supervisor writes.
// Types only, no zod: the supervisor imports this file and must start fast (the server validates with run-schema.ts).

export type Containment = 'cgroup-v2' | 'cgroup-v1' | 'proc';

export interface RunSpec {
  /** A string runs via /bin/sh -c; an array is argv, run directly. */
  command: string | string[];
  cwd: string;
  /** Merged over the supervisor's process.env, or the whole environment when exactEnv is set. */
  env: Record<string, string>;
  /** The child gets env (and the token) and nothing from the server's or the supervisor's environment. */
  exactEnv?: boolean;
  budgetSeconds: number;
  graceSeconds: number;
  /** stdout and stderr are appended here. */
  logPath: string;
  /** When set, stdout alone is also written here (stderr goes to the log only): evaluate's trusted metric channel. */
  stdoutPath?: string;
  /** The RunResult JSON, written atomically when the run is over. */
  resultPath: string;
  /** Bytes this run may add to the log before it is stopped. */
  maxLogBytes: number;
  /** auto (default): cgroup where the machine allows it, else proc. cgroup: required, the run fails without one. */
  containment?: 'auto' | 'cgroup' | 'proc';
  /** Unique id of the run, exported to every process of it as RATCHET_RUN_TOKEN. */
  token: string;
  /** The sandbox launcher's argv (bwrap ... --): the command runs inside it, in its own PID namespace. */
  sandbox?: { argv: string[] };
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
  /** True when the command ran inside the sandbox (its own PID namespace); absent in results of older versions. */
  sandboxed?: boolean;
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
  sandboxed?: boolean;
  cgroupDirs: string[];
}

export const TOKEN_ENV = 'RATCHET_RUN_TOKEN';

/** Runs one spare supervisor takes before it exits and the server starts a fresh one. */
export const SUPERVISOR_MAX_RUNS = 200;

// The token lands in cgroup directory names and is matched in /proc/<pid>/environ.
const TOKEN_PATTERN = /^[A-Za-z0-9_.-]{1,128}$/;

export function isValidToken(token: string): boolean {
  return TOKEN_PATTERN.test(token) && token !== '.' && token !== '..';
}

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
