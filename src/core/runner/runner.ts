// Server-side runner API: start a detached supervisor per run, read or await its result, cancel it, recover after it died.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RatchetError } from '../errors.js';
import { writeJsonAtomic } from './atomic-file.js';
import { cgroupMembers, findRunCgroups, removeCgroups, signalCgroup } from './cgroup.js';
import { readLogTail } from './log-tail.js';
import { carriesToken, isDead, readStat, signalProcess, sleep, tokenTree } from './process-tree.js';
import {
  isValidToken,
  RunResultSchema,
  RunSpecSchema,
  RunStartedSchema,
  specPathFor,
  startedPathFor,
  supervisorLogPathFor,
  TOKEN_ENV,
  type RunResult,
  type RunSpec,
  type RunStarted,
} from './run-spec.js';

export { readLogTail };
export type { RunResult, RunSpec, RunStarted };

const START_TIMEOUT_MS = 15_000;
const SWEEP_TIMEOUT_MS = 30_000;

/** dist/core/runner/supervise.js; from the TypeScript sources (vitest, tsx) the built copy under <project>/dist. */
export function supervisorScriptPath(): string {
  const here = fileURLToPath(import.meta.url);
  if (here.endsWith('.ts')) return join(dirname(here), '..', '..', '..', 'dist', 'core', 'runner', 'supervise.js');
  return join(dirname(here), 'supervise.js');
}

/** Starts the run under its own detached supervisor and returns once the child is running (or has failed to start). */
export async function startRun(spec: RunSpec): Promise<{ supervisorPid: number; specPath: string }> {
  const full = validSpec({ ...spec, cwd: resolve(spec.cwd), logPath: resolve(spec.logPath), resultPath: resolve(spec.resultPath) });
  const script = supervisorScriptPath();
  if (!existsSync(script)) {
    throw new RatchetError('internal', `The run supervisor is not built: ${script} is missing.`, 'Run `npm run build`, then retry.');
  }
  mkdirSync(dirname(full.resultPath), { recursive: true });
  // Leftovers of an earlier run at these paths would read as this run's outcome.
  rmSync(full.resultPath, { force: true });
  rmSync(startedPathFor(full.resultPath), { force: true });
  const specPath = specPathFor(full.resultPath);
  writeJsonAtomic(specPath, full);
  const errorLog = supervisorLogPathFor(full.resultPath);
  const errFd = openSync(errorLog, 'w');
  let child: ChildProcess;
  try {
    // detached: its own session, so neither the server's death nor its terminal's hangup reaches the supervisor.
    child = spawn(process.execPath, [script, specPath], {
      detached: true,
      stdio: ['ignore', 'ignore', errFd],
      env: { ...process.env, [TOKEN_ENV]: full.token },
      cwd: '/',
    });
  } finally {
    closeSync(errFd);
  }
  await supervisorStarted(child, full.resultPath, errorLog);
  child.unref();
  return { supervisorPid: child.pid ?? 0, specPath };
}

/** The result, or null while the run is still going (or its supervisor died without one: see isSupervisorAlive). */
export function readRunResult(resultPath: string): RunResult | null {
  const text = readIfExists(resultPath);
  return text === null ? null : RunResultSchema.parse(JSON.parse(text));
}

/** What the supervisor recorded on starting the child (its pid, containment, cgroups), or null. */
export function readRunStarted(resultPath: string): RunStarted | null {
  const text = readIfExists(startedPathFor(resultPath));
  return text === null ? null : RunStartedSchema.parse(JSON.parse(text));
}

/** Polls for the result; null when timeoutMs passes or signal aborts first. */
export async function waitForRunResult(
  resultPath: string,
  opts: { timeoutMs: number; signal?: AbortSignal; onTick?: (elapsedMs: number) => void; tickMs?: number },
): Promise<RunResult | null> {
  const start = Date.now();
  const tickMs = Math.max(10, opts.tickMs ?? 250);
  for (;;) {
    const result = readRunResult(resultPath);
    if (result) return result;
    const elapsed = Date.now() - start;
    if (elapsed >= opts.timeoutMs || opts.signal?.aborted) return null;
    opts.onTick?.(elapsed);
    await abortableSleep(Math.min(tickMs, opts.timeoutMs - elapsed), opts.signal);
  }
}

/** True only if pid is still this run's supervisor: a reused pid carries neither the token nor the script. */
export function isSupervisorAlive(pid: number, token: string): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  const stat = readStat(pid);
  if (!stat || isDead(stat) || !carriesToken(pid, token)) return false;
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('supervise.js');
  } catch {
    return false;
  }
}

/** Asks the supervisor to stop the run (it then writes a result with cancelled: true); false if it is not running. */
export function cancelRun(supervisorPid: number, token: string): boolean {
  if (!isSupervisorAlive(supervisorPid, token)) return false;
  try {
    process.kill(supervisorPid, 'SIGTERM');
    return true;
  } catch {
    return false;
  }
}

/**
 * Recovery for a run whose supervisor died: SIGKILLs every process carrying the token (and their descendants),
 * the supervisor included if it still lives, then its cgroups. Returns how many processes it killed.
 */
export async function sweepRun(token: string): Promise<number> {
  if (!isValidToken(token)) throw new RatchetError('invalid_argument', `Invalid run token: ${token}`, 'Pass the token the run was started with.');
  const dirs = findRunCgroups(token);
  const killed = new Set<string>();
  const deadline = Date.now() + SWEEP_TIMEOUT_MS;
  for (;;) {
    const procs = tokenTree(token, new Set([process.pid]));
    const members = cgroupMembers(dirs);
    if ((procs.length === 0 && members.length === 0) || Date.now() > deadline) break;
    for (const pid of members) {
      const stat = readStat(pid);
      if (stat && !isDead(stat)) killed.add(`${pid}:${stat.startTime}`);
    }
    signalCgroup(dirs, 'SIGKILL');
    for (const p of procs) if (signalProcess(p.pid, p.startTime, 'SIGKILL')) killed.add(`${p.pid}:${p.startTime}`);
    await sleep(50);
  }
  await removeCgroups(dirs);
  return killed.size;
}

function validSpec(spec: RunSpec): RunSpec {
  const parsed = RunSpecSchema.safeParse(spec);
  if (parsed.success) return parsed.data;
  const issues = parsed.error.issues.map((i) => `${i.path.join('.') || 'spec'}: ${i.message}`).join('; ');
  throw new RatchetError('invalid_argument', `Invalid run spec: ${issues}`, 'Fix the listed fields and start the run again.');
}

async function supervisorStarted(child: ChildProcess, resultPath: string, errorLog: string): Promise<void> {
  const state: { gone: string | null } = { gone: null };
  child.once('exit', (code, signal) => (state.gone = `exited (${signal ?? `code ${code}`})`));
  child.once('error', (err) => (state.gone = `could not start: ${err.message}`));
  const deadline = Date.now() + START_TIMEOUT_MS;
  const ready = (): boolean => existsSync(startedPathFor(resultPath)) || existsSync(resultPath);
  for (;;) {
    if (ready()) return;
    // Checked after the files: a supervisor that wrote its result and exited at once has not failed.
    if (state.gone !== null && !ready()) {
      const detail = (readIfExists(errorLog) ?? '').trim().split('\n').slice(-20).join('\n');
      throw new RatchetError('internal', `The run supervisor ${state.gone} before starting the run.${detail ? `\n${detail}` : ''}`, `See ${errorLog}.`);
    }
    if (Date.now() > deadline) {
      if (child.pid !== undefined && state.gone === null) process.kill(child.pid, 'SIGTERM');
      throw new RatchetError('internal', `The run supervisor did not start the run within ${START_TIMEOUT_MS / 1000} s.`, `The machine may be overloaded; see ${errorLog}.`);
    }
    await sleep(20);
  }
}

function readIfExists(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((done) => {
    const finish = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', finish);
      done();
    };
    const timer = setTimeout(finish, ms);
    signal?.addEventListener('abort', finish, { once: true });
  });
}
