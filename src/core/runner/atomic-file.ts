// Atomic JSON files: readers see the old file or the whole new one, never a torn write.
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';

/** durable (default): fsync before the rename, for records that must survive a machine crash. */
export function writeJsonAtomic(path: string, value: unknown, opts: { durable?: boolean } = {}): void {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    const fd = openSync(tmp, 'w', 0o644);
    try {
      writeSync(fd, `${JSON.stringify(value, null, 2)}\n`);
      // The result must survive a machine crash that follows the rename.
      if (opts.durable !== false) fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}
