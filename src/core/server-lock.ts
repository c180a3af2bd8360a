// One ratchet server drives a repo at a time; a second one (another agent window) may only read.
import { openSync, writeSync, closeSync, readFileSync, rmSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

export interface LockHolder {
  pid: number;
  since: string;
}

function holderAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
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
      writeSync(fd, JSON.stringify({ pid: process.pid, since: new Date().toISOString() }));
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
      if (holder && holder.pid !== process.pid && holderAlive(holder.pid)) return holder;
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
