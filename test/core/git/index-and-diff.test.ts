// Two things ratchet now does without starting git, checked against git itself: the index a keep leaves
// (what `git read-tree` writes) and the line counts of a candidate's diff (what `git diff-tree --numstat` prints).
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Git } from '../../../src/core/git.js';
import { lineChanges } from '../../../src/core/git/line-changes.js';

let repo: string;
let g: Git;
const git = (...args: string[]) => execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@t', ...args], { cwd: repo, stdio: ['pipe', 'pipe', 'pipe'] }).toString();
const write = (path: string, content: string | Buffer) => {
  mkdirSync(dirname(join(repo, path)), { recursive: true });
  writeFileSync(join(repo, path), content);
};
const commitAll = (message: string) => {
  git('add', '-A');
  git('commit', '-q', '--allow-empty', '-m', message);
  return git('rev-parse', 'HEAD').trim();
};

beforeEach(() => {
  repo = mkdtempSync(join(tmpdir(), 'ratchet-index-'));
  git('init', '-q', '-b', 'main');
  g = new Git(repo);
});

afterEach(() => {
  g.close();
  rmSync(repo, { recursive: true, force: true });
});

describe('the index written after a keep', () => {
  it('holds exactly what git read-tree would: paths in git order, modes, ids, a submodule, odd names', async () => {
    for (const p of ['a.b', 'a-c', 'a/x', 'a/y/z', 'dir.txt', 'é/ü', 'with\nnewline', 'z']) write(p, `${p}\n`);
    write('run.sh', '#!/bin/sh\n');
    chmodSync(join(repo, 'run.sh'), 0o755);
    symlinkSync('a.b', join(repo, 'link'));
    git('add', '-A');
    git('update-index', '--add', '--cacheinfo', `160000,${'1'.repeat(40)},sub`);
    git('commit', '-q', '-m', 'tree');
    const head = git('rev-parse', 'HEAD').trim();
    git('read-tree', head);
    const byGit = git('ls-files', '-s', '-z');
    rmSync(join(repo, '.git', 'index'));
    await g.syncIndex(head);
    expect(git('ls-files', '-s', '-z')).toBe(byGit);
    expect(git('diff-index', '--cached', '--name-only', head)).toBe('');
    // Stat data is left for git to fill in, as read-tree leaves it: the tree is clean once git has looked.
    expect(git('status', '--porcelain', '--untracked-files=no', '--ignore-submodules')).toBe('');
    git('fsck', '--no-dangling', '--no-progress');
    expect(existsSync(join(repo, '.git', 'index.lock'))).toBe(false);
  });

  it('refuses, changing nothing, while another git command holds the index lock', async () => {
    write('f', 'one\n');
    const first = commitAll('one');
    write('f', 'two\n');
    const second = commitAll('two');
    git('read-tree', first);
    const before = readFileSync(join(repo, '.git', 'index'));
    writeFileSync(join(repo, '.git', 'index.lock'), '');
    await expect(g.syncIndex(second)).rejects.toThrow(/index\.lock exists/);
    expect(readFileSync(join(repo, '.git', 'index'))).toEqual(before);
    expect(existsSync(join(repo, '.git', 'index.lock'))).toBe(true); // not ours to remove
  });
});

describe('the diff counts of a candidate', () => {
  const numstat = (from: string, to: string) => {
    let files = 0, insertions = 0, deletions = 0;
    for (const line of git('diff-tree', '-r', '--numstat', '--no-renames', from, to).split('\n').filter(Boolean)) {
      const [i, d] = line.split('\t');
      files++;
      insertions += i === '-' ? 0 : Number(i);
      deletions += d === '-' ? 0 : Number(d);
    }
    return { files, insertions, deletions };
  };

  it('match git diff-tree --numstat over many random edits, added, deleted, binary, mode-only and no-newline files', async () => {
    let seed = 7;
    const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
    const lines = (count: number) => Array.from({ length: count }, () => `line ${rand(12)}`);
    const files = new Map<string, string[]>();
    for (let f = 0; f < 6; f++) files.set(`src/f${f}.py`, lines(20 + rand(80)));
    const render = () => {
      for (const [path, content] of files) write(path, `${content.join('\n')}\n`);
    };
    render();
    write('bin.dat', Buffer.from([1, 0, 2, 3]));
    write('gone.txt', 'bye\n');
    write('mode.sh', 'echo\n');
    write('tail.txt', 'no newline');
    let previous = commitAll('base');
    for (let round = 0; round < 12; round++) {
      for (const content of files.values()) {
        for (let e = rand(6); e > 0; e--) {
          const at = rand(content.length + 1);
          const op = rand(3);
          if (op === 0) content.splice(at, 0, ...lines(1 + rand(4)));
          else if (op === 1) content.splice(at, 1 + rand(3));
          else content.splice(at, 1, ...lines(1 + rand(2)));
        }
      }
      render();
      if (round === 0) {
        write('bin.dat', Buffer.from([1, 0, 9]));
        rmSync(join(repo, 'gone.txt'));
        write('new/added.txt', 'a\nb\nc\n');
        chmodSync(join(repo, 'mode.sh'), 0o755);
        write('tail.txt', 'no newline\n');
      }
      const next = commitAll(`round ${round}`);
      expect(await g.diffStats(previous, next), `round ${round}`).toEqual(numstat(previous, next));
      previous = next;
    }
  });

  it('counts a minimal diff, and gives up (for git to count) past its step limit', () => {
    const text = (xs: (string | number)[]) => Buffer.from(xs.map((x) => `${x}\n`).join(''));
    expect(lineChanges(text(['a', 'b', 'c', 'd']), text(['a', 'x', 'c', 'd', 'e']))).toEqual({ insertions: 2, deletions: 1 });
    expect(lineChanges(Buffer.from('last'), Buffer.from('last\n'))).toEqual({ insertions: 1, deletions: 1 });
    expect(lineChanges(Buffer.alloc(0), text([1, 2]))).toEqual({ insertions: 2, deletions: 0 });
    // A full rewrite costs nothing: no line is shared. Shuffled shared lines are the expensive case.
    const before = text(Array.from({ length: 3000 }, (_, i) => i));
    expect(lineChanges(before, text(Array.from({ length: 3000 }, (_, i) => -i - 1)), 10)).toEqual({ insertions: 3000, deletions: 3000 });
    const shuffled = text(Array.from({ length: 300 }, (_, i) => 299 - i));
    const ordered = text(Array.from({ length: 300 }, (_, i) => i));
    expect(lineChanges(ordered, shuffled, 1000)).toBeNull();
    expect(lineChanges(ordered, shuffled)).toEqual({ insertions: 299, deletions: 299 });
  });
});
