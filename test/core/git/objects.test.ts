// Objects ratchet writes itself must be exactly what git would write: same ids, git's tree order, and a clean fsck.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Git } from '../../../src/core/git.js';

let repo: string;
let g: Git;
const git = (...args: string[]) => execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@t', ...args], { cwd: repo, stdio: ['pipe', 'pipe', 'pipe'] }).toString().trim();
const write = (path: string, content: string) => {
  mkdirSync(dirname(join(repo, path)), { recursive: true });
  writeFileSync(join(repo, path), content);
};

beforeEach(() => {
  repo = mkdtempSync(join(tmpdir(), 'ratchet-objects-'));
  git('init', '-q', '-b', 'main');
  write('a', 'file a\n');
  git('add', '-A');
  git('commit', '-q', '-m', 'init');
  g = new Git(repo);
});

afterEach(() => {
  g.close();
  rmSync(repo, { recursive: true, force: true });
});

describe('objects written by ratchet', () => {
  it('give the same ids as git for blobs, and trees in git\'s order for names that sort differently as directories', async () => {
    // "a.b" sorts before "a/" but after "a" as a file name: the classic tree-order trap.
    for (const p of ['a.b', 'a-c', 'dir/x', 'dir.txt', 'dir0/y', 'z']) write(p, `${p}\n`);
    write('run.sh', '#!/bin/sh\n');
    chmodSync(join(repo, 'run.sh'), 0o755);
    symlinkSync('a.b', join(repo, 'link'));
    const paths = ['a.b', 'a-c', 'dir/x', 'dir.txt', 'dir0/y', 'z', 'run.sh', 'link'];
    const entries = await g.hashFiles(paths);
    for (const p of ['a.b', 'dir/x', 'run.sh']) expect(entries.get(p)!.oid).toBe(git('hash-object', '--no-filters', p));
    expect(entries.get('run.sh')!.mode).toBe('100755');
    expect(entries.get('link')!.mode).toBe('120000');
    const tree = await g.buildTree('HEAD', entries);
    // The same files through git's own index must give the same tree id.
    git('add', '-A');
    expect(tree).toBe(git('write-tree'));
    const commit = await g.commitTree(tree, [git('rev-parse', 'HEAD')], 'built by ratchet');
    git('update-ref', 'refs/heads/check', commit);
    git('fsck', '--strict', '--no-dangling');
    expect(git('log', '-1', '--format=%s%n%P', 'check')).toBe(`built by ratchet\n${git('rev-parse', 'HEAD')}`);
  });

  it('removes paths and empties directories away, as the index does', async () => {
    write('dir/only', 'x\n');
    git('add', '-A');
    git('commit', '-q', '-m', 'dir');
    const tree = await g.buildTree('HEAD', new Map(), ['dir/only']);
    expect(execFileSync('git', ['ls-tree', '-r', '--name-only', tree], { cwd: repo }).toString().trim().split('\n')).toEqual(['a']);
  });

  it('reads refs, trees and blobs through one long-lived reader that sees objects and refs written after it started', async () => {
    const before = await g.resolve('HEAD');
    write('b', 'b\n');
    git('add', '-A');
    git('commit', '-q', '-m', 'second');
    expect(await g.resolve('HEAD')).not.toBe(before);
    expect(await g.resolve('HEAD')).toBe(git('rev-parse', 'HEAD'));
    expect((await g.readBlob('HEAD', 'b'))?.toString()).toBe('b\n');
    expect(await g.resolve('refs/heads/nope')).toBeNull();
    expect(await g.readBlob('HEAD', 'nope')).toBeNull();
    expect([...(await g.lsTree('HEAD')).keys()]).toEqual(['a', 'b']);
  });

  it('moves refs through one long-lived update-ref, refusing a compare-and-swap that does not hold and recovering after it', async () => {
    const head = git('rev-parse', 'HEAD');
    await g.setRef('refs/ratchet/t/1', head);
    await expect(g.setRef('refs/ratchet/t/1', head, '1'.repeat(40))).rejects.toMatchObject({ code: 'git_state' });
    await g.setRef('refs/ratchet/t/2', head, null);
    await expect(g.setRef('refs/ratchet/t/2', head, null)).rejects.toMatchObject({ code: 'git_state' });
    expect(await g.listRefs('refs/ratchet/t/')).toEqual(['refs/ratchet/t/1', 'refs/ratchet/t/2']);
    git('pack-refs', '--all');
    await g.setRef('refs/ratchet/t/3', head);
    expect(await g.listRefs('refs/ratchet/t/')).toEqual(['refs/ratchet/t/1', 'refs/ratchet/t/2', 'refs/ratchet/t/3']);
    git('update-ref', '-d', 'refs/ratchet/t/1');
    expect(await g.listRefs('refs/ratchet/t/')).toEqual(['refs/ratchet/t/2', 'refs/ratchet/t/3']);
  });
});
