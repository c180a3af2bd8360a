// Edit-surface and pin checks against real git repositories in temp dirs.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, statSync, symlinkSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import {
  changedPaths,
  checkEditSurface,
  commitCandidate,
  describeViolations,
  scanSurface,
  pinProtected,
  restorePinned,
  savePinnedContent,
  verifyPins,
  type Pin,
  type Violation,
} from '../../src/core/surface.js';
import { RatchetError } from '../../src/core/errors.js';
import { Git } from '../../src/core/git.js';

const EDITABLE = ['train.py', 'model/**'];
const PROTECTED = ['prepare.py', 'data/**', 'eval/**'];

let root: string;
let repo: string;
let base: string;

/** The caller's environment minus anything that would aim git elsewhere (tests may run inside a git hook). */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = { ...process.env, ...extra };
  for (const key of Object.keys(env)) if (/^GIT_(DIR|WORK_TREE|INDEX_FILE|COMMON_DIR|OBJECT_DIRECTORY)$/.test(key)) delete env[key];
  return env;
}

async function git(...args: string[]): Promise<string> {
  const r = await execa('git', args, { cwd: repo, env: cleanEnv(), extendEnv: false, stripFinalNewline: false });
  return r.stdout;
}

/** `git status` that does not refresh the index itself, so the test can see whether the checks did. */
async function statusWithoutRefresh(): Promise<string> {
  const r = await execa('git', ['status', '--porcelain=v1', '-z', '--untracked-files=all', '--ignored'], { cwd: repo, env: cleanEnv({ GIT_OPTIONAL_LOCKS: '0' }), extendEnv: false });
  return r.stdout;
}

function write(path: string, content: string | Buffer): void {
  const abs = join(repo, path);
  mkdirSync(dirname(abs), { recursive: true });
  writeFileSync(abs, content);
}

function read(path: string): string {
  return readFileSync(join(repo, path), 'utf8');
}

async function check(opts: { editable?: string[]; protectedGlobs?: string[]; pins?: Pin[]; baseCommit?: string } = {}) {
  const protectedGlobs = opts.protectedGlobs ?? PROTECTED;
  return checkEditSurface({
    repo,
    baseCommit: opts.baseCommit ?? base,
    editable: opts.editable ?? EDITABLE,
    protectedGlobs,
    pins: opts.pins ?? (await pinProtected(repo, protectedGlobs)),
  });
}

function reasons(violations: Violation[]): Record<string, Violation['reason']> {
  return Object.fromEntries(violations.map((v) => [v.path, v.reason]));
}

/** Every file under the repo except .git, with its bytes or link target: the "working tree" for before/after comparisons. */
function treeSnapshot(dir = repo, prefix = ''): Record<string, string> {
  const out: Record<string, string> = {};
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
    const abs = join(dir, entry.name);
    if (rel === '.git') continue;
    if (entry.isSymbolicLink()) out[rel] = `link:${readlinkSync(abs)}`;
    else if (entry.isDirectory()) Object.assign(out, treeSnapshot(abs, rel));
    else out[rel] = `${statSync(abs).mode.toString(8)}:${createHash('sha256').update(readFileSync(abs)).digest('hex')}`;
  }
  return out;
}

beforeEach(async () => {
  root = mkdtempSync(join(tmpdir(), 'ratchet-surface-'));
  repo = join(root, 'repo');
  mkdirSync(repo);
  await git('init', '-q', '-b', 'main');
  await git('config', 'user.email', 'test@example.com');
  await git('config', 'user.name', 'test');
  await git('config', 'commit.gpgsign', 'false');
  write('.gitignore', 'data/\n*.log\n');
  write('ratchet.json', '{"editable":["train.py"]}\n');
  write('train.py', 'print("train")\n');
  write('prepare.py', 'def evaluate():\n    return 1.0\n');
  write('README.md', '# project\nsome text that is long enough for rename detection to work well\n');
  write('model/a.py', 'A = 1\n# padding so that rename similarity is high enough\n');
  write('eval/score.py', 'SCORE = 1\n');
  write('data/val.bin', Buffer.from([0, 1, 2, 3, 255]));
  write('data/train.bin', Buffer.alloc(4096, 7));
  await git('add', '-A');
  await git('commit', '-q', '-m', 'baseline');
  base = (await git('rev-parse', 'HEAD')).trim();
  // ratchet's state lives in .ratchet/, excluded the way the session does it.
  writeFileSync(join(repo, '.git', 'info', 'exclude'), '.ratchet/\n');
  mkdirSync(join(repo, '.ratchet'));
  writeFileSync(join(repo, '.ratchet', 'state.json'), '{}');
});

afterEach(() => {
  rmSync(root, { recursive: true, force: true });
});

describe('pinProtected', () => {
  it('pins tracked and git-ignored protected files, and ratchet.json even with no protected globs', async () => {
    const pins = await pinProtected(repo, PROTECTED);
    expect(pins.map((p) => p.path)).toEqual(['data/train.bin', 'data/val.bin', 'eval/score.py', 'prepare.py', 'ratchet.json']);
    const val = pins.find((p) => p.path === 'data/val.bin')!;
    expect(val.sha256).toBe(createHash('sha256').update(Buffer.from([0, 1, 2, 3, 255])).digest('hex'));
    expect(val.mode).toBe('file');

    expect((await pinProtected(repo, [])).map((p) => p.path)).toEqual(['ratchet.json']);
  });

  it('pins a symlink by its target string and skips .ratchet/ even when a glob would match it', async () => {
    symlinkSync('val.bin', join(repo, 'data', 'current.bin'));
    const pins = await pinProtected(repo, [...PROTECTED, '**/*.json']);
    const link = pins.find((p) => p.path === 'data/current.bin')!;
    expect(link.mode).toBe('symlink');
    expect(link.sha256).toBe(createHash('sha256').update('val.bin').digest('hex'));
    expect(pins.some((p) => p.path.startsWith('.ratchet/'))).toBe(false);
  });

  it('finds protected files with no literal base directory (whole-tree globs)', async () => {
    write('deep/er/uv.lock', 'lock\n');
    const pins = await pinProtected(repo, ['**/*.lock']);
    expect(pins.map((p) => p.path)).toEqual(['deep/er/uv.lock', 'ratchet.json']);
  });
});

describe('checkEditSurface', () => {
  it('accepts a change to an editable file', async () => {
    write('train.py', 'print("faster")\n');
    const { changed, violations } = await check();
    expect(changed).toEqual([{ path: 'train.py', status: 'modified', untracked: false }]);
    expect(violations).toEqual([]);
  });

  it('flags a change to a file outside the surface, staged or not', async () => {
    write('README.md', 'changed\n');
    expect(reasons((await check()).violations)).toEqual({ 'README.md': 'outside_surface' });
    await git('add', 'README.md');
    expect(reasons((await check()).violations)).toEqual({ 'README.md': 'outside_surface' });
  });

  it('sees a same-size edit whose stat matches the index (git\'s racy-clean case)', async () => {
    // Simulate a commit and an edit within one clock tick: same size, same mtime, and the index
    // written in that tick too. Only git's racy check (entry mtime >= index mtime) catches it,
    // and only if the scratch copy of the index keeps the original's mtime.
    await git('config', 'core.trustctime', 'false');
    write('train.py', 'v = 1\n');
    await git('add', 'train.py');
    await git('-c', 'user.name=t', '-c', 'user.email=t@t', 'commit', '-q', '-m', 'v1');
    const head = (await git('rev-parse', 'HEAD')).trim();
    const tick = statSync(join(repo, 'train.py')).mtime;
    write('train.py', 'v = 2\n');
    utimesSync(join(repo, 'train.py'), tick, tick);
    utimesSync(join(repo, '.git', 'index'), tick, tick);
    const { changed } = await check({ baseCommit: head });
    expect(changed.map((c) => c.path)).toEqual(['train.py']);
  });

  it('does not flag a file whose timestamp changed but content did not', async () => {
    const future = new Date(Date.now() + 60_000);
    utimesSync(join(repo, 'README.md'), future, future);
    expect(await check()).toEqual({ changed: [], violations: [] });
  });

  it('flags a staged new file outside the surface', async () => {
    write('helper.py', 'h = 1\n');
    await git('add', 'helper.py');
    const { changed, violations } = await check();
    expect(changed).toEqual([{ path: 'helper.py', status: 'added', untracked: false }]);
    expect(reasons(violations)).toEqual({ 'helper.py': 'outside_surface' });
  });

  it('accepts a new untracked file inside the surface and flags one outside it', async () => {
    write('model/new.py', 'B = 2\n');
    write('scratch.py', 'x = 1\n');
    const { changed, violations } = await check();
    expect(changed).toEqual([
      { path: 'model/new.py', status: 'added', untracked: true },
      { path: 'scratch.py', status: 'added', untracked: true },
    ]);
    expect(reasons(violations)).toEqual({ 'scratch.py': 'outside_surface' });
  });

  it('ignores a new git-ignored file outside the surface, and ratchet state in .ratchet/', async () => {
    write('run.log', 'loss 1.0\n');
    writeFileSync(join(repo, '.ratchet', 'ledger.sqlite'), 'x');
    const { changed, violations } = await check();
    expect(changed).toEqual([]);
    expect(violations).toEqual([]);
  });

  it('ignores .ratchet/ even when it is not excluded from git', async () => {
    writeFileSync(join(repo, '.git', 'info', 'exclude'), '');
    expect((await changedPaths(repo, base)).map((c) => c.path)).toEqual([]);
    write('scratch.txt', 'x');
    expect((await changedPaths(repo, base)).map((c) => c.path)).toEqual(['scratch.txt']);
  });

  it('accepts deleting an editable file and flags deleting a non-editable one', async () => {
    unlinkSync(join(repo, 'model', 'a.py'));
    expect((await check()).violations).toEqual([]);
    unlinkSync(join(repo, 'README.md'));
    const { changed, violations } = await check();
    expect(changed.find((c) => c.path === 'README.md')?.status).toBe('deleted');
    expect(reasons(violations)).toEqual({ 'README.md': 'outside_surface' });
  });

  it('checks both sides of a rename from editable to non-editable (git mv)', async () => {
    mkdirSync(join(repo, 'docs'));
    await git('mv', 'model/a.py', 'docs/a.py');
    const { changed, violations } = await check();
    expect(changed).toEqual([{ path: 'docs/a.py', status: 'renamed', from: 'model/a.py', untracked: false }]);
    expect(reasons(violations)).toEqual({ 'docs/a.py': 'outside_surface' });
  });

  it('checks both sides of a rename from non-editable to editable', async () => {
    await git('mv', 'README.md', 'model/README.md');
    const { violations } = await check();
    expect(reasons(violations)).toEqual({ 'README.md': 'outside_surface' });
    expect(violations[0]!.detail).toContain('model/README.md');
  });

  it('checks both sides of a plain mv that git has not seen (deletion + untracked file)', async () => {
    renameSync(join(repo, 'README.md'), join(repo, 'model', 'README.md'));
    const { changed, violations } = await check();
    // Hashing the working tree into a fresh index lets git pair the two sides as a rename.
    expect(changed).toEqual([{ path: 'model/README.md', status: 'renamed', from: 'README.md', untracked: true }]);
    expect(reasons(violations)).toEqual({ 'README.md': 'outside_surface' });
  });

  it('accepts a rename within the surface', async () => {
    await git('mv', 'model/a.py', 'model/b.py');
    expect((await check()).violations).toEqual([]);
  });

  it('flags a modified protected file even when it also matches editable', async () => {
    const pins = await pinProtected(repo, PROTECTED);
    write('prepare.py', 'def evaluate():\n    return 0.0\n');
    const { violations } = await check({ editable: ['*.py', 'model/**'], pins });
    expect(reasons(violations)).toEqual({ 'prepare.py': 'protected_changed' });
  });

  it('flags a deleted protected file, and the source side of a rename away from it', async () => {
    const pins = await pinProtected(repo, PROTECTED);
    renameSync(join(repo, 'prepare.py'), join(repo, 'train2.py'));
    const { violations } = await check({ editable: ['*.py'], pins });
    expect(reasons(violations)).toEqual({ 'prepare.py': 'protected_deleted' });
  });

  it('flags a modified git-ignored protected data file', async () => {
    const pins = await pinProtected(repo, PROTECTED);
    write('data/val.bin', Buffer.from([0, 1, 2, 3, 254]));
    const { changed, violations } = await check({ pins });
    expect(changed).toEqual([]);
    expect(reasons(violations)).toEqual({ 'data/val.bin': 'protected_changed' });
  });

  it('flags a new file under a protected glob, ignored or not', async () => {
    const pins = await pinProtected(repo, PROTECTED);
    write('data/extra.bin', 'x');
    write('eval/cheat.py', 'SCORE = 0\n');
    const { violations } = await check({ editable: ['**'], pins });
    expect(reasons(violations)).toEqual({ 'data/extra.bin': 'protected_added', 'eval/cheat.py': 'protected_added' });
  });

  it('always protects ratchet.json, even when editable covers everything', async () => {
    const pins = await pinProtected(repo, []);
    write('ratchet.json', '{"editable":["**"]}\n');
    const { violations } = await check({ editable: ['**'], protectedGlobs: [], pins });
    expect(reasons(violations)).toEqual({ 'ratchet.json': 'protected_changed' });
  });

  it('accepts a protected file that is still exactly as pinned, even if it differs from the base commit', async () => {
    // Uncommitted at session start: the pin, not the base commit, is what the file must stay equal to.
    write('prepare.py', 'def evaluate():\n    return 2.0\n');
    const pins = await pinProtected(repo, PROTECTED);
    expect((await check({ editable: ['*.py'], pins })).violations).toEqual([]);
    write('prepare.py', 'def evaluate():\n    return 3.0\n');
    expect(reasons((await check({ editable: ['*.py'], pins })).violations)).toEqual({ 'prepare.py': 'protected_changed' });
  });

  it('flags a symlink in the surface that points at a protected file', async () => {
    symlinkSync('../prepare.py', join(repo, 'model', 'eval_link.py'));
    const { violations } = await check();
    expect(reasons(violations)).toEqual({ 'model/eval_link.py': 'symlink_escapes_surface' });
    expect(violations[0]!.detail).toContain('protected file prepare.py');
  });

  it('flags an editable file replaced by a symlink to a non-editable file', async () => {
    unlinkSync(join(repo, 'train.py'));
    symlinkSync('README.md', join(repo, 'train.py'));
    const { changed, violations } = await check({ protectedGlobs: [] });
    expect(changed).toEqual([{ path: 'train.py', status: 'typechange', untracked: false }]);
    expect(reasons(violations)).toEqual({ 'train.py': 'symlink_escapes_surface' });
    expect(violations[0]!.fix).toBe('git checkout HEAD -- train.py');
  });

  it('flags symlinks that leave the repository, dangling or not', async () => {
    symlinkSync('/etc/passwd', join(repo, 'model', 'abs.py'));
    symlinkSync('../../../../../../../../etc/hostname', join(repo, 'model', 'rel.py'));
    symlinkSync('../../outside-does-not-exist', join(repo, 'model', 'dangling.py'));
    const { violations } = await check();
    expect(reasons(violations)).toEqual({
      'model/abs.py': 'symlink_escapes_surface',
      'model/dangling.py': 'symlink_escapes_surface',
      'model/rel.py': 'symlink_escapes_surface',
    });
    expect(violations.every((v) => v.detail.includes('outside the repository'))).toBe(true);
  });

  it('flags a symlink into .git or .ratchet', async () => {
    symlinkSync('../.ratchet/state.json', join(repo, 'model', 'state.py'));
    expect(reasons((await check()).violations)).toEqual({ 'model/state.py': 'symlink_escapes_surface' });
  });

  it('accepts a symlink to another editable file', async () => {
    symlinkSync('a.py', join(repo, 'model', 'b.py'));
    symlinkSync('../train.py', join(repo, 'model', 'train_alias.py'));
    const { changed, violations } = await check();
    expect(changed.map((c) => c.path)).toEqual(['model/b.py', 'model/train_alias.py']);
    expect(violations).toEqual([]);
  });

  it('handles names with spaces, unicode and newlines', async () => {
    write('model/my file ü.py', 'x = 1\n');
    write('model/new\nline.py', 'x = 2\n');
    write('naïve notes.md', 'note\n');
    write('README.md', 'changed 日本語\n');
    await git('mv', 'model/a.py', 'model/ä b.py');
    const { changed, violations } = await check();
    expect(changed.map((c) => c.path)).toEqual(['README.md', 'model/my file ü.py', 'model/new\nline.py', 'model/ä b.py', 'naïve notes.md']);
    expect(changed.find((c) => c.path === 'model/ä b.py')).toMatchObject({ status: 'renamed', from: 'model/a.py' });
    expect(reasons(violations)).toEqual({ 'README.md': 'outside_surface', 'naïve notes.md': 'outside_surface' });
  });

  it('compares against baseCommit, not HEAD', async () => {
    write('README.md', 'committed after base\n');
    await git('commit', '-q', '-am', 'later');
    expect(await changedPaths(repo, 'HEAD')).toEqual([]);
    expect(reasons((await check()).violations)).toEqual({ 'README.md': 'outside_surface' });
  });

  it('leaves the working tree, the index and git status byte-for-byte unchanged', async () => {
    write('train.py', 'print("edit")\n');
    write('README.md', 'edit\n');
    write('model/new.py', 'n = 1\n');
    write('data/val.bin', 'tampered');
    symlinkSync('../prepare.py', join(repo, 'model', 'link.py'));
    await git('add', 'README.md');
    const pins = await pinProtected(repo, PROTECTED);
    await savePinnedContent(repo, pins, join(root, 'store'));
    // A stale index (same content, new mtime) is what tempts git to rewrite it.
    const future = new Date(Date.now() + 60_000);
    utimesSync(join(repo, 'model', 'a.py'), future, future);
    const statusBefore = await statusWithoutRefresh();
    const treeBefore = treeSnapshot();
    const indexBefore = readFileSync(join(repo, '.git', 'index'));
    const indexMtime = statSync(join(repo, '.git', 'index')).mtimeMs;

    const { violations } = await check({ pins });
    await verifyPins(repo, pins, PROTECTED);
    expect(violations.length).toBeGreaterThan(0);

    expect(treeSnapshot()).toEqual(treeBefore);
    expect(readFileSync(join(repo, '.git', 'index')).equals(indexBefore)).toBe(true);
    expect(statSync(join(repo, '.git', 'index')).mtimeMs).toBe(indexMtime);
    expect(await statusWithoutRefresh()).toBe(statusBefore);
  });

  it('refuses a base that is not a commit, and a repo path that is not the top level', async () => {
    await expect(changedPaths(repo, 'no-such-ref')).rejects.toMatchObject({ code: 'git_state' });
    await expect(changedPaths(repo, '--output=/tmp/x')).rejects.toBeInstanceOf(RatchetError);
    await expect(changedPaths(join(repo, 'model'), base)).rejects.toMatchObject({ code: 'git_state' });
  });
});

describe('verifyPins', () => {
  it('reports only pin problems: changed, deleted, retyped and new protected files', async () => {
    const pins = await pinProtected(repo, PROTECTED);
    expect(await verifyPins(repo, pins, PROTECTED)).toEqual([]);
    write('README.md', 'outside the surface, but not a pin problem\n');
    write('data/train.bin', 'short');
    unlinkSync(join(repo, 'data', 'val.bin'));
    unlinkSync(join(repo, 'eval', 'score.py'));
    symlinkSync('../train.py', join(repo, 'eval', 'score.py'));
    write('data/new.bin', 'n');
    const v = await verifyPins(repo, pins, PROTECTED);
    expect(reasons(v)).toEqual({
      'data/new.bin': 'protected_added',
      'data/train.bin': 'protected_changed',
      'data/val.bin': 'protected_deleted',
      'eval/score.py': 'protected_changed',
    });
    expect(v.find((x) => x.path === 'eval/score.py')!.detail).toContain('now a symlink');
  });

  it('flags a pinned file whose directory was swapped for a symlink to an identical copy', async () => {
    const pins = await pinProtected(repo, PROTECTED);
    const elsewhere = join(root, 'elsewhere');
    renameSync(join(repo, 'data'), elsewhere);
    symlinkSync(elsewhere, join(repo, 'data'));
    expect(reasons(await verifyPins(repo, pins, PROTECTED))).toMatchObject({ 'data/val.bin': 'protected_changed', 'data/train.bin': 'protected_changed' });
  });
});

describe('savePinnedContent / restorePinned', () => {
  it('restores tampered, deleted and symlink-replaced protected files from the content-addressed store', async () => {
    chmodSync(join(repo, 'prepare.py'), 0o755);
    symlinkSync('val.bin', join(repo, 'data', 'current.bin'));
    const pins = await pinProtected(repo, PROTECTED);
    const store = join(root, 'store');
    await savePinnedContent(repo, pins, store);
    for (const pin of pins) {
      const stored = readFileSync(join(store, pin.sha256));
      expect(createHash('sha256').update(stored).digest('hex')).toBe(pin.sha256);
    }
    const trainBefore = read('train.py');
    const valBefore = readFileSync(join(repo, 'data', 'val.bin'));

    write('data/val.bin', 'tampered');
    unlinkSync(join(repo, 'eval', 'score.py'));
    rmSync(join(repo, 'eval'), { recursive: true });
    // Writing through this symlink would clobber train.py; restore must replace the link instead.
    unlinkSync(join(repo, 'prepare.py'));
    symlinkSync('train.py', join(repo, 'prepare.py'));
    unlinkSync(join(repo, 'data', 'current.bin'));
    write('data/current.bin', 'now a file');
    expect((await verifyPins(repo, pins, PROTECTED)).length).toBe(4);

    await restorePinned(repo, pins, store, ['data/val.bin', 'eval/score.py', 'prepare.py', 'data/current.bin']);

    expect(await verifyPins(repo, pins, PROTECTED)).toEqual([]);
    expect(readFileSync(join(repo, 'data', 'val.bin')).equals(valBefore)).toBe(true);
    expect(read('eval/score.py')).toBe('SCORE = 1\n');
    expect(lstatSync(join(repo, 'prepare.py')).isSymbolicLink()).toBe(false);
    expect(read('prepare.py')).toBe('def evaluate():\n    return 1.0\n');
    expect(statSync(join(repo, 'prepare.py')).mode & 0o100).toBe(0o100);
    expect(read('train.py')).toBe(trainBefore);
    expect(readlinkSync(join(repo, 'data', 'current.bin'))).toBe('val.bin');
    expect(readdirSync(join(repo, 'data')).sort()).toEqual(['current.bin', 'train.bin', 'val.bin']);
  });

  it('refuses to restore from a damaged store copy or a path that was never pinned', async () => {
    const pins = await pinProtected(repo, PROTECTED);
    const store = join(root, 'store');
    await savePinnedContent(repo, pins, store);
    const prep = pins.find((p) => p.path === 'prepare.py')!;
    chmodSync(join(store, prep.sha256), 0o644);
    writeFileSync(join(store, prep.sha256), 'def evaluate():\n    return 0.0\n');
    write('prepare.py', 'tampered\n');
    await expect(restorePinned(repo, pins, store, ['prepare.py'])).rejects.toMatchObject({ code: 'surface_violation' });
    expect(read('prepare.py')).toBe('tampered\n');
    await expect(restorePinned(repo, pins, store, ['train.py'])).rejects.toMatchObject({ code: 'invalid_argument' });
  });

  it('re-saves a store copy that was damaged, and refuses a file that changed after pinning', async () => {
    const pins = await pinProtected(repo, PROTECTED);
    const store = join(root, 'store');
    await savePinnedContent(repo, pins, store);
    const prep = pins.find((p) => p.path === 'prepare.py')!;
    chmodSync(join(store, prep.sha256), 0o644);
    writeFileSync(join(store, prep.sha256), 'junk');
    await savePinnedContent(repo, pins, store);
    expect(readFileSync(join(store, prep.sha256), 'utf8')).toBe('def evaluate():\n    return 1.0\n');

    write('eval/score.py', 'SCORE = 99\n');
    const fresh = join(root, 'store2');
    await expect(savePinnedContent(repo, pins, fresh)).rejects.toMatchObject({ code: 'surface_violation' });
    const score = pins.find((p) => p.path === 'eval/score.py')!;
    expect(existsSync(join(fresh, score.sha256))).toBe(false);
  });

  it('refuses to restore into a directory that was replaced by a symlink', async () => {
    const pins = await pinProtected(repo, PROTECTED);
    const store = join(root, 'store');
    await savePinnedContent(repo, pins, store);
    const outside = join(root, 'outside');
    mkdirSync(outside);
    rmSync(join(repo, 'eval'), { recursive: true });
    symlinkSync(outside, join(repo, 'eval'));
    await expect(restorePinned(repo, pins, store, ['eval/score.py'])).rejects.toMatchObject({ code: 'surface_violation' });
    expect(readdirSync(outside)).toEqual([]);
    // Deeper: the missing subdirectory must not be created through the link either.
    write('deep/sub/file.bin', 'pinned');
    const deepPins = await pinProtected(repo, ['deep/**']);
    await savePinnedContent(repo, deepPins, store);
    rmSync(join(repo, 'deep'), { recursive: true });
    symlinkSync(outside, join(repo, 'deep'));
    await expect(restorePinned(repo, deepPins, store, ['deep/sub/file.bin'])).rejects.toMatchObject({ code: 'surface_violation' });
    expect(readdirSync(outside)).toEqual([]);
  });
});

describe('describeViolations', () => {
  it('names each path with its reason and the command that undoes it', async () => {
    const pins = await pinProtected(repo, PROTECTED);
    write('prepare.py', 'def evaluate():\n    return 0.0\n');
    write('README.md', 'changed\n');
    write('notes dir/a.md', 'new\n');
    write('helper.py', 'h = 1\n');
    await git('add', 'helper.py');
    unlinkSync(join(repo, '.gitignore'));
    write('data/x.bin', 'new');
    symlinkSync('/etc/passwd', join(repo, 'model', 'l.py'));
    const { violations } = await check({ pins });
    const text = describeViolations(violations);

    expect(text).toContain('prepare.py: protected file changed');
    expect(text).toContain('Revert your change to prepare.py with `git checkout HEAD -- prepare.py`');
    expect(text).toContain('README.md: changed outside the editable surface (modified, but it is not in the editable surface); undo with `git checkout HEAD -- README.md`');
    expect(text).toContain('.gitignore: changed outside the editable surface (deleted, but it is not in the editable surface); undo with `git checkout HEAD -- .gitignore`');
    expect(text).toContain("notes dir/a.md: changed outside the editable surface (added, but it is not in the editable surface); undo with `rm -- 'notes dir/a.md'`");
    expect(text).toContain('helper.py: changed outside the editable surface (added, but it is not in the editable surface); undo with `git rm -f -- helper.py`');
    expect(text).toContain('add it to "editable" in ratchet.json before starting the session');
    expect(text).toContain('add it to .git/info/exclude');
    expect(text).toContain('data/x.bin: new file under a protected glob');
    expect(text).toContain('Remove data/x.bin');
    expect(text).toContain('model/l.py: symlink reaches outside the editable surface (symlink to /etc/passwd, which resolves outside the repository');
    expect(text).toContain('Replace model/l.py with a regular file');
  });

  it('quotes awkward paths so the commands can be pasted', () => {
    const text = describeViolations([{ path: "it's.py", reason: 'protected_deleted', detail: 'gone' }]);
    expect(text).toContain(`git checkout HEAD -- 'it'\\''s.py'`);
    expect(describeViolations([])).toBe('No edit-surface violations.');
  });
});

describe('scanSurface / commitCandidate', () => {
  async function scan(opts: { editable?: string[]; outputs?: string[] } = {}) {
    const pins = await pinProtected(repo, PROTECTED);
    return scanSurface({ repo, git: new Git(repo), baseCommit: base, editable: opts.editable ?? EDITABLE, protectedGlobs: PROTECTED, outputs: opts.outputs ?? [], pins });
  }

  async function candidateFiles(commit: string): Promise<string[]> {
    return (await git('ls-tree', '-r', '-z', '--name-only', commit)).split('\0').filter(Boolean);
  }

  it('sees new surface files that .git/info/exclude, a self-ignoring .gitignore or core.excludesFile hide, and commits them', async () => {
    writeFileSync(join(repo, '.git', 'info', 'exclude'), '.ratchet/\nmodel/by-exclude.py\n');
    write('model/by-exclude.py', 'hidden 1\n');
    write('model/lib/.gitignore', '*\n');
    write('model/lib/by-gitignore.py', 'hidden 2\n');
    write(join('..', 'global-ignore'), '*.hidden\n');
    await git('config', 'core.excludesFile', join(root, 'global-ignore'));
    write('model/by-excludesfile.hidden', 'hidden 3\n');
    // Control: git itself does not see them.
    expect(await git('ls-files', '--others', '--exclude-standard', 'model')).toBe('');

    const s = await scan();
    const hidden = ['model/by-exclude.py', 'model/by-excludesfile.hidden', 'model/lib/.gitignore', 'model/lib/by-gitignore.py'];
    expect(s.violations).toEqual([]);
    expect(s.surfaceFiles).toEqual(expect.arrayContaining(hidden));
    expect(s.changed.map((c) => c.path)).toEqual(hidden);
    const { commit } = await commitCandidate({ git: new Git(repo), parent: base, scan: s, message: 'candidate' });
    expect(await candidateFiles(commit)).toEqual(expect.arrayContaining(hidden));
    expect(await git('show', `${commit}:model/lib/by-gitignore.py`)).toBe('hidden 2\n');
  });

  it('builds the candidate from the parent plus the surface: removed files go, files outside the surface stay as the parent has them', async () => {
    unlinkSync(join(repo, 'model', 'a.py'));
    write('train.py', 'print("better")\n');
    write('run.log', 'ignored, outside the surface\n');
    const s = await scan();
    expect(s.removed).toEqual(['model/a.py']);
    expect(s.surfaceFiles).toEqual(['train.py']);
    const { commit, tree } = await commitCandidate({ git: new Git(repo), parent: base, scan: s, message: 'candidate' });
    expect((await git('rev-parse', `${commit}^{tree}`)).trim()).toBe(tree);
    expect(await candidateFiles(commit)).toEqual(['.gitignore', 'README.md', 'eval/score.py', 'prepare.py', 'ratchet.json', 'train.py']);
    expect(await git('show', `${commit}:train.py`)).toBe('print("better")\n');
    expect((await git('rev-parse', `${commit}^`)).trim()).toBe(base);
  });

  it('refuses a nested repository in the surface, and commitCandidate refuses a scan with violations', async () => {
    write('model/vendor/lib.py', 'v = 1\n');
    await execa('git', ['init', '-q'], { cwd: join(repo, 'model', 'vendor'), env: cleanEnv(), extendEnv: false });
    const s = await scan();
    expect(reasons(s.violations)).toEqual({ 'model/vendor': 'nested_repository' });
    expect(s.surfaceFiles).not.toContain('model/vendor/lib.py');
    expect(describeViolations(s.violations)).toContain('Move model/vendor out of the editable surface');
    await expect(commitCandidate({ git: new Git(repo), parent: base, scan: s, message: 'x' })).rejects.toMatchObject({ code: 'surface_violation' });
  });

  it('refuses a submodule (gitlink) in the surface', async () => {
    await git('update-index', '--add', '--cacheinfo', `160000,${base},model/sub`);
    await git('-c', 'user.name=t', '-c', 'user.email=t@t', 'commit', '-q', '-m', 'gitlink');
    const head = (await git('rev-parse', 'HEAD')).trim();
    const pins = await pinProtected(repo, PROTECTED);
    const s = await scanSurface({ repo, baseCommit: head, editable: EDITABLE, protectedGlobs: PROTECTED, pins });
    expect(reasons(s.violations)).toEqual({ 'model/sub': 'nested_repository' });
  });

  it('accepts and commits a file whose name has a newline inside an editable glob', async () => {
    write('model/new\nline.py', 'x = 2\n');
    const s = await scan();
    expect(s.violations).toEqual([]);
    expect(s.surfaceFiles).toContain('model/new\nline.py');
    const { commit } = await commitCandidate({ git: new Git(repo), parent: base, scan: s, message: 'newline' });
    expect(await candidateFiles(commit)).toContain('model/new\nline.py');
  });

  it('leaves declared outputs out of the surface, the changes and the candidate, ignored or not', async () => {
    write('model/out/ckpt.bin', 'weights');
    const s = await scan({ outputs: ['model/out/**'] });
    expect(s.violations).toEqual([]);
    expect(s.changed).toEqual([]);
    expect(s.surfaceFiles).not.toContain('model/out/ckpt.bin');
    // Without the declaration, the same file is part of the surface.
    expect((await scan()).surfaceFiles).toContain('model/out/ckpt.bin');
  });

  it('commits the bytes the scan checked, not what is on disk later', async () => {
    write('train.py', 'print("checked")\n');
    const s = await scan();
    write('train.py', 'print("swapped after the check")\n');
    const { commit } = await commitCandidate({ git: new Git(repo), parent: base, scan: s, message: 'race' });
    expect(await git('show', `${commit}:train.py`)).toBe('print("checked")\n');
  });

  it('finds a protected file hidden inside a nested repository', async () => {
    const pins = await pinProtected(repo, PROTECTED);
    write('eval/sub/cheat.py', 'SCORE = 0\n');
    await execa('git', ['init', '-q'], { cwd: join(repo, 'eval', 'sub'), env: cleanEnv(), extendEnv: false });
    expect(reasons(await verifyPins(repo, pins, PROTECTED))).toEqual({ 'eval/sub/cheat.py': 'protected_added' });
  });
});
