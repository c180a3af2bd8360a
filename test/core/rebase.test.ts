// Carrying a stale candidate onto the new best, in real git repos: clean line merges, conflicts, and no merge driver run.
import { describe, it, expect, afterEach } from 'vitest';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Git } from '../../src/core/git.js';
import { rebaseCandidate } from '../../src/core/rebase.js';
import { makeRepo, type TestRepo } from '../helpers/repo.js';

let repo: TestRepo;
let git: Git;
afterEach(() => {
  git?.close();
  repo?.cleanup();
});

const LINES = Array.from({ length: 20 }, (_, i) => `line ${i + 1}`);
const text = (edit: (lines: string[]) => void) => {
  const lines = [...LINES];
  edit(lines);
  return `${lines.join('\n')}\n`;
};

/** parent → best (one commit) and parent → candidate (another), both on parent. */
function fork(best: Record<string, string | null>, candidate: Record<string, string | null>) {
  repo = makeRepo({ 'train.py': text(() => {}), 'data.bin': '\0\x01\x02binary\n', 'notes.md': 'notes\n' });
  git = new Git(repo.dir);
  const parent = repo.git('rev-parse', 'HEAD');
  const commit = (files: Record<string, string | null>, message: string) => {
    repo.git('checkout', '-q', parent);
    for (const [path, content] of Object.entries(files)) {
      if (content === null) repo.git('rm', '-q', path);
      else repo.write(path, content);
    }
    return repo.commitAll(message);
  };
  return { parent, best: commit(best, 'best'), candidate: commit(candidate, 'candidate') };
}

describe('rebaseCandidate', () => {
  it('merges edits to different lines of one file, parents the result on the best, and takes files only the candidate touched', async () => {
    const c = fork({ 'train.py': text((l) => (l[0] = 'line 1 (best)')) }, { 'train.py': text((l) => (l[15] = 'line 16 (candidate)')), 'extra.py': 'new\n' });
    const r = await rebaseCandidate(git, { ...c, message: 'rebased' });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.merged).toEqual(['train.py']);
    expect(repo.git('rev-parse', `${r.commit}^`)).toBe(c.best);
    const merged = repo.git('show', `${r.commit}:train.py`);
    expect(merged).toContain('line 1 (best)');
    expect(merged).toContain('line 16 (candidate)');
    expect(repo.git('show', `${r.commit}:extra.py`)).toBe('new');
    // Only the candidate's change is carried: the diff from the best is exactly it.
    expect(repo.git('diff', '--name-only', c.best, r.commit).split('\n').sort()).toEqual(['extra.py', 'train.py']);
  });

  it('reports a conflict when both changed the same lines, or one deleted what the other edited, or a binary both changed', async () => {
    const same = fork({ 'train.py': text((l) => (l[4] = 'best five')) }, { 'train.py': text((l) => (l[4] = 'candidate five')) });
    expect(await rebaseCandidate(git, { ...same, message: 'x' })).toEqual({ ok: false, conflicts: ['train.py'] });
    git.close();
    repo.cleanup();
    const deleted = fork({ 'notes.md': null, 'data.bin': '\0best\n' }, { 'notes.md': 'edited notes\n', 'data.bin': '\0candidate\n' });
    expect(await rebaseCandidate(git, { ...deleted, message: 'x' })).toEqual({ ok: false, conflicts: ['data.bin', 'notes.md'] });
  });

  it('is a no-op merge when the best already holds the same change', async () => {
    const edit = { 'train.py': text((l) => (l[2] = 'same edit')) };
    const c = fork(edit, edit);
    const r = await rebaseCandidate(git, { ...c, message: 'x' });
    expect(r.ok && repo.git('rev-parse', `${r.commit}^{tree}`)).toBe(repo.git('rev-parse', `${c.best}^{tree}`));
  });

  it('runs no merge driver the repo declares (.gitattributes and .git/config)', async () => {
    const marker = join('MARKER');
    const c = fork({ 'train.py': text((l) => (l[0] = 'best')) }, { 'train.py': text((l) => (l[19] = 'candidate')) });
    repo.write('.gitattributes', '* merge=evil\n');
    repo.git('config', 'merge.evil.driver', `touch ${join(repo.dir, marker)}; false`);
    const r = await rebaseCandidate(git, { ...c, message: 'x' });
    expect(r.ok).toBe(true);
    expect(existsSync(join(repo.dir, marker))).toBe(false);
  });
});
