// Carrying a candidate's change onto a newer best: a three-way merge per file, in-process but for git merge-file.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Git, TreeEntry } from './git.js';
import { runGit } from './git/run.js';

export type Rebased = { ok: true; commit: string; merged: string[] } | { ok: false; conflicts: string[] };

const same = (a: TreeEntry | undefined, b: TreeEntry | undefined) => (a === undefined ? b === undefined : b !== undefined && a.oid === b.oid && a.mode === b.mode);

/**
 * The candidate's change (parent → candidate) applied on `best`, committed with `best` as its parent. A path only one
 * side changed takes that side; a regular file both changed is merged line by line (git merge-file, which runs no
 * merge driver or attribute); anything else both changed (a deletion against an edit, a mode change, a binary file)
 * is a conflict. Nothing is written to any ref or to the working tree.
 */
export async function rebaseCandidate(git: Git, input: { parent: string; candidate: string; best: string; message: string }): Promise<Rebased> {
  const [base, theirs, ours] = await Promise.all([git.lsTree(input.parent), git.lsTree(input.candidate), git.lsTree(input.best)]);
  const set = new Map<string, TreeEntry>();
  const removed: string[] = [];
  const conflicts: string[] = [];
  const merged: string[] = [];
  for (const path of new Set([...base.keys(), ...theirs.keys()])) {
    const b = base.get(path);
    const t = theirs.get(path);
    const o = ours.get(path);
    if (same(b, t) || same(o, t)) continue; // the candidate did not change it, or the best already has its version
    if (same(o, b)) {
      if (t) set.set(path, t);
      else removed.push(path);
      continue;
    }
    const lines = b && t && o && b.mode === t.mode && t.mode === o.mode && t.mode.startsWith('100') ? await mergeLines(git, b.oid, o.oid, t.oid) : null;
    if (!lines) {
      conflicts.push(path);
      continue;
    }
    set.set(path, { mode: t!.mode, oid: await git.objects.write('blob', lines) });
    merged.push(path);
  }
  if (conflicts.length) return { ok: false, conflicts: conflicts.sort() };
  const tree = await git.buildTree(input.best, set, removed);
  return { ok: true, commit: await git.commitTree(tree, [input.best], input.message), merged: merged.sort() };
}

/** git merge-file on three blobs: the merged text, or null on any conflict or a binary file. */
async function mergeLines(git: Git, base: string, ours: string, theirs: string): Promise<Buffer | null> {
  const dir = mkdtempSync(join(tmpdir(), 'ratchet-merge-'));
  try {
    const files = await Promise.all(
      [ours, base, theirs].map(async (oid, i) => {
        const blob = await git.objects.contents(oid);
        const file = join(dir, String(i));
        writeFileSync(file, blob?.data ?? Buffer.alloc(0));
        return file;
      }),
    );
    // Exit status: 0 merged cleanly, the number of conflicts otherwise, negative (255 as seen here) on an error.
    const r = await runGit(dir, ['merge-file', '-p', '-q', ...files], { allowFail: true });
    return r.code === 0 ? r.stdout : null;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
