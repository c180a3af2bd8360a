// The edit surface: which paths an experiment may change, found on disk without trusting ignore files, and hash pins that keep protected files untouched.
import { createHash } from 'node:crypto';
import { createReadStream, constants as fsConstants } from 'node:fs';
import { chmod, copyFile, lstat, mkdir, readdir, readFile, readlink, realpath, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { dirname, isAbsolute, join, posix, relative, resolve, sep } from 'node:path';
import { RatchetError } from './errors.js';
import { Git, isInternal, runGit, type TreeEntry } from './git.js';
import { globDirMatcher, globMatcher, type PathMatcher } from './globs.js';

/** Always protected, whatever the config says: the rules must not change under a running session. */
export const CONFIG_PATH = 'ratchet.json';

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
  reason: 'outside_surface' | 'protected_changed' | 'protected_deleted' | 'protected_added' | 'symlink_escapes_surface' | 'nested_repository';
  detail: string;
  /** A shell command that undoes this violation, when one is known. */
  fix?: string;
}

export interface SurfaceScan {
  /** The commit the scan compared against. */
  base: string;
  changed: ChangedPath[];
  violations: Violation[];
  /** Every file and symlink inside the surface on disk, ignored or not: what the candidate commit holds for the surface. */
  surfaceFiles: string[];
  /** Surface paths of the base commit that are gone from disk. */
  removed: string[];
  /** The blob written for each surface file, so the candidate holds exactly the bytes that were checked. */
  entries: Map<string, TreeEntry>;
}

export interface SurfaceRules {
  editable: string[];
  protectedGlobs: string[];
  /** Declared run outputs (`run.outputs`): never part of the surface. */
  outputs?: string[];
}

// ---------------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------------

/**
 * Hashes every existing file matching a protected glob or ratchet.json: tracked, untracked and
 * git-ignored alike (protected data files are usually ignored), found by reading directories.
 * Symlinks are pinned by their target string.
 */
export async function pinProtected(repo: string, protectedGlobs: string[]): Promise<Pin[]> {
  await assertTopLevel(new Git(repo));
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
 * The full check before an experiment is run or kept, and the material for its candidate commit.
 * Inside the surface (editable, not protected, not a declared output) every file on disk counts,
 * whatever .gitignore, .git/info/exclude or core.excludesFile say: the walk reads directories
 * itself. Outside it, tracked files are compared by content hashed without filters, and new files
 * git does not ignore are reported. Every pin must still hold, no new protected file may appear,
 * no changed path may reach outside the surface through a symlink, and the surface may hold no
 * nested repository.
 */
export async function scanSurface(opts: SurfaceRules & { repo: string; git?: Git; baseCommit: string; pins: Pin[] }): Promise<SurfaceScan> {
  const { repo, pins, protectedGlobs } = opts;
  const git = opts.git ?? new Git(repo);
  const base = await topLevelCommit(git, opts.baseCommit);
  const rules = surfaceRules(opts);

  const [baseTree, indexed, others, walked] = await Promise.all([
    git.lsTree(base),
    git.lsFiles(['--cached']),
    git.lsFiles(['--others', '--exclude-standard']),
    walk(repo, { enter: (dir) => rules.enterable(dir) && !rules.isOutputDir(dir), take: rules.inSurface, intoNested: false }),
  ]);
  const outside = [...new Set([...baseTree.keys(), ...indexed, ...others])].filter((p) => !p.endsWith('/') && !isInternal(p) && !rules.inSurface(p));
  const [surfaceEntries, outsideEntries] = await Promise.all([
    git.hashFiles(walked.files),
    git.hashFiles(await withoutSymlinkedParents(repo, outside), { write: false }),
  ]);
  const now = new Map([...outsideEntries, ...surfaceEntries]);
  const surfaceFiles = walked.files.filter((p) => surfaceEntries.has(p));

  const nested = new Set(walked.nested);
  for (const [path, e] of baseTree) if (e.mode === '160000' && (rules.inSurface(path) || rules.enterable(path))) nested.add(path);
  // An untracked nested repository outside the surface is listed as "dir/": a change outside the surface, as before.
  const untrackedRepos = others.filter((p) => p.endsWith('/')).map((p) => p.slice(0, -1)).filter((p) => !nested.has(p) && !isInternal(p));

  // Declared outputs are the run's products: never committed, so never a change.
  const changed = compareTrees(baseTree, now, new Set(indexed), untrackedRepos).filter((c) => !rules.isOutput(c.path));
  const removed = [...baseTree.keys()].filter((p) => rules.inSurface(p) && baseTree.get(p)!.mode !== '160000' && !now.has(p)).sort();
  const violations = await surfaceViolations({ repo, changed, pins, protectedGlobs, rules, nested: [...nested], unreadable: walked.unreadable });
  return { base, changed, violations, surfaceFiles, removed, entries: surfaceEntries };
}

/**
 * The candidate commit: `parent`'s tree with the scan's surface files put in (their blobs as
 * scanned, not re-read) and its removed paths deleted. Everything outside the surface is the
 * parent's, so a clean checkout of the commit holds exactly what was checked.
 */
export async function commitCandidate(opts: { git: Git; parent: string; scan: SurfaceScan; message: string }): Promise<{ commit: string; tree: string }> {
  const { git, parent, scan } = opts;
  if (scan.violations.length) {
    throw new RatchetError('surface_violation', `Cannot commit a candidate that breaks the session's rules.\n${describeViolations(scan.violations)}`, 'Undo the listed changes, then call run_experiment again.', {
      violations: scan.violations,
    });
  }
  const tree = await git.buildTree(parent, scan.entries, scan.removed);
  return { tree, commit: await git.commitTree(tree, [parent], opts.message) };
}

/**
 * The same check without building anything, as the loop has used it: changes against baseCommit
 * and the violations they make.
 */
export async function checkEditSurface(opts: SurfaceRules & { repo: string; baseCommit: string; pins: Pin[] }): Promise<{ changed: ChangedPath[]; violations: Violation[] }> {
  const { changed, violations } = await scanSurface(opts);
  return { changed, violations };
}

/**
 * Paths that differ between baseCommit and the working tree, as git would see them: tracked files
 * (compared by content, without filters) and untracked files that are not ignored. Ratchet's own
 * state is left out. Exact renames are paired.
 */
export async function changedPaths(repo: string, baseCommit: string): Promise<ChangedPath[]> {
  return (await scanSurface({ repo, baseCommit, editable: [], protectedGlobs: [], pins: [] })).changed;
}

/**
 * Pins only, tracked or ignored: each pinned file must still exist with the same content and kind,
 * and no unpinned file may have appeared under a protected glob. Run after an experiment, before
 * the trusted evaluate step reads anything.
 */
export async function verifyPins(repo: string, pins: Pin[], protectedGlobs: string[]): Promise<Violation[]> {
  await assertTopLevel(new Git(repo));
  return pinViolations(repo, pins, protectedGlobs);
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
  const nested = of('nested_repository');
  if (nested.length) {
    lines.push(
      `  - Move ${list(nested)} out of the editable surface: a nested git repository or submodule keeps its files out of the candidate commit, ` +
        'so a clean checkout of the branch would not hold the code that was measured. ' +
        'To make its files ordinary files of this repository instead, delete its .git (after saving anything you need from its history).',
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
  nested_repository: 'nested git repository inside the editable surface',
};

interface Rules {
  isEditable: PathMatcher;
  isProtected: PathMatcher;
  isOutput: PathMatcher;
  /** Editable, not protected, not a declared output, not ratchet's or git's own. */
  inSurface: PathMatcher;
  /** A directory the walk must enter because an editable file may lie below it. */
  enterable: PathMatcher;
  /** A directory all of whose files are declared outputs (`out/**`), skipped whole. */
  isOutputDir: PathMatcher;
}

function surfaceRules(r: SurfaceRules): Rules {
  const isEditable = globMatcher(r.editable);
  const isProtected = globMatcher([...r.protectedGlobs, CONFIG_PATH]);
  const isOutput = globMatcher(r.outputs ?? []);
  const editableDir = globDirMatcher(r.editable);
  return {
    isEditable,
    isProtected,
    isOutput,
    inSurface: (p) => isEditable(p) && !isProtected(p) && !isOutput(p) && !isInternal(p),
    enterable: (dir) => editableDir(dir) && !isInternal(dir),
    // Two probe names no real file can have: a directory whose every descendant is an output.
    isOutputDir: (dir) => isOutput(`${dir}/\0a`) && isOutput(`${dir}/\0a/\0b`),
  };
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

async function surfaceViolations(opts: {
  repo: string;
  changed: ChangedPath[];
  pins: Pin[];
  protectedGlobs: string[];
  rules: Rules;
  nested: string[];
  unreadable: string[];
}): Promise<Violation[]> {
  const { repo, changed, pins, rules } = opts;
  const pinned = new Set(pins.map((p) => p.path));
  // One violation per path, most specific first: pin checks, then nested repositories, then the surface, then symlinks.
  const violations = new Map<string, Violation>();
  const add = (v: Violation) => {
    if (!violations.has(v.path)) violations.set(v.path, v);
  };

  for (const v of await pinViolations(repo, pins, opts.protectedGlobs)) add(v);
  for (const path of opts.nested) {
    add({ path, reason: 'nested_repository', detail: 'it has its own .git or is a submodule, so its files cannot be part of the candidate commit' });
  }
  for (const path of opts.unreadable) {
    add({ path, reason: 'outside_surface', detail: 'its name is not valid UTF-8, so ratchet cannot commit it; rename it', fix: `rm -rf -- ${shellQuote(path)}` });
  }

  for (const c of changed) {
    for (const { path, removed, note } of sidesOf(c)) {
      const fix = undoCommand(c, path, removed);
      if (rules.isProtected(path)) {
        // A pinned path is judged by its hash above: content equal to the pin is what the session started with.
        if (pinned.has(path)) continue;
        add(
          removed
            ? { path, reason: 'protected_deleted', detail: `protected path ${note}`, fix }
            : { path, reason: 'protected_added', detail: `new file matches a protected glob and was not pinned at session start (${note})`, fix },
        );
      } else if (!rules.inSurface(path)) {
        add({ path, reason: 'outside_surface', detail: `${note}, but it is not in the editable surface`, fix });
      }
    }
  }

  const realRepo = await realpath(repo);
  for (const c of changed) {
    if (c.status === 'deleted') continue;
    const escape = await symlinkEscape(repo, realRepo, c.path, rules.isEditable, rules.isProtected);
    if (escape) add({ path: c.path, reason: 'symlink_escapes_surface', detail: escape, fix: undoCommand(c, c.path, false) });
  }
  return [...violations.values()].sort(byPath);
}

// ---------------------------------------------------------------------------------------------
// Walking and comparing
// ---------------------------------------------------------------------------------------------

interface Walked {
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
async function walk(repo: string, opts: { enter: PathMatcher; take: PathMatcher; intoNested: boolean }): Promise<Walked> {
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

/** Paths whose parent directories are all real directories: a file reached through a symlinked directory is not the tracked file. */
async function withoutSymlinkedParents(repo: string, paths: string[]): Promise<string[]> {
  const cache = new Map<string, Promise<boolean>>();
  const isRealDir = (dir: string): Promise<boolean> => {
    let known = cache.get(dir);
    if (!known) {
      known = (async () => {
        if (dir === '.') return true;
        if (!(await isRealDir(posix.dirname(dir)))) return false;
        return (await lstat(join(repo, dir)).catch(() => null))?.isDirectory() ?? false;
      })();
      cache.set(dir, known);
    }
    return known;
  };
  const ok = await Promise.all(paths.map((p) => isRealDir(posix.dirname(p))));
  return paths.filter((_, i) => ok[i]);
}

/** Changes from the base tree to what is on disk now; exact renames (same content and kind) are paired. */
function compareTrees(base: Map<string, TreeEntry>, now: Map<string, TreeEntry>, indexed: Set<string>, untrackedRepos: string[]): ChangedPath[] {
  const kind = (mode: string) => (mode === '120000' ? 'link' : 'file');
  const changed: ChangedPath[] = [];
  const deleted: string[] = [];
  for (const [path, b] of base) {
    if (b.mode === '160000') continue;
    const n = now.get(path);
    if (!n) deleted.push(path);
    else if (n.oid !== b.oid || n.mode !== b.mode) changed.push({ path, status: kind(n.mode) === kind(b.mode) ? 'modified' : 'typechange', untracked: !indexed.has(path) });
  }
  const added = new Map<string, string[]>();
  for (const [path, n] of now) {
    if (base.has(path)) continue;
    const key = `${kind(n.mode)} ${n.oid}`;
    added.set(key, [...(added.get(key) ?? []), path]);
  }
  for (const from of deleted.sort()) {
    const b = base.get(from)!;
    const to = added.get(`${kind(b.mode)} ${b.oid}`)?.shift();
    changed.push(to !== undefined ? { path: to, status: 'renamed', from, untracked: !indexed.has(to) } : { path: from, status: 'deleted', untracked: false });
  }
  for (const paths of added.values()) for (const path of paths) changed.push({ path, status: 'added', untracked: !indexed.has(path) });
  for (const path of untrackedRepos) changed.push({ path, status: 'added', untracked: true });
  return changed.sort(byPath);
}

// ---------------------------------------------------------------------------------------------
// Pins
// ---------------------------------------------------------------------------------------------

async function pinViolations(repo: string, pins: Pin[], protectedGlobs: string[]): Promise<Violation[]> {
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

/**
 * Existing files and symlinks matching a protected glob or ratchet.json, ignored ones included,
 * inside nested repositories too. Only directories a protected glob can reach are read.
 */
async function protectedPaths(repo: string, protectedGlobs: string[]): Promise<string[]> {
  const globs = [...protectedGlobs, CONFIG_PATH];
  const { files } = await walk(repo, { enter: globDirMatcher(globs), take: globMatcher(globs), intoNested: true });
  return files;
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
async function symlinkEscape(repo: string, realRepo: string, path: string, isEditable: PathMatcher, isProtected: PathMatcher): Promise<string | null> {
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

/** Paths from git are relative to the top level; checking from a subdirectory would miss changes elsewhere. */
async function assertTopLevel(git: Git): Promise<void> {
  const prefix = (await runGit(git.repo, ['rev-parse', '--show-prefix'])).stdout.toString('utf8').trim();
  if (prefix !== '') throw notTopLevel(git.repo, prefix);
}

/** The commit `ref` names, checked in the same process as the top level. */
async function topLevelCommit(git: Git, ref: string): Promise<string> {
  // --end-of-options keeps a ref starting with "-" from being read as an option.
  const r = await runGit(git.repo, ['rev-parse', '--show-prefix', '--end-of-options', `${ref}^{commit}`], { allowFail: true });
  // Without --verify, this git echoes "--end-of-options" between the two answers.
  const lines = r.stdout.toString('utf8').split('\n');
  const prefix = lines[0] ?? '';
  const sha = lines.filter(Boolean).pop() ?? '';
  if (prefix !== '') throw notTopLevel(git.repo, prefix);
  if (r.code !== 0 || !/^[0-9a-f]{40,64}$/.test(sha)) {
    if (/not a git repository/i.test(r.stderr)) throw new RatchetError('git_state', `${git.repo} is not a git work tree.`, 'Point ratchet at your repository root.');
    throw new RatchetError('git_state', `${ref} is not a commit in ${git.repo}.`, 'Pass the commit the experiment started from (the session branch head).', { ref });
  }
  return sha;
}

function notTopLevel(repo: string, prefix: string): RatchetError {
  return new RatchetError('git_state', `${repo} is a subdirectory of a git repository (${prefix}).`, 'Point ratchet at the repository root, where .git lives.', { prefix });
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
