// The hardened git runner and the Git plumbing, against real repos, including repos rigged to run code inside git.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { deflateSync } from 'node:zlib';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Git, quotePath, runGit } from '../../src/core/git.js';
import { commitCandidate, pinProtected, resetSurface, scanSurface, verifyPins } from '../../src/core/surface.js';

let root: string;
let repo: string;

function git(...args: string[]): string {
  const env = { ...process.env };
  for (const key of Object.keys(env)) if (key.startsWith('GIT_')) delete env[key];
  return execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@t', ...args], { cwd: repo, env, stdio: ['ignore', 'pipe', 'pipe'] }).toString().trim();
}

function write(path: string, content: string | Buffer, mode?: number): void {
  const abs = join(repo, path);
  mkdirSync(dirname(abs), { recursive: true });
  writeFileSync(abs, content);
  if (mode !== undefined) chmodSync(abs, mode);
}

/** Every file under `dir` (no .git): bytes or link target, and the executable bit. */
function treeOnDisk(dir: string, prefix = ''): Record<string, string> {
  const out: Record<string, string> = {};
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
    const abs = join(dir, entry.name);
    if (rel === '.git' || rel === '.ratchet') continue;
    if (entry.isSymbolicLink()) out[rel] = `link:${readlinkSync(abs)}`;
    else if (entry.isDirectory()) Object.assign(out, treeOnDisk(abs, rel));
    else out[rel] = `${statSync(abs).mode & 0o111 ? 'x' : '-'}:${readFileSync(abs).toString('base64')}`;
  }
  return out;
}

/** The same view of a commit, read with plain git. */
function treeInGit(commit: string): Record<string, string> {
  const out: Record<string, string> = {};
  const listing = execFileSync('git', ['ls-tree', '-r', '-z', commit], { cwd: repo }).toString();
  for (const record of listing.split('\0').filter(Boolean)) {
    const [meta, path] = [record.slice(0, record.indexOf('\t')), record.slice(record.indexOf('\t') + 1)];
    const [mode, , oid] = meta.split(' ');
    const bytes = execFileSync('git', ['cat-file', 'blob', oid!], { cwd: repo });
    out[path] = mode === '120000' ? `link:${bytes.toString()}` : `${mode === '100755' ? 'x' : '-'}:${bytes.toString('base64')}`;
  }
  return out;
}

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'ratchet-git-'));
  repo = join(root, 'repo');
  mkdirSync(repo);
  git('init', '-q', '-b', 'main');
  write('train.py', 'print("train")\n');
  write('README.md', '# readme\n');
  write('model/a.py', 'A = 1\n');
  write('run.sh', '#!/bin/sh\necho run\n', 0o755);
  symlinkSync('a.py', join(repo, 'model', 'alias.py'));
  write('.gitignore', '*.log\n');
  git('add', '-A');
  git('commit', '-q', '-m', 'baseline');
});

afterEach(() => {
  rmSync(root, { recursive: true, force: true });
});

describe('runGit', () => {
  it('ignores an inherited GIT_DIR, GIT_WORK_TREE and GIT_INDEX_FILE that point elsewhere', async () => {
    const other = join(root, 'other');
    mkdirSync(other);
    execFileSync('git', ['init', '-q'], { cwd: other });
    const saved = { ...process.env };
    Object.assign(process.env, { GIT_DIR: join(other, '.git'), GIT_WORK_TREE: other, GIT_INDEX_FILE: join(other, 'idx') });
    try {
      expect(await new Git(repo).head()).toBe(git('rev-parse', 'HEAD'));
    } finally {
      for (const key of ['GIT_DIR', 'GIT_WORK_TREE', 'GIT_INDEX_FILE']) if (saved[key] === undefined) delete process.env[key];
    }
  });

  it('throws a git_state error that names the command, or returns the exit code when asked', async () => {
    await expect(runGit(repo, ['rev-parse', '--verify', 'no-such-ref'])).rejects.toMatchObject({ code: 'git_state', message: expect.stringContaining('git rev-parse failed') });
    expect((await runGit(repo, ['rev-parse', '--verify', '-q', 'no-such-ref'], { allowFail: true })).code).not.toBe(0);
  });

  it('C-quotes only paths that a line-based input would break', () => {
    expect(quotePath('plain/ü.py')).toBe('plain/ü.py');
    expect(quotePath('a\nb')).toBe('"a\\012b"');
    expect(quotePath('"q\\')).toBe('"\\"q\\\\"');
  });
});

describe('Git', () => {
  it('hashes files exactly as on disk, names with newlines, quotes and tabs included', async () => {
    const names = ['model/new\nline.py', 'model/"quoted".py', 'model/tab\there.py', 'model/back\\slash.py'];
    for (const n of names) write(n, `content of ${n}`);
    const entries = await new Git(repo).hashFiles([...names, 'model/alias.py', 'run.sh', 'missing.py']);
    for (const n of names) expect(entries.get(n)?.oid).toBe(execFileSync('git', ['hash-object', '--stdin'], { cwd: repo, input: `content of ${n}` }).toString().trim());
    expect(entries.get('model/alias.py')).toEqual({ mode: '120000', oid: execFileSync('git', ['hash-object', '--stdin'], { cwd: repo, input: 'a.py' }).toString().trim() });
    expect(entries.get('run.sh')?.mode).toBe('100755');
    expect(entries.has('missing.py')).toBe(false);
  });

  it('creates the session branch without touching files or the index, and refuses an existing one', async () => {
    const g = new Git(repo);
    write('train.py', 'edited\n');
    const index = readFileSync(join(repo, '.git', 'index'));
    await g.createBranch('ratchet/t1');
    expect(await g.currentBranch()).toBe('ratchet/t1');
    expect(git('rev-parse', 'ratchet/t1')).toBe(git('rev-parse', 'main'));
    expect(readFileSync(join(repo, 'train.py'), 'utf8')).toBe('edited\n');
    expect(readFileSync(join(repo, '.git', 'index')).equals(index)).toBe(true);
    await expect(g.createBranch('ratchet/t1')).rejects.toMatchObject({ code: 'git_state' });
  });

  it('creates a branch at another commit and syncs the index to it', async () => {
    const g = new Git(repo);
    const base = await g.head();
    write('train.py', 'baseline edit\n');
    const { commit } = await g.commitFiles({ parent: base, files: ['train.py'], removed: [], message: 'baseline' });
    await g.createBranch('ratchet/t2', commit);
    expect(await g.head()).toBe(commit);
    expect(await g.currentBranch()).toBe('ratchet/t2');
    expect(git('status', '--porcelain')).toBe('');
    await expect(g.createBranch('ratchet/t3', 'no-such-commit')).rejects.toMatchObject({ code: 'git_state' });
  });

  it('lists the first-parent chain from a tip back to the base, newest first', async () => {
    const g = new Git(repo);
    const base = await g.head();
    const commits = [base];
    for (const n of [1, 2, 3]) {
      write('train.py', `v${n}\n`);
      const { commit } = await g.commitFiles({ parent: commits[commits.length - 1]!, files: ['train.py'], removed: [], message: `v${n}` });
      commits.push(commit);
    }
    expect(await g.firstParentChain(commits[3]!, base)).toEqual([...commits].reverse());
    expect(await g.firstParentChain(commits[3]!, 'main')).toEqual([...commits].reverse());
    expect(await g.firstParentChain(commits[3]!, commits[3]!)).toEqual([commits[3]]);
  });

  it('moves a branch only from the expected commit, and syncs the index to it', async () => {
    const g = new Git(repo);
    const base = await g.head();
    write('train.py', 'better\n');
    const { commit } = await g.commitFiles({ parent: base, files: ['train.py'], removed: [], message: 'better' });
    await expect(g.advanceBranch('main', commit, commit)).rejects.toMatchObject({ code: 'git_state' });
    expect(await g.head()).toBe(base);
    await g.advanceBranch('main', commit, base);
    expect(await g.head()).toBe(commit);
    await g.settled(); // the index follows in the background
    expect(git('diff', '--cached', '--name-only')).toBe('');
    expect(git('status', '--porcelain')).toBe('');
  });

  it('commits files from disk with their modes, and blobs as a root commit', async () => {
    const g = new Git(repo);
    const base = await g.head();
    write('model/b.py', 'B\n', 0o755);
    symlinkSync('b.py', join(repo, 'model', 'blink.py'));
    const { commit, tree } = await g.commitFiles({ parent: base, files: ['model/b.py', 'model/blink.py'], removed: ['README.md'], message: 'files' });
    expect(await g.treeOf(commit)).toBe(tree);
    const entries = await g.lsTree(commit);
    expect(entries.get('model/b.py')?.mode).toBe('100755');
    expect(entries.get('model/blink.py')?.mode).toBe('120000');
    expect(entries.has('README.md')).toBe(false);
    expect(entries.has('train.py')).toBe(true);
    await expect(g.commitFiles({ parent: base, files: ['nope.py'], removed: [], message: 'x' })).rejects.toMatchObject({ code: 'git_state' });

    const pinned = await g.commitBlobs({ files: { 'ratchet.json': '{"a":1}\n', 'pins.json': '[]' }, message: 'session config' });
    expect([...(await g.lsTree(pinned)).keys()]).toEqual(['pins.json', 'ratchet.json']);
    expect(git('rev-list', '--parents', '-n', '1', pinned)).toBe(pinned);
    expect((await g.readBlob(pinned, 'ratchet.json'))?.toString()).toBe('{"a":1}\n');
    expect(await g.readBlob(pinned, 'missing.json')).toBeNull();
    const next = await g.commitBlobs({ files: { 'ratchet.json': '{"a":2}\n' }, message: 'next', parent: pinned });
    expect(git('rev-parse', `${next}^`)).toBe(pinned);
  });

  it('resolves many refs in one call, null for the missing ones', async () => {
    const g = new Git(repo);
    await g.setRef('refs/ratchet/t/1', await g.head());
    const refs = await g.resolveRefs(['refs/heads/main', 'refs/ratchet/t/1', 'refs/ratchet/t/2', 'HEAD']);
    expect(refs.get('refs/heads/main')).toBe(git('rev-parse', 'HEAD'));
    expect(refs.get('refs/ratchet/t/1')).toBe(git('rev-parse', 'HEAD'));
    expect(refs.get('refs/ratchet/t/2')).toBeNull();
    expect(refs.get('HEAD')).toBe(git('rev-parse', 'HEAD'));
    expect(await g.listRefs('refs/ratchet/')).toEqual(['refs/ratchet/t/1']);
  });

  it('snapshots tracked and untracked-not-ignored files, leaving ignored ones out', async () => {
    const g = new Git(repo);
    write('train.py', 'changed\n');
    write('new.py', 'new\n');
    write('run.log', 'ignored\n');
    unlinkSync(join(repo, 'README.md'));
    const snap = await g.snapshot(await g.head(), 'snapshot');
    const entries = await g.lsTree(snap.commit);
    expect((await g.readBlob(snap.commit, 'train.py'))?.toString()).toBe('changed\n');
    expect(entries.has('new.py')).toBe(true);
    expect(entries.has('run.log')).toBe(false);
    expect(entries.has('README.md')).toBe(false);
    expect(await g.changedBetween('HEAD', snap.commit)).toEqual([{ path: 'README.md' }, { path: 'new.py' }, { path: 'train.py' }]);
    expect(await g.diffStats('HEAD', snap.commit)).toEqual({ files: 3, insertions: 2, deletions: 2 });
  });

  it('resets the editable surface to a commit, hidden and ignored files included, and leaves the rest alone', async () => {
    const g = new Git(repo);
    const base = await g.head();
    write('model/a.py', 'A = 2\n');
    write('model/hidden.py', 'hidden by info/exclude\n');
    write('model/deep/er.log', 'ignored by .gitignore\n');
    writeFileSync(join(repo, '.git', 'info', 'exclude'), 'model/hidden.py\n');
    unlinkSync(join(repo, 'model', 'alias.py'));
    write('model/alias.py', 'now a file\n');
    write('README.md', 'outside the surface\n');
    mkdirSync(join(repo, 'model', 'out'));
    write('model/out/ckpt.bin', 'declared output');
    const removed = await resetSurface({ git: g, commit: base, editable: ['model/**'], protectedGlobs: [], outputs: ['model/out/**'] });
    expect(removed).toEqual(['model/deep/er.log', 'model/hidden.py']);
    expect(readFileSync(join(repo, 'model', 'a.py'), 'utf8')).toBe('A = 1\n');
    expect(readlinkSync(join(repo, 'model', 'alias.py'))).toBe('a.py');
    expect(existsSync(join(repo, 'model', 'deep'))).toBe(false);
    expect(readFileSync(join(repo, 'README.md'), 'utf8')).toBe('outside the surface\n');
    expect(readFileSync(join(repo, 'model', 'out', 'ckpt.bin'), 'utf8')).toBe('declared output');
  });

  it('materializes a commit byte for byte, with exec bits and symlinks, hundreds of files in one pass', async () => {
    const g = new Git(repo);
    for (let i = 0; i < 300; i++) write(`gen/d${i % 7}/f${i}.bin`, Buffer.from(Array.from({ length: i * 13 }, (_, j) => (i * j) % 256)));
    write('gen/empty', '');
    write('gen/new\nline "odd" name.py', 'odd\n');
    write('gen/tool.sh', '#!/bin/sh\n', 0o755);
    symlinkSync('../run.sh', join(repo, 'gen', 'run-link'));
    symlinkSync('/nowhere/at/all', join(repo, 'gen', 'dangling'));
    git('add', '-A');
    git('commit', '-q', '-m', 'many files');
    const head = await g.head();
    const dir = join(root, 'ws');
    await g.materializeCommit(head, dir);
    expect(treeOnDisk(dir)).toEqual(treeInGit(head));
    expect(lstatSync(join(dir, 'gen', 'run-link')).isSymbolicLink()).toBe(true);
    expect(statSync(join(dir, 'gen', 'tool.sh')).mode & 0o111).not.toBe(0);
    await expect(g.materializeCommit(head, dir)).rejects.toMatchObject({ code: 'invalid_argument' });
  });

  it('refuses to materialize a commit with a submodule, naming it', async () => {
    const g = new Git(repo);
    git('update-index', '--add', '--cacheinfo', `160000,${git('rev-parse', 'HEAD')},vendor/lib`);
    git('commit', '-q', '-m', 'gitlink');
    await expect(g.materializeCommit(await g.head(), join(root, 'ws'))).rejects.toMatchObject({ code: 'git_state', message: expect.stringContaining('vendor/lib') });
  });

  it('refuses a blob whose object file was rewritten on disk', async () => {
    const g = new Git(repo);
    const oid = git('rev-parse', 'HEAD:train.py');
    const file = join(repo, '.git', 'objects', oid.slice(0, 2), oid.slice(2));
    chmodSync(file, 0o644);
    writeFileSync(file, deflateSync(Buffer.from('blob 8\0forged!\n')));
    await expect(g.materializeCommit(await g.head(), join(root, 'ws'))).rejects.toMatchObject({ code: 'git_state', message: expect.stringContaining(oid) });
  });

  it('bundles refs so they can be restored', async () => {
    const g = new Git(repo);
    await g.setRef('refs/ratchet/t/1', await g.head());
    const file = join(root, 'evidence.bundle');
    await g.bundle(file, ['refs/ratchet/t/1', 'refs/heads/main']);
    expect(execFileSync('git', ['bundle', 'list-heads', file], { cwd: repo }).toString()).toContain('refs/ratchet/t/1');
    await expect(g.bundle(file, [])).rejects.toMatchObject({ code: 'invalid_argument' });
  });
});

describe('a repo rigged to run code inside git', () => {
  let markers: string;

  /** A script that leaves a marker named after itself, so the test sees which attack ran. */
  function plant(path: string, name: string, body = ''): string {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, `#!/bin/sh\ntouch '${join(markers, name)}'\n${body}`, { mode: 0o755 });
    return path;
  }

  function rig(kind: 'hooks' | 'hooksPath'): void {
    markers = join(root, 'markers');
    mkdirSync(markers, { recursive: true });
    // Committed before the filter exists, so the baseline holds the real bytes.
    write('.gitattributes', '* filter=x diff=x\n');
    git('add', '.gitattributes');
    git('commit', '-q', '-m', 'attributes');
    const hooks = ['reference-transaction', 'post-checkout', 'post-index-change', 'pre-commit', 'post-commit', 'pre-auto-gc', 'post-rewrite'];
    const hookDir = kind === 'hooks' ? join(repo, '.git', 'hooks') : join(root, 'evil-hooks');
    for (const h of hooks) plant(join(hookDir, h), `hook-${h}`);
    if (kind === 'hooksPath') git('config', 'core.hooksPath', hookDir);
    git('config', 'core.fsmonitor', plant(join(root, 'bin', 'fsmonitor'), 'fsmonitor'));
    git('config', 'filter.x.clean', `${plant(join(root, 'bin', 'clean'), 'clean', 'tr a-z A-Z\n')}`);
    git('config', 'filter.x.smudge', `${plant(join(root, 'bin', 'smudge'), 'smudge', 'cat\n')}`);
    git('config', 'diff.external', plant(join(root, 'bin', 'extdiff'), 'diff-external'));
    git('config', 'diff.x.textconv', plant(join(root, 'bin', 'textconv'), 'textconv', 'cat "$1"\n'));
    git('config', 'core.pager', plant(join(root, 'bin', 'pager'), 'pager', 'cat\n'));
    writeFileSync(join(repo, '.git', 'info', 'attributes'), '* filter=x diff=x\n');
  }

  function fired(): string[] {
    return readdirSync(markers).sort();
  }

  /** Proves the rig works: plain git runs the planted code. */
  function controlFires(): void {
    write('train.py', 'print("control")\n');
    git('status', '--porcelain');
    git('add', 'train.py');
    git('-c', 'diff.external=', 'diff', '--cached', '--textconv', '--stat');
    git('commit', '-q', '-m', 'control');
    expect(fired()).toEqual(expect.arrayContaining(['clean', 'fsmonitor', 'hook-pre-commit', 'hook-post-commit', 'hook-reference-transaction']));
    git('reset', '-q', '--hard', 'HEAD~1');
    rmSync(markers, { recursive: true, force: true });
    mkdirSync(markers);
  }

  async function exerciseEverything(): Promise<void> {
    const g = new Git(repo);
    await g.assertUsable();
    await g.gitPath('info/exclude');
    await g.excludeFromGit('/.ratchet/');
    const base = await g.head();
    await g.currentBranch();
    await g.refExists('refs/heads/main');
    await g.resolve('main');
    await g.resolveRefs(['refs/heads/main', 'HEAD']);
    await g.isValidBranchName('ratchet/x');
    await g.createBranch('ratchet/x');
    write('model/a.py', 'a = "lower case bytes"\n');
    write('model/new.py', 'new = 1\n');
    write('notes.txt', 'untracked outside\n');
    const snap = await g.snapshot(base, 'snapshot');
    await g.treeOf(snap.commit);
    await g.diffStats(base, snap.commit);
    await g.changedBetween(base, snap.commit);
    await g.setRef('refs/ratchet/x/1', snap.commit);
    await g.listRefs('refs/ratchet/');
    await g.listFiles();
    await g.readBlob(snap.commit, 'model/a.py');
    rmSync(join(repo, 'notes.txt'));

    const pins = await pinProtected(repo, ['README.md']);
    const scan = await scanSurface({ repo, git: g, baseCommit: base, editable: ['model/**'], protectedGlobs: ['README.md'], outputs: [], pins });
    expect(scan.violations).toEqual([]);
    const candidate = await commitCandidate({ git: g, parent: base, scan, message: 'candidate' });
    await verifyPins(repo, pins, ['README.md']);
    // The clean filter would have upper-cased it: the commit holds the bytes on disk.
    expect((await g.readBlob(candidate.commit, 'model/a.py'))?.toString()).toBe('a = "lower case bytes"\n');
    await g.commitFiles({ parent: base, files: ['model/a.py'], removed: [], message: 'files' });
    await g.commitBlobs({ files: { 'ratchet.json': '{}' }, message: 'blobs', parent: base });
    await g.advanceBranch('ratchet/x', candidate.commit, base);
    await g.materializeCommit(candidate.commit, join(root, 'ws'));
    expect(readFileSync(join(root, 'ws', 'model', 'a.py'), 'utf8')).toBe('a = "lower case bytes"\n');
    await resetSurface({ git: g, commit: base, editable: ['model/**'], protectedGlobs: ['README.md'] });
    await g.bundle(join(root, 'b.bundle'), ['refs/ratchet/x/1']);
  }

  it('runs none of .git/hooks, core.fsmonitor, filters, diff.external, textconv or the pager', async () => {
    rig('hooks');
    controlFires();
    await exerciseEverything();
    expect(fired()).toEqual([]);
  });

  it('runs none of the hooks in a core.hooksPath directory', async () => {
    rig('hooksPath');
    controlFires();
    await exerciseEverything();
    expect(fired()).toEqual([]);
  });
});
