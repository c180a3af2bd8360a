// Writes git's index (format version 2) for a tree, as `git read-tree <tree>` does, without starting git.
import { closeSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { RatchetError } from '../errors.js';
import type { TreeEntry } from './run.js';

const MODES: Record<string, number> = { '100644': 0o100644, '100755': 0o100755, '120000': 0o120000, '160000': 0o160000 };

/**
 * The index bytes for `entries` (every path of a tree, recursively): stat data left zero, as
 * read-tree leaves it, so git compares each file's content once on the next `git status` and
 * refreshes the stat data itself. No extensions: they are optional caches git rebuilds.
 */
export function encodeIndex(entries: Iterable<[string, TreeEntry]>, format: 'sha1' | 'sha256'): Buffer {
  const hashBytes = format === 'sha256' ? 32 : 20;
  const sorted = [...entries].map(([path, e]) => ({ name: Buffer.from(path, 'utf8'), e })).sort((a, b) => Buffer.compare(a.name, b.name));
  const parts: Buffer[] = [];
  const header = Buffer.alloc(12);
  header.write('DIRC', 0, 'latin1');
  header.writeUInt32BE(2, 4);
  header.writeUInt32BE(sorted.length, 8);
  parts.push(header);
  const fixed = 40 + hashBytes + 2;
  for (const { name, e } of sorted) {
    const mode = MODES[e.mode];
    if (mode === undefined) throw new RatchetError('internal', `Cannot write an index entry of mode ${e.mode} for ${name.toString('utf8')}.`, 'Report this as a ratchet bug.');
    // At least one NUL ends the name, then padding to a multiple of 8.
    const entry = Buffer.alloc((fixed + name.length + 8) & ~7);
    entry.writeUInt32BE(mode, 24);
    Buffer.from(e.oid, 'hex').copy(entry, 40);
    entry.writeUInt16BE(Math.min(name.length, 0xfff), 40 + hashBytes);
    name.copy(entry, fixed);
    parts.push(entry);
  }
  const body = Buffer.concat(parts);
  return Buffer.concat([body, createHash(format).update(body).digest()]);
}

/** Replaces the index at `indexFile` under git's own lock file, so a git command running meanwhile fails rather than mixes. */
export function writeIndexFile(indexFile: string, entries: Iterable<[string, TreeEntry]>, format: 'sha1' | 'sha256'): void {
  const lock = `${indexFile}.lock`;
  let fd: number;
  try {
    fd = openSync(lock, 'wx', 0o644);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    throw new RatchetError(
      'git_state',
      `Cannot update git's index: ${lock} exists, so another git command is running or one crashed.`,
      'Wait for the other git command to finish; if none is running, remove the lock file and call the tool again.',
    );
  }
  try {
    try {
      writeSync(fd, encodeIndex(entries, format));
    } finally {
      closeSync(fd);
    }
    renameSync(lock, indexFile);
  } catch (err) {
    rmSync(lock, { force: true });
    throw err;
  }
}
