// Test harness for real supervised runs: temp dirs, unique tokens, run-to-result, and liveness checks on pids.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { startRun } from '../../../src/core/runner/runner.js';
import type { RunResult, RunSpec } from '../../../src/core/runner/run-spec.js';

const dirs: string[] = [];

export function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'ratchet-runner-'));
  dirs.push(dir);
  return dir;
}

export function removeTempDirs(): void {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}

export function newToken(): string {
  return `test-${process.pid}-${randomBytes(6).toString('hex')}`;
}

export function specIn(dir: string, over: Partial<RunSpec> & Pick<RunSpec, 'command'>): RunSpec {
  return {
    cwd: dir,
    env: {},
    budgetSeconds: 20,
    graceSeconds: 1,
    logPath: join(dir, 'run.log'),
    resultPath: join(dir, 'result.json'),
    maxLogBytes: 10 * 1024 * 1024,
    token: newToken(),
    ...over,
  };
}

/** Starts the run and hears its result over the supervisor's pipe; fails the test if none comes within 30 s. */
export async function runToResult(spec: RunSpec): Promise<{ result: RunResult; log: string; wallMs: number }> {
  const t0 = Date.now();
  const { done } = await startRun(spec);
  let timer: NodeJS.Timeout | undefined;
  const result = await Promise.race([done, new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), 30_000)))]);
  clearTimeout(timer);
  if (!result) throw new Error(`no result within 30 s for ${spec.resultPath}`);
  const log = existsSync(spec.logPath) ? readFileSync(spec.logPath, 'utf8') : '';
  return { result, log, wallMs: Date.now() - t0 };
}

/** Dead: no such process, or a zombie waiting for whichever init adopted it (it can run nothing any more). */
export function isDead(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return true;
    throw err;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

export async function waitFor(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Pid written by the run into dir/name, waiting for the file to be complete. */
export async function pidFrom(dir: string, name: string): Promise<number> {
  const path = join(dir, name);
  await waitFor(() => existsSync(path) && /^\d+\n$/.test(readFileSync(path, 'utf8')), 10_000, `${name}`);
  return Number(readFileSync(path, 'utf8'));
}

// Shell fragments: a grandchild in the run's group, and a double-forked daemon in its own session.
export const GRANDCHILD = 'sleep 300 & echo $! > grandchild.pid;';
export const DAEMON = "setsid sh -c 'sleep 300 & echo $! > daemon.pid' &";
// Also scrubs its environment, so neither the token nor (once its parent exits) the process tree leads to it.
export const HIDDEN_DAEMON = "setsid env -i sh -c 'sleep 300 & echo $! > hidden.pid' &";
export const AWAIT_PIDFILES = (names: string[]): string =>
  names.map((n) => `while [ ! -s ${n} ]; do sleep 0.02; done;`).join(' ');
