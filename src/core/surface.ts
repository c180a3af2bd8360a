// The edit surface: which paths an experiment may change, and hash pins that keep protected files (tracked or ignored) untouched.
import { createHash } from 'node:crypto';
import { createReadStream, constants as fsConstants } from 'node:fs';
import { chmod, copyFile, lstat, mkdir, mkdtemp, readFile, readlink, realpath, rename, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join, posix, relative, resolve, sep } from 'node:path';
import { execa } from 'execa';
import picomatch from 'picomatch';
import { RatchetError } from './errors.js';

/** Always protected, whatever the config says: the rules must not change under a running session. */
export const CONFIG_PATH = 'ratchet.json';

/** ratchet's own state and git's; never part of the surface and skipped by every check. */
const INTERNAL_DIRS = ['.ratchet', '.git'];

/** Hashing many small pinned files one at a time is slow; more than this in flight only thrashes the disk. */
const HASH_CONCURRENCY = 8;

export interface Pin {
  path: string;
  sha256: string;
  mode: 'file' | 'symlink';
  /** Regular files only: restored with the executable bit when true. */
  executable?: boolean;
}

export interface ChangedPath {
  path: string;
  status: 'added' | 'modified' | 'deleted' | 'renamed' | 'typechange';
  /** Renames only: the old path, which counts as deleted. */
  from?: string;
  /** Not in git's index: a new file the agent or the run created. */
  untracked: boolean;
}

export interface Violation {
  path: string;
  reason: 'outside_surface' | 'protected_changed' | 'protected_deleted' | 'protected_added' | 'symlink_escapes_surface';
  detail: string;
  /** A shell command that undoes this violation, when one is known. */
  fix?: string;
}

type Matcher = (path: string) => boolean;

// ---------------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------------

/**
 * Hashes every existing file matching a protected glob or ratchet.json: tracked, untracked and
 * git-ignored alike (protected data files are usually ignored). Symlinks are pinned by their target string.
 */
export async function pinProtected(repo: string, protectedGlobs: string[]): Promise<Pin[]> {
  await assertTopLevel(repo);
  const paths = await protectedPaths(repo, protectedGlobs);
  const pins = await mapLimit(paths, HASH_CONCURRENCY, (p) => pinOf(repo, p));
  return pins.filter((p): p is Pin => p !== null).sort(byPath);
}

/** Copies each pinned file to storeDir/<sha256>, verified, so a tampered file can be put back later. */
export async function savePinnedContent(repo: string, pins: Pin[], storeDir: string): Promise<void> {
  await mkdir(storeDir, { recursive: true });
  for (const pin of pins) {
    const stored = join(storeDir, pin.sha256);
    if (await storedCopyIsIntact(stored, pin.sha256)) continue;
    const tmp = `${stored}.tmp-${process.pid}-${Date.now()}`;
    try {
      const abs = join(repo, pin.path);
      if (pin.mode === 'symlink') await writeFile(tmp, await readlink(abs));
      // A reflink where the filesystem supports it: pinned data files can be gigabytes.
      else await copyFile(abs, tmp, fsConstants.COPYFILE_FICLONE);
      const copied = await hashFile(tmp);
      if (copied !== pin.sha256) {
        throw new RatchetError(
          'surface_violation',
          `Protected file ${pin.path} changed between pinning and saving its copy.`,
          `Stop whatever is writing to ${pin.path}, then start the session again.`,
          { path: pin.path, pinned: pin.sha256, found: copied },
        );
      }
      await chmod(tmp, 0o444);
      await rename(tmp, stored);
    } finally {
      await rm(tmp, { force: true });
    }
  }
}

/** Puts the pinned content back at `paths` (each must be pinned), replacing whatever is there now, symlinks included. */
export async function restorePinned(repo: string, pins: Pin[], storeDir: string, paths: string[]): Promise<void> {
  const byPathMap = new Map(pins.map((p) => [p.path, p]));
  for (const path of paths) {
    const pin = byPathMap.get(path);
    if (!pin) {
      throw new RatchetError('invalid_argument', `${path} is not a pinned file.`, 'Only files pinned at session start can be restored.', { path });
    }
    const content = await readFile(join(storeDir, pin.sha256)).catch(() => null);
    if (content === null || sha256(content) !== pin.sha256) {
      throw new RatchetError(
        'surface_violation',
        `The saved copy of protected file ${path} is missing or damaged (${join(storeDir, pin.sha256)}).`,
        `Restore ${path} by hand (e.g. \`git checkout HEAD -- ${shellQuote(path)}\`, or from your data source), then start a new session.`,
        { path, sha256: pin.sha256 },
      );
    }
    const abs = join(repo, path);
    // Checked before mkdir: creating or writing through a directory the agent swapped for a symlink could land outside the repo.
    const blocker = await nonDirectoryAncestor(repo, path);
    if (blocker !== null) {
      throw new RatchetError(
        'surface_violation',
        `Cannot restore ${path}: ${blocker} is no longer a plain directory.`,
        `Remove ${shellQuote(blocker)} (a symlink or file now stands where a directory was) and recreate it as a plain directory, then restore again.`,
        { path, blocker },
      );
    }
    await mkdir(dirname(abs), { recursive: true });
    // Write beside the target and rename over it, so a symlink planted at `path` is replaced, not written through.
    const tmp = join(dirname(abs), `.ratchet-restore-${process.pid}-${Date.now()}`);
    try {
      if (pin.mode === 'symlink') await symlink(content.toString('utf8'), tmp);
      else await writeFile(tmp, content, { mode: pin.executable ? 0o755 : 0o644 });
      // rename() replaces a file or symlink atomically but not a directory the agent put in its place.
      if ((await lstat(abs).catch(() => null))?.isDirectory()) await rm(abs, { recursive: true, force: true });
      await rename(tmp, abs);
    } finally {
      await rm(tmp, { force: true });
    }
  }
}

/**
 * Paths that differ between baseCommit and the working tree: tracked changes (staged or not) and
 * untracked files that are not ignored. Ignored files and ratchet's own state are left out.
 */
export async function changedPaths(repo: string, baseCommit: string): Promise<ChangedPath[]> {
  await assertTopLevel(repo);
  const base = await resolveCommit(repo, baseCommit);
  const untracked = await withScratchIndex(repo, (env) => git(repo, ['ls-files', '--others', '--exclude-standard', '-z'], env));
  // The diff hashes the whole working tree into a fresh index built from the base, exactly as the
  // candidate commit is built: no stat cache, so no edit can hide behind a matching size and mtime.
  const diff = await withFreshIndex(repo, base, async (env) => {
    await git(repo, ['add', '-A', '--', '.'], env);
    return git(
      repo,
      ['-c', 'core.quotepath=off', 'diff', '--cached', '--name-status', '-z', '-M', '--no-ext-diff', '--no-textconv', '--ignore-submodules=none', base, '--'],
      env,
    );
  });

  const changed = new Map<string, ChangedPath>();
  for (const c of parseNameStatus(diff)) changed.set(c.path, c);
  for (const raw of splitZ(untracked)) {
    // An untracked nested repository shows up as "dir/"; `git add -A` would record it as a gitlink.
    const path = raw.endsWith('/') ? raw.slice(0, -1) : raw;
    const tracked = changed.get(path);
    // Removed from the index but still on disk (`git rm --cached`): present, so it counts as a change of content.
    changed.set(path, tracked ? { ...tracked, status: tracked.status === 'deleted' ? 'modified' : tracked.status, untracked: true } : { path, status: 'added', untracked: true });
  }
  return [...changed.values()]
    .map((c): ChangedPath => (c.from !== undefined && isInternal(c.from) ? { path: c.path, status: 'added', untracked: c.untracked } : c))
    .filter((c) => !isInternal(c.path))
    .sort(byPath);
}

/**
 * The full check before an experiment is run or kept: every changed path (both sides of a rename)
 * must be editable and not protected, every pin must still hold, no new protected file may appear,
 * and no changed path may reach outside the surface through a symlink.
 */
export async function checkEditSurface(opts: {
  repo: string;
  baseCommit: string;
  editable: string[];
  pins: Pin[];
  protectedGlobs: string[];
}): Promise<{ changed: ChangedPath[]; violations: Violation[] }> {
  const { repo, editable, pins, protectedGlobs } = opts;
  const changed = await changedPaths(repo, opts.baseCommit);
  const isEditable = matcher(editable);
  const isProtected = protectedMatcher(protectedGlobs);
  const pinned = new Set(pins.map((p) => p.path));

  // One violation per path, most specific first: pin checks, then the surface, then symlinks.
  const violations = new Map<string, Violation>();
  const add = (v: Violation) => {
    if (!violations.has(v.path)) violations.set(v.path, v);
  };

  for (const v of await verifyPins(repo, pins, protectedGlobs)) add(v);

  for (const c of changed) {
    for (const side of sidesOf(c)) {
      const { path, removed, note } = side;
      const fix = undoCommand(c, path, removed);
      if (isProtected(path)) {
        // A pinned path is judged by its hash above: content equal to the pin is what the session started with.
        if (pinned.has(path)) continue;
        add(
          removed
            ? { path, reason: 'protected_deleted', detail: `protected path ${note}`, fix }
            : { path, reason: 'protected_added', detail: `new file matches a protected glob and was not pinned at session start (${note})`, fix },
        );
      } else if (!isEditable(path)) {
        add({ path, reason: 'outside_surface', detail: `${note}, but it is not in the editable surface`, fix });
      }
    }
  }

  const realRepo = await realpath(repo);
  for (const c of changed) {
    if (c.status === 'deleted') continue;
    const escape = await symlinkEscape(repo, realRepo, c.path, isEditable, isProtected);
    if (escape) add({ path: c.path, reason: 'symlink_escapes_surface', detail: escape, fix: undoCommand(c, c.path, false) });
  }

  return { changed, violations: [...violations.values()].sort(byPath) };
}

/**
 * Pins only, tracked or ignored: each pinned file must still exist with the same content and kind,
 * and no unpinned file may have appeared under a protected glob. Run after an experiment, before
 * the trusted evaluate step reads anything.
 */
export async function verifyPins(repo: string, pins: Pin[], protectedGlobs: string[]): Promise<Violation[]> {
  await assertTopLevel(repo);
  const realRepo = await realpath(repo);
  const violations: Violation[] = [];

  const checks = await mapLimit(pins, HASH_CONCURRENCY, async (pin) => pinViolation(repo, realRepo, pin));
  for (const v of checks) if (v) violations.push(v);

  const pinned = new Set(pins.map((p) => p.path));
  for (const path of await protectedPaths(repo, protectedGlobs)) {
    if (!pinned.has(path)) {
      violations.push({ path, reason: 'protected_added', detail: 'new file matches a protected glob and was not pinned at session start', fix: `rm -- ${shellQuote(path)}` });
    }
  }
  return violations.sort(byPath);
}

/** What went wrong, path by path, and the commands that fix it; written for the agent to act on. */
export function describeViolations(v: Violation[]): string {
  if (v.length === 0) return 'No edit-surface violations.';
  const lines = [`The edit breaks the session's rules (${v.length} path${v.length === 1 ? '' : 's'}):`];
  for (const x of v) lines.push(`  - ${x.path}: ${REASON_TEXT[x.reason]} (${x.detail})${x.fix ? `; undo with \`${x.fix}\`` : ''}`);
  lines.push('What to do:');
  const of = (reason: Violation['reason']) => v.filter((x) => x.reason === reason).map((x) => x.path);

  const changedProtected = [...of('protected_changed'), ...of('protected_deleted')];
  if (changedProtected.length) {
    lines.push(
      `  - Revert your change to ${list(changedProtected)} with \`git checkout HEAD -- ${changedProtected.map(shellQuote).join(' ')}\`, ` +
        'or call the revert tool, which also puts git-ignored protected files back from their pinned copies (and saves your edits under a ref first). ' +
        'Protected files define the experiment and cannot change during a session.',
    );
  }
  const outside = of('outside_surface');
  if (outside.length) {
    lines.push(
      `  - Undo the changes outside the edit surface (${list(outside)}) with the commands above. ` +
        'If a path should be editable, add it to "editable" in ratchet.json before starting the session. ' +
        'If it is a run output, add it to .git/info/exclude now (changing .gitignore mid-session is itself a change outside the surface), and to .gitignore before the next session.',
    );
  }
  const added = of('protected_added');
  if (added.length) {
    lines.push(
      `  - Remove ${list(added)}: no new file may appear under a protected glob. ` +
        'If the run writes it, send the output elsewhere, or narrow "protected" in ratchet.json before starting the session.',
    );
  }
  const links = of('symlink_escapes_surface');
  if (links.length) {
    lines.push(
      `  - Replace ${list(links)} with a regular file, or point the symlink at a file inside the editable surface: ` +
        'a symlink may not reach protected files, files outside the surface, or anything outside the repo.',
    );
  }
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------
// Matching
// ---------------------------------------------------------------------------------------------

const REASON_TEXT: Record<Violation['reason'], string> = {
  outside_surface: 'changed outside the editable surface',
  protected_changed: 'protected file changed',
  protected_deleted: 'protected file deleted',
  protected_added: 'new file under a protected glob',
  symlink_escapes_surface: 'symlink reaches outside the editable surface',
};

function normalizeGlob(glob: string): string {
  return glob.startsWith('./') ? glob.slice(2) : glob;
}

/** picomatch rejects an empty list; an empty list matches nothing. The "s" flag lets `**` match names containing a newline. */
function matcher(globs: string[]): Matcher {
  const list = globs.map(normalizeGlob).filter((g) => g.length > 0);
  return list.length ? picomatch(list, { dot: true, flags: 's' }) : () => false;
}

function protectedMatcher(protectedGlobs: string[]): Matcher {
  return matcher([...protectedGlobs, CONFIG_PATH]);
}

function isInternal(path: string): boolean {
  return INTERNAL_DIRS.some((dir) => path === dir || path.startsWith(`${dir}/`));
}

/** The command that puts one side of a change back the way the base commit had it. */
function undoCommand(c: ChangedPath, path: string, removed: boolean): string {
  const quoted = shellQuote(path);
  if (removed || c.status === 'modified' || c.status === 'typechange') return `git checkout HEAD -- ${quoted}`;
  return c.untracked ? `rm -- ${quoted}` : `git rm -f -- ${quoted}`;
}

function sidesOf(c: ChangedPath): { path: string; removed: boolean; note: string }[] {
  const verb = { added: 'added', modified: 'modified', deleted: 'deleted', renamed: 'renamed', typechange: 'changed type' }[c.status];
  const sides = [{ path: c.path, removed: c.status === 'deleted', note: c.from !== undefined ? `renamed from ${c.from}` : verb }];
  if (c.from !== undefined) sides.push({ path: c.from, removed: true, note: `renamed to ${c.path} (counts as deleted)` });
  return sides;
}

// ---------------------------------------------------------------------------------------------
// Pins
// ---------------------------------------------------------------------------------------------

/**
 * Existing files and symlinks matching a protected glob or ratchet.json, including ignored ones.
 * `git ls-files` is limited to the globs' literal base directories so a big ignored tree elsewhere is not walked.
 */
async function protectedPaths(repo: string, protectedGlobs: string[]): Promise<string[]> {
  const globs = [...protectedGlobs.map(normalizeGlob), CONFIG_PATH];
  const isProtected = protectedMatcher(protectedGlobs);
  const listed = await git(repo, ['ls-files', '-z', '--cached', '--others', '--', ...pathspecsFor(globs)]);
  const candidates = [...new Set(splitZ(listed))].filter((p) => !p.endsWith('/') && !isInternal(p) && isProtected(p));
  const kinds = await mapLimit(candidates, HASH_CONCURRENCY, async (p) => {
    const st = await lstat(join(repo, p)).catch(() => null);
    return st && (st.isFile() || st.isSymbolicLink()) ? p : null;
  });
  return kinds.filter((p): p is string => p !== null).sort();
}

/** Literal base directories of the globs as git pathspecs; none (the whole tree) when any glob has no literal base. */
function pathspecsFor(globs: string[]): string[] {
  const bases: string[] = [];
  for (const glob of globs) {
    const scan = picomatch.scan(glob);
    if (!scan.base || scan.negated || scan.base.includes('\\')) return [];
    bases.push(`:(literal)${scan.base}`);
  }
  return [...new Set(bases)];
}

async function pinOf(repo: string, path: string): Promise<Pin | null> {
  const abs = join(repo, path);
  const st = await lstat(abs).catch(() => null);
  if (!st) return null;
  if (st.isSymbolicLink()) return { path, sha256: sha256(Buffer.from(await readlink(abs), 'utf8')), mode: 'symlink' };
  if (!st.isFile()) return null;
  return { path, sha256: await hashFile(abs), mode: 'file', executable: (st.mode & 0o111) !== 0 };
}

async function pinViolation(repo: string, realRepo: string, pin: Pin): Promise<Violation | null> {
  const abs = join(repo, pin.path);
  const st = await lstat(abs).catch(() => null);
  if (!st) return { path: pin.path, reason: 'protected_deleted', detail: 'pinned at session start, now missing' };
  // Content read through a directory swapped for a symlink is not the pinned file, whatever it hashes to.
  const realParent = await realpath(dirname(abs)).catch(() => null);
  if (realParent === null || toRepoPath(realRepo, realParent) !== parentOf(pin.path)) {
    return { path: pin.path, reason: 'protected_changed', detail: `its directory now resolves to ${realParent ?? 'nothing'}` };
  }
  const now = await pinOf(repo, pin.path);
  if (!now) return { path: pin.path, reason: 'protected_changed', detail: 'no longer a regular file or symlink' };
  if (now.mode !== pin.mode) return { path: pin.path, reason: 'protected_changed', detail: `was a ${pin.mode}, now a ${now.mode}` };
  if (now.sha256 !== pin.sha256) {
    return { path: pin.path, reason: 'protected_changed', detail: `sha256 ${short(now.sha256)} differs from ${short(pin.sha256)} pinned at session start` };
  }
  return null;
}

/** The first existing ancestor of `path` (inside the repo) that is not a real directory, or null. */
async function nonDirectoryAncestor(repo: string, path: string): Promise<string | null> {
  const parts = path.split('/').slice(0, -1);
  for (let i = 1; i <= parts.length; i++) {
    const prefix = parts.slice(0, i).join('/');
    const st = await lstat(join(repo, prefix)).catch(() => null);
    if (st === null) return null;
    if (!st.isDirectory()) return prefix;
  }
  return null;
}

async function storedCopyIsIntact(stored: string, sha: string): Promise<boolean> {
  const st = await stat(stored).catch(() => null);
  return st !== null && st.isFile() && (await hashFile(stored)) === sha;
}

// ---------------------------------------------------------------------------------------------
// Symlinks
// ---------------------------------------------------------------------------------------------

/**
 * Why `path` (a changed, existing path) reaches outside the surface through a symlink, itself or a
 * parent directory; null when it does not. Dangling links are judged by where they would point.
 */
async function symlinkEscape(repo: string, realRepo: string, path: string, isEditable: Matcher, isProtected: Matcher): Promise<string | null> {
  const abs = join(repo, path);
  const st = await lstat(abs).catch(() => null);
  if (!st) return null;
  let target = await realpath(abs).catch(() => null);
  if (target === null) {
    if (!st.isSymbolicLink()) return null;
    const parent = await realpath(dirname(abs)).catch(() => dirname(abs));
    target = resolve(parent, await readlink(abs));
  }
  const rel = toRepoPath(realRepo, target);
  if (rel === path) return null;
  const how = st.isSymbolicLink() ? `symlink to ${await readlink(abs)}` : `reached through a symlinked directory`;
  if (rel === null) return `${how}, which resolves outside the repository (${target})`;
  if (rel === '' || isInternal(rel)) return `${how}, which resolves to ratchet's or git's own files (${rel || '.'})`;
  if (isProtected(rel)) return `${how}, which resolves to protected file ${rel}`;
  if (!isEditable(rel)) return `${how}, which resolves to ${rel}, outside the editable surface`;
  return null;
}

/** Repo-relative POSIX path of an absolute real path, '' for the repo itself, null when outside it. */
function toRepoPath(realRepo: string, abs: string): string | null {
  const rel = relative(realRepo, abs);
  if (rel === '') return '';
  if (rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel)) return null;
  return rel.split(sep).join('/');
}

function parentOf(path: string): string {
  const dir = posix.dirname(path);
  return dir === '.' ? '' : dir;
}

// ---------------------------------------------------------------------------------------------
// Git
// ---------------------------------------------------------------------------------------------

/** Variables that would point git at another repo or index than the one asked about. */
const GIT_REDIRECTS = ['GIT_DIR', 'GIT_WORK_TREE', 'GIT_INDEX_FILE', 'GIT_COMMON_DIR', 'GIT_OBJECT_DIRECTORY'];

function gitEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const key of GIT_REDIRECTS) delete env[key];
  // Belt and braces for the read-only commands: no opportunistic index refresh under a lock.
  env.GIT_OPTIONAL_LOCKS = '0';
  return { ...env, ...extra };
}

async function git(repo: string, args: string[], extraEnv?: Record<string, string>): Promise<string> {
  const result = await execa('git', args, {
    cwd: repo,
    env: gitEnv(extraEnv),
    extendEnv: false,
    stripFinalNewline: false,
    reject: false,
    maxBuffer: 1024 * 1024 * 1024,
  });
  if (result.exitCode !== 0 || result.failed) {
    const why = String(result.stderr || result.shortMessage || '').trim();
    const sub = args[0] === '-c' ? args[2] : args[0];
    throw new RatchetError(
      'git_state',
      `git ${sub} failed in ${repo}: ${why}`,
      'Check that the repo is a healthy git work tree (`git status` there), then call the tool again.',
      { args, exitCode: result.exitCode },
    );
  }
  return String(result.stdout);
}

/**
 * Runs `fn` with GIT_INDEX_FILE pointing at a throwaway copy of the index: `git diff` refreshes and
 * rewrites the index it reads (GIT_OPTIONAL_LOCKS does not stop it), and the real one must not be
 * touched while the agent or another git command may be using it.
 */
async function withFreshIndex<T>(repo: string, base: string, fn: (env: Record<string, string>) => Promise<T>): Promise<T> {
  const scratch = await mkdtemp(join(tmpdir(), 'ratchet-index-'));
  try {
    const env = { GIT_INDEX_FILE: join(scratch, 'index') };
    await git(repo, ['read-tree', base], env);
    return await fn(env);
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

async function withScratchIndex<T>(repo: string, fn: (env: Record<string, string>) => Promise<T>): Promise<T> {
  const indexPath = (await git(repo, ['rev-parse', '--git-path', 'index'])).trim();
  const realIndex = isAbsolute(indexPath) ? indexPath : join(repo, indexPath);
  const scratch = await mkdtemp(join(tmpdir(), 'ratchet-index-'));
  try {
    const copy = join(scratch, 'index');
    // No index yet means nothing is staged: an empty scratch index says the same.
    const copied = await copyFile(realIndex, copy).then(
      () => true,
      (err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
        return false;
      },
    );
    // Git's racy-clean check compares entry mtimes with the index file's own mtime; a copy with a
    // fresh mtime would make a file edited in the same second as the last commit look unchanged.
    if (copied) {
      const { atime, mtime } = await stat(realIndex);
      await utimes(copy, atime, mtime);
    }
    return await fn({ GIT_INDEX_FILE: copy });
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

async function resolveCommit(repo: string, ref: string): Promise<string> {
  // --end-of-options keeps a ref starting with "-" from being read as an option.
  const sha = (await git(repo, ['rev-parse', '--verify', '-q', '--end-of-options', `${ref}^{commit}`]).catch(() => '')).trim();
  if (!/^[0-9a-f]{40,64}$/.test(sha)) {
    throw new RatchetError('git_state', `${ref} is not a commit in ${repo}.`, 'Pass the commit the experiment started from (the session branch head).', { ref });
  }
  return sha;
}

/** Paths from git are relative to the top level; checking from a subdirectory would miss changes elsewhere. */
async function assertTopLevel(repo: string): Promise<void> {
  const prefix = (await git(repo, ['rev-parse', '--show-prefix'])).trim();
  if (prefix !== '') {
    throw new RatchetError('git_state', `${repo} is a subdirectory of a git repository (${prefix}).`, 'Point ratchet at the repository root, where .git lives.', { prefix });
  }
}

function splitZ(out: string): string[] {
  return out.split('\0').filter((s) => s.length > 0);
}

/** Parses `git diff --name-status -z`: "X\0path\0", or "R<score>\0from\0to\0" for renames and copies. */
function parseNameStatus(out: string): ChangedPath[] {
  const tokens = out.split('\0');
  const result: ChangedPath[] = [];
  for (let i = 0; i < tokens.length; ) {
    const code = tokens[i++] ?? '';
    if (code === '') continue;
    const kind = code[0];
    if (kind === 'R' || kind === 'C') {
      const from = tokens[i++] ?? '';
      const to = tokens[i++] ?? '';
      // A copy leaves its source in place: only the new path is a change.
      result.push(kind === 'R' ? { path: to, status: 'renamed', from, untracked: false } : { path: to, status: 'added', untracked: false });
      continue;
    }
    const path = tokens[i++] ?? '';
    const status = kind === 'A' ? 'added' : kind === 'D' ? 'deleted' : kind === 'T' ? 'typechange' : 'modified';
    result.push({ path, status, untracked: false });
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Streams the file so a multi-gigabyte data file is hashed without loading it. */
function hashFile(abs: string): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const hash = createHash('sha256');
    createReadStream(abs)
      .on('error', reject)
      .on('data', (chunk) => hash.update(chunk))
      .on('end', () => resolvePromise(hash.digest('hex')));
  });
}

async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

function byPath<T extends { path: string }>(a: T, b: T): number {
  return a.path < b.path ? -1 : a.path > b.path ? 1 : 0;
}

function short(sha: string): string {
  return sha.slice(0, 12);
}

function list(paths: string[]): string {
  return paths.join(', ');
}

/** Quotes a path for a copy-pasteable shell command. */
function shellQuote(path: string): string {
  return /^[\w@%+=:,./-]+$/.test(path) ? path : `'${path.replace(/'/g, `'\\''`)}'`;
}
