// Runs one shell command (agent, assertion command or judge) in its own process group: stdin fed, stdout capped, the group killed at the timeout.
import { spawn } from 'node:child_process';

export interface ShellRun {
  command: string;
  cwd: string;
  env: NodeJS.ProcessEnv;
  input: string;
  timeoutMs: number;
  /** stdout beyond this is a harness failure: the group is killed rather than the output cut short. */
  maxStdoutBytes?: number;
}

export interface ShellResult {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  /** The last few KiB of stderr, for the reason of a failure. */
  stderrTail: string;
  timedOut: boolean;
  overflowed: boolean;
  /** Why it could not start, when it could not. */
  startError?: string;
}

export const MAX_STDOUT_BYTES = 16 * 1024 * 1024;
const STDERR_TAIL_BYTES = 4096;
// After SIGTERM, how long a command gets to exit on its own before SIGKILL.
const TERM_GRACE_MS = 2000;
// After the command exits, how long a process that left its group may keep the pipes open before they are dropped.
const DRAIN_MS = 2000;

/** Process groups still running, so an interrupted `ratchet eval` leaves nothing behind (see killAllGroups). */
const liveGroups = new Set<number>();

export function runShell(run: ShellRun): Promise<ShellResult> {
  const cap = run.maxStdoutBytes ?? MAX_STDOUT_BYTES;
  return new Promise((done) => {
    // detached: the command leads a new process group, so one signal reaches everything it started.
    const child = spawn('/bin/sh', ['-c', run.command], { cwd: run.cwd, env: run.env, detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
    const stdout: Buffer[] = [];
    let stdoutBytes = 0;
    let stderrTail = Buffer.alloc(0);
    let timedOut = false;
    let overflowed = false;
    let exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
    let finished = false;
    const timers: NodeJS.Timeout[] = [];
    const pid = child.pid;
    if (pid !== undefined) liveGroups.add(pid);

    const stop = () => {
      killGroup(pid, 'SIGTERM');
      timers.push(setTimeout(() => killGroup(pid, 'SIGKILL'), TERM_GRACE_MS));
    };
    const finish = (startError?: string) => {
      if (finished) return;
      finished = true;
      timers.forEach(clearTimeout);
      killGroup(pid, 'SIGKILL'); // whatever it left running in the background
      if (pid !== undefined) liveGroups.delete(pid);
      child.stdout.destroy();
      child.stderr.destroy();
      done({
        exitCode: exit?.code ?? null,
        signal: exit?.signal ?? null,
        stdout: Buffer.concat(stdout).toString('utf8'),
        stderrTail: stderrTail.toString('utf8'),
        timedOut,
        overflowed,
        startError,
      });
    };

    timers.push(
      setTimeout(() => {
        timedOut = true;
        stop();
      }, run.timeoutMs),
    );
    child.stdout.on('data', (chunk: Buffer) => {
      if (overflowed) return;
      stdoutBytes += chunk.length;
      if (stdoutBytes > cap) {
        overflowed = true;
        stop();
      } else {
        stdout.push(chunk);
      }
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderrTail = Buffer.concat([stderrTail, chunk]);
      if (stderrTail.length > STDERR_TAIL_BYTES) stderrTail = stderrTail.subarray(stderrTail.length - STDERR_TAIL_BYTES);
    });
    // A command that does not read its stdin closes the pipe early; that is not a failure.
    child.stdin.on('error', () => undefined);
    child.stdin.end(run.input);
    child.on('error', (err) => finish(err.message));
    child.on('exit', (code, signal) => {
      exit = { code, signal };
      // What it left in the background goes now, so its pipes close and 'close' follows.
      killGroup(pid, 'SIGKILL');
      timers.push(setTimeout(() => finish(), DRAIN_MS));
    });
    child.on('close', () => finish());
  });
}

/** Kills every group runShell started that is still running; for SIGINT/SIGTERM of ratchet eval itself. */
export function killAllGroups(): void {
  for (const pid of liveGroups) killGroup(pid, 'SIGKILL');
  liveGroups.clear();
}

function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // the group is gone already
  }
}

/** One line saying why a run is not usable, or null when it exited 0. */
export function failureReason(result: ShellResult, timeoutMs: number): string | null {
  if (result.startError) return `could not start: ${result.startError}`;
  if (result.overflowed) return `printed more than ${MAX_STDOUT_BYTES / 1024 / 1024} MiB on stdout`;
  if (result.timedOut) return `was killed at the timeout of ${timeoutMs / 1000} s`;
  if (result.exitCode !== 0) {
    const how = result.exitCode === null ? `was killed by ${result.signal}` : `exited with code ${result.exitCode}`;
    const tail = lastLine(result.stderrTail);
    return tail ? `${how}: ${tail}` : how;
  }
  return null;
}

function lastLine(text: string): string {
  const lines = text.trim().split('\n');
  return (lines[lines.length - 1] ?? '').slice(0, 300);
}
