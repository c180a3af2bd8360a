// How the server learns that a run started and ended without polling: the supervisor's pipe, or after a restart its result file.
import type { ChildProcess } from 'node:child_process';
import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import { messageReader } from './channel.js';
import { isSupervisorAlive, readRunResult } from './result-files.js';
import { RunResultSchema } from './run-schema.js';
import type { RunResult } from './run-spec.js';

export interface SupervisorLink {
  /** Settles when the child runs (or the supervisor gave up on it and wrote its result); rejects when the supervisor died first. */
  started: Promise<void>;
  /** The result as the supervisor announced it; at worst what the result file holds once the pipe closed, or null. */
  done: Promise<RunResult | null>;
}

/**
 * Listens on the pipe of a supervisor this process spawned (stdio[1] 'pipe') for one run. Once done settles it stops
 * listening and calls `released` with whether the supervisor is still alive and idle (its "done" arrived on the pipe), so
 * the caller can hand it the next run.
 */
export function listenToSupervisor(child: ChildProcess, resultPath: string, released: (reusable: boolean) => void = () => {}): SupervisorLink {
  let heard = false;
  let settled = false;
  let settleStarted: (failure: Error | null) => void = () => {};
  const started = new Promise<void>((resolve, reject) => (settleStarted = (failure) => (failure ? reject(failure) : resolve())));
  let resolveDone: (result: RunResult | null) => void = () => {};
  const done = new Promise<RunResult | null>((resolve) => (resolveDone = resolve));
  const onData = messageReader((message) => {
    heard = true;
    settleStarted(null);
    if (message.type === 'done') settleDone(RunResultSchema.safeParse(message.result).data ?? resultOrNull(resultPath), true);
  });
  const ignore = (): void => {};
  // The pipe is gone: the supervisor has exited, with a result on file (its message lost) or none.
  const onClose = (code: number | null, signal: NodeJS.Signals | null): void => {
    if (!heard) settleStarted(new Error(`exited (${signal ?? `code ${code}`})`));
    settleDone(resultOrNull(resultPath), false);
  };
  const onError = (err: Error): void => {
    settleStarted(new Error(`could not start: ${err.message}`));
    settleDone(null, false);
  };
  function settleDone(result: RunResult | null, alive: boolean): void {
    if (settled) return;
    settled = true;
    child.stdout?.off('data', onData);
    child.stdout?.off('error', ignore);
    child.off('close', onClose);
    child.off('error', onError);
    child.unref();
    (child.stdout as unknown as { unref?: () => void } | null)?.unref?.();
    resolveDone(result);
    released(alive && child.exitCode === null && child.signalCode === null);
  }
  child.stdout?.on('data', onData);
  child.stdout?.on('error', ignore);
  child.once('close', onClose);
  child.once('error', onError);
  return { started, done };
}

/**
 * Follows a supervisor this process did not spawn (after a restart): the result file's directory is watched, and once a
 * second (livenessMs) the supervisor is checked, so a supervisor that died without a result settles as null.
 */
export function watchRunResult(resultPath: string, ref: { supervisorPid: number; token: string }, livenessMs = 1000): Promise<RunResult | null> {
  return new Promise((resolve) => {
    let watcher: FSWatcher | null = null;
    let settled = false;
    const settle = (result: RunResult | null): void => {
      if (settled) return;
      settled = true;
      watcher?.close();
      clearInterval(timer);
      resolve(result);
    };
    const check = (): void => {
      const result = resultOrNull(resultPath);
      if (result) settle(result);
    };
    const timer = setInterval(() => {
      check();
      if (!settled && !isSupervisorAlive(ref.supervisorPid, ref.token)) settle(resultOrNull(resultPath));
    }, livenessMs);
    try {
      watcher = watch(dirname(resultPath), (_event, name) => {
        if (name === null || name === basename(resultPath)) check();
      });
      watcher.on('error', () => {}); // the directory went away: the liveness check still settles it
    } catch {
      // no directory to watch: the liveness check alone
    }
    // After the watcher is in place, so a result written in between is not missed.
    check();
  });
}

function resultOrNull(resultPath: string): RunResult | null {
  try {
    return readRunResult(resultPath);
  } catch {
    return null; // unreadable or not a result: nothing the supervisor wrote
  }
}
