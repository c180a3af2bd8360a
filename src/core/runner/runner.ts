// Server-side runner API: start a detached supervisor per run, hear or await its result, cancel it, recover after it died.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RatchetError } from '../errors.js';
import { writeJsonAtomic } from './atomic-file.js';
import { cgroupMembers, findRunCgroups, removeCgroups, signalCgroup } from './cgroup.js';
import { listenToSupervisor, watchRunResult } from './completion.js';
import { readLogTail } from './log-tail.js';
import { isDead, readStat, signalProcess, sleep, tokenTree } from './process-tree.js';
import { isSupervisorAlive, readIfExists, readRunResult, readRunStarted } from './result-files.js';
import { RunSpecSchema } from './run-schema.js';
import { isValidToken, specPathFor, startedPathFor, SUPERVISOR_MAX_RUNS, supervisorLogPathFor, type RunResult, type RunSpec, type RunStarted } from './run-spec.js';

export { isSupervisorAlive, readLogTail, readRunResult, readRunStarted, watchRunResult };
export type { RunResult, RunSpec, RunStarted };

const START_TIMEOUT_MS = 15_000;
const SWEEP_TIMEOUT_MS = 30_000;

export interface StartedRun {
  supervisorPid: number;
  specPath: string;
  /** Settles the moment the supervisor announces its result (no polling); null if it died without writing one. */
  done: Promise<RunResult | null>;
}

/** dist/core/runner/supervise.js; from the TypeScript sources (vitest, tsx) the built copy under <project>/dist. */
export function supervisorScriptPath(): string {
  const here = fileURLToPath(import.meta.url);
  if (here.endsWith('.ts')) return join(dirname(here), '..', '..', '..', 'dist', 'core', 'runner', 'supervise.js');
  return join(dirname(here), 'supervise.js');
}

/** Starts the run under its own detached supervisor and returns once the child is running (or has failed to start). */
export async function startRun(spec: RunSpec): Promise<StartedRun> {
  const full = validSpec({
    ...spec,
    cwd: resolve(spec.cwd),
    logPath: resolve(spec.logPath),
    resultPath: resolve(spec.resultPath),
    ...(spec.stdoutPath !== undefined ? { stdoutPath: resolve(spec.stdoutPath) } : {}),
  });
  const script = supervisorScriptPath();
  if (!existsSync(script)) {
    throw new RatchetError('internal', `The run supervisor is not built: ${script} is missing.`, 'Run `npm run build`, then retry.');
  }
  mkdirSync(dirname(full.resultPath), { recursive: true });
  // Leftovers of an earlier run at these paths would read as this run's outcome.
  rmSync(full.resultPath, { force: true });
  rmSync(startedPathFor(full.resultPath), { force: true });
  const specPath = specPathFor(full.resultPath);
  writeJsonAtomic(specPath, full, { durable: false });
  const errorLog = supervisorLogPathFor(full.resultPath);
  // A supervisor writes its own failures to errorLog once it has read the spec; a fresh one's start-up errors go there too.
  const errFd = openSync(errorLog, 'w');
  let supervisor: PooledSupervisor;
  try {
    supervisor = takeIdle() ?? spawnSupervisor(script, errFd);
  } finally {
    closeSync(errFd);
  }
  supervisor.runs++;
  const { child } = supervisor;
  child.ref();
  (child.stdout as unknown as { ref?: () => void } | null)?.ref?.();
  const link = listenToSupervisor(child, full.resultPath, (reusable) => release(supervisor, reusable));
  child.stdin!.write(`${specPath}\n`);
  await supervisorStarted(child, link.started, errorLog);
  // Starting Node blocks this process for a while: when no supervisor is left idle, the next one starts while this run runs.
  if (idle.length === 0) setImmediate(() => idle.length === 0 && spawnSpare(script));
  return { supervisorPid: child.pid ?? 0, specPath, done: link.done };
}

/**
 * Supervisors serve runs one after another (supervise.ts): one is handed each run on its stdin and comes back idle when
 * the run is done, so in a steady loop the server starts no process per run. Each one exits on its own when the server
 * goes away (its stdin closes).
 */
interface PooledSupervisor {
  child: ChildProcess;
  runs: number;
}

const idle: PooledSupervisor[] = [];
/** Two: one for the next run while the last one's supervisor finishes; more would only hold memory. */
const MAX_IDLE = 2;
// Room in the command line for the title that carries a run's token (see supervise.ts).
const TITLE_ROOM = 'x'.repeat(320);

function spawnSupervisor(script: string, stderr: number | 'ignore' = 'ignore'): PooledSupervisor {
  // detached: its own session, so neither the server's death nor its terminal's hangup reaches the supervisor.
  // stdout is a pipe only the server reads: "started" and "done" arrive the moment they happen.
  const child = spawn(process.execPath, [script, '--spare', TITLE_ROOM], { detached: true, stdio: ['pipe', 'pipe', stderr], env: process.env, cwd: '/' });
  const pooled = { child, runs: 0 };
  child.stdin!.on('error', () => {});
  // A supervisor idle in the pool has no run listening for its errors; one unheard 'error' would crash the server.
  child.on('error', () => {});
  child.once('exit', () => {
    const at = idle.indexOf(pooled);
    if (at >= 0) idle.splice(at, 1);
  });
  return pooled;
}

function spawnSpare(script: string): void {
  if (process.env.RATCHET_NO_SPARE_SUPERVISOR) return;
  release(spawnSupervisor(script), true);
}

/** Back to the pool when it can take another run; otherwise its stdin closes and it exits. */
function release(pooled: PooledSupervisor, reusable: boolean): void {
  const { child } = pooled;
  if (reusable && pooled.runs < SUPERVISOR_MAX_RUNS && idle.length < MAX_IDLE && !child.stdin?.destroyed) {
    // An idle supervisor must not keep a CLI or a test alive.
    child.unref();
    for (const stream of [child.stdin, child.stdout] as unknown as { unref?: () => void }[]) stream.unref?.();
    idle.push(pooled);
  } else {
    child.stdin?.end();
  }
}

/** An idle supervisor that is still alive; the caller owns it from here. */
function takeIdle(): PooledSupervisor | null {
  for (let pooled = idle.pop(); pooled; pooled = idle.pop()) {
    const { child } = pooled;
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined && !child.stdin?.destroyed) return pooled;
  }
  return null;
}

/** Polls for the result; null when timeoutMs passes or signal aborts first. Prefer startRun's done or watchRunResult. */
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
 * A sandboxed run needs none of this (its namespace dies with the supervisor), but the sweep is harmless there.
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

async function supervisorStarted(child: ChildProcess, started: Promise<void>, errorLog: string): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), START_TIMEOUT_MS)));
  try {
    const outcome = await Promise.race([started, timeout]);
    if (outcome !== 'timeout') return;
    if (child.pid !== undefined) process.kill(child.pid, 'SIGTERM');
    throw new RatchetError('internal', `The run supervisor did not start the run within ${START_TIMEOUT_MS / 1000} s.`, `The machine may be overloaded; see ${errorLog}.`);
  } catch (err) {
    if (err instanceof RatchetError) throw err;
    const detail = (readIfExists(errorLog) ?? '').trim().split('\n').slice(-20).join('\n');
    throw new RatchetError('internal', `The run supervisor ${(err as Error).message} before starting the run.${detail ? `\n${detail}` : ''}`, `See ${errorLog}.`);
  } finally {
    clearTimeout(timer);
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
