// One decision at a time across every server of a repo: a keep moves the shared branch and then writes the shared
// ledger, and the scheduler leases from the shared pool. Held only for that moment, and freed by the kernel if the
// holder dies, so a killed server never leaves it taken.
import { AsyncLocalStorage } from 'node:async_hooks';
import { createHash } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Server } from 'node:net';
import { RatchetError } from '../errors.js';
import { acquireFileLock, listen, self } from '../server-lock.js';

const WAIT_MS = 60_000;
const RETRY_MS = 15;

/** Within one process the lock is a queue; across processes an abstract Unix socket (a lock file elsewhere). */
const queues = new Map<string, Promise<unknown>>();
/**
 * The locks the current async call chain holds, so a decision that schedules (a keep starting a carried candidate)
 * re-enters. Each entry is cleared when its lock is released: a callback created inside (a run's end) that fires later
 * sees it cleared and takes the lock itself.
 */
const holding = new AsyncLocalStorage<{ key: string; held: boolean }[]>();

export async function withRepoLock<T>(commonDir: string, fn: () => Promise<T>): Promise<T> {
  const key = createHash('sha256').update(commonDir).digest('hex');
  const held = holding.getStore() ?? [];
  if (held.some((h) => h.key === key && h.held)) return fn();
  const before = queues.get(key) ?? Promise.resolve();
  const run = before.then(async () => {
    const release = await acquire(key, commonDir);
    const mine = { key, held: true };
    try {
      return await holding.run([...held, mine], fn);
    } finally {
      mine.held = false;
      release();
    }
  });
  queues.set(key, run.catch(() => undefined));
  return run;
}

async function acquire(key: string, commonDir: string): Promise<() => void> {
  const deadline = Date.now() + WAIT_MS;
  const me = self();
  for (;;) {
    if (process.platform === 'linux') {
      const server: Server | null = await listen(`\0ratchet-decide-${key}`, me);
      if (server) return () => server.close();
    } else {
      const file = join(commonDir, 'ratchet-decide.lock');
      if (acquireFileLock(file) === null) return () => rmSync(file, { force: true });
    }
    if (Date.now() > deadline) {
      throw new RatchetError(
        'locked',
        'Another ratchet server of this repo has held the decision lock for a minute (a keep or a scheduling step).',
        'Retry the call; if it persists, check `ratchet status` and the other servers\' logs.',
      );
    }
    await new Promise((r) => setTimeout(r, RETRY_MS));
  }
}
