// What a candidate changed, in files and lines, as `git diff-tree --numstat` counts them, from the blobs themselves.
import { lineChanges, looksBinary } from './line-changes.js';
import type { ObjectStore } from './objects.js';
import type { TreeEntry } from './run.js';

export interface DiffCounts {
  files: number;
  insertions: number;
  deletions: number;
}

/** Blobs over this size are diffed by git, not read into the server's memory. */
const MAX_DIFF_BLOB_BYTES = 8 * 1024 * 1024;

/**
 * The counts between two trees (path → entry, recursive). Binary files count as changed with no
 * lines, a mode change alone as a changed file. Null when a blob is too big to hold or a line diff
 * would take too long: the caller asks git.
 */
export async function countDiff(objects: ObjectStore, a: Map<string, TreeEntry>, b: Map<string, TreeEntry>): Promise<DiffCounts | null> {
  const stats = { files: 0, insertions: 0, deletions: 0 };
  for (const path of new Set([...a.keys(), ...b.keys()])) {
    const [ea, eb] = [a.get(path), b.get(path)];
    if (ea?.oid === eb?.oid && ea?.mode === eb?.mode) continue;
    stats.files++;
    if (ea?.oid === eb?.oid) continue;
    const [ca, cb] = await Promise.all([diffSide(objects, ea), diffSide(objects, eb)]);
    if (ca === null || cb === null) return null;
    if (looksBinary(ca) || looksBinary(cb)) continue;
    const lines = lineChanges(ca, cb);
    if (!lines) return null;
    stats.insertions += lines.insertions;
    stats.deletions += lines.deletions;
  }
  return stats;
}

/** `git diff-tree --numstat -z` output summed; binary files ("-") count as changed with no lines. */
export function numstatCounts(out: string): DiffCounts {
  const stats = { files: 0, insertions: 0, deletions: 0 };
  for (const entry of out.split('\0')) {
    const m = /^(\d+|-)\t(\d+|-)\t/.exec(entry);
    if (!m) continue;
    stats.files++;
    stats.insertions += m[1] === '-' ? 0 : Number(m[1]);
    stats.deletions += m[2] === '-' ? 0 : Number(m[2]);
  }
  return stats;
}

/** One side as git diffs it: a blob's bytes, a submodule as its commit line, nothing as empty; null if too big to hold. */
async function diffSide(objects: ObjectStore, e: TreeEntry | undefined): Promise<Buffer | null> {
  if (!e) return Buffer.alloc(0);
  if (e.mode === '160000') return Buffer.from(`Subproject commit ${e.oid}\n`);
  const info = await objects.info(e.oid);
  if (!info || info.size > MAX_DIFF_BLOB_BYTES) return null;
  return (await objects.contents(e.oid))?.data ?? null;
}

/** Paths that differ between two trees (path → entry); an exact rename (same content under a new path) is paired, from → path. */
export function changedPaths(a: Map<string, TreeEntry>, b: Map<string, TreeEntry>): { path: string; from?: string }[] {
  const gone = [...a].filter(([p, e]) => b.get(p)?.oid !== e.oid || b.get(p)?.mode !== e.mode).map(([p]) => p);
  const added = [...b].filter(([p, e]) => a.get(p)?.oid !== e.oid || a.get(p)?.mode !== e.mode).map(([p]) => p);
  const out: { path: string; from?: string }[] = [];
  const renamedFrom = new Set<string>();
  for (const path of added) {
    if (a.has(path)) {
      out.push({ path });
      continue;
    }
    const source = gone.find((p) => !b.has(p) && !renamedFrom.has(p) && a.get(p)!.oid === b.get(path)!.oid);
    if (source) renamedFrom.add(source);
    out.push(source ? { path, from: source } : { path });
  }
  for (const path of gone) if (!b.has(path) && !renamedFrom.has(path)) out.push({ path });
  return out.sort((x, y) => (x.path < y.path ? -1 : x.path > y.path ? 1 : 0));
}
