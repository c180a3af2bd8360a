// Reading a directory tree ourselves: ignore files play no part, and ratchet's and git's own folders are never entered.
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { PathMatcher } from './globs.js';

/** ratchet's own state and git's; never part of a commit ratchet builds from a working tree. */
export function isInternal(path: string): boolean {
  return ['.git', '.ratchet'].some((dir) => path === dir || path.startsWith(`${dir}/`));
}
export interface Walked {
  /** Files and symlinks taken, sorted. */
  files: string[];
  /** Directories with their own .git (file or directory) that the walk reached. */
  nested: string[];
  /** Entries whose name is not valid UTF-8: no string path can name them. */
  unreadable: string[];
}

/**
 * Reads directories from the repo root, entering only those `enter` allows; ignore files play no
 * part. Symlinked directories are not followed, and `.git` and `.ratchet` at the top are skipped.
 */
export async function walk(repo: string, opts: { enter: PathMatcher; take: PathMatcher; intoNested: boolean }): Promise<Walked> {
  const out: Walked = { files: [], nested: [], unreadable: [] };
  const visit = async (rel: string): Promise<void> => {
    const entries = await readdir(rel ? join(repo, rel) : repo, { withFileTypes: true, encoding: 'buffer' }).catch(() => []);
    const names = entries.map((e) => e.name.toString('utf8'));
    if (rel && names.includes('.git')) {
      out.nested.push(rel);
      if (!opts.intoNested) return;
    }
    const subdirs: string[] = [];
    entries.forEach((entry, i) => {
      const name = names[i]!;
      const path = rel ? `${rel}/${name}` : name;
      if (name === '.git' || isInternal(path)) return;
      const isDir = entry.isDirectory();
      if (!isDir && !entry.isFile() && !entry.isSymbolicLink()) return;
      if (!(isDir ? opts.enter(path) : opts.take(path))) return;
      if (!Buffer.from(name, 'utf8').equals(entry.name)) out.unreadable.push(path);
      else if (isDir) subdirs.push(path);
      else out.files.push(path);
    });
    await Promise.all(subdirs.map(visit));
  };
  await visit('');
  for (const list of Object.values(out)) list.sort();
  return out;
}
