// One ratchet server drives a repo at a time; a second one (another agent window) may only read.
import { openSync, writeSync, closeSync, readFileSync, rmSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

export interface LockHolder {
  pid: number;
  since: string;
  /** Kernel start time of the holder, so a pid reused after a reboot is not mistaken for it. */
  startTime?: string;
}

function startTimeOf(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

function holderAlive(holder: LockHolder): boolean {
  const started = startTimeOf(holder.pid);
  if (started === null) return false;
  return holder.startTime === undefined || holder.startTime === started;
}

/**
 * Takes the lock file, replacing one whose holder has died. Returns null when we hold it,
 * else the live holder.
 */
export function acquireServerLock(path: string): LockHolder | null {
  mkdirSync(dirname(path), { recursive: true });
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(path, 'wx');
      writeSync(fd, JSON.stringify({ pid: process.pid, since: new Date().toISOString(), startTime: startTimeOf(process.pid) ?? undefined }));
      closeSync(fd);
      return null;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      let holder: LockHolder | null = null;
      try {
        holder = JSON.parse(readFileSync(path, 'utf8')) as LockHolder;
      } catch {
        holder = null; // half-written or corrupt: treat as stale
      }
      if (holder && holder.pid !== process.pid && holderAlive(holder)) return holder;
      rmSync(path, { force: true });
    }
  }
  throw new Error(`could not take the server lock ${path}`);
}

export function releaseServerLock(path: string): void {
  try {
    const holder = JSON.parse(readFileSync(path, 'utf8')) as LockHolder;
    if (holder.pid === process.pid) rmSync(path, { force: true });
  } catch {
    // already gone
  }
}
