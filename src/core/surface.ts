// The edit surface: which paths an experiment may change, found on disk without trusting ignore files, and the candidate built from them.
import { lstat, readlink, realpath, rm } from 'node:fs/promises';
import { dirname, join, posix, resolve } from 'node:path';
import { RatchetError } from './errors.js';
import { Git, type TreeEntry } from './git.js';
import { removeEmptyParents } from './git/write-files.js';
import { globDirMatcher, globMatcher, type PathMatcher } from './globs.js';
import { CONFIG_PATH, pinViolations, type Pin } from './pins.js';
import { byPath, list, shellQuote, toRepoPath, topLevelCommit } from './repo-paths.js';
import { isInternal, walk } from './walk.js';

export { CONFIG_PATH, pinProtected, restorePinned, savePinnedContent, verifyPins, type Pin } from './pins.js';

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

  const [baseTree, { indexed, others }, walked] = await Promise.all([
    git.lsTree(base),
    git.indexAndOthers(),
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

const REASON_TEXT: Record<Violation['reason'], string> = {
  outside_surface: 'changed outside the editable surface',
  protected_changed: 'protected file changed',
  protected_deleted: 'protected file deleted',
  protected_added: 'new file under a protected glob',
  symlink_escapes_surface: 'symlink reaches outside the editable surface',
  nested_repository: 'nested git repository inside the editable surface',
};


/**
 * Puts the edit surface (editable, not protected, not a declared output) of the working tree back
 * at `commit`, writing its blobs' exact bytes, and deletes surface files the commit lacks, ignored
 * ones included; then points the index at `commit`. Files outside the surface are not touched
 * (protected ones are restored from their pins by the caller). Returns the deleted paths.
 */
export async function resetSurface(opts: SurfaceRules & { git: Git; commit: string }): Promise<string[]> {
  const { git, commit } = opts;
  const rules = surfaceRules(opts);
  const target = new Map([...(await git.lsTree(commit))].filter(([path, e]) => rules.inSurface(path) && e.mode !== '160000'));
  const onDisk = await walk(git.repo, { enter: rules.enterable, take: rules.inSurface, intoNested: false });
  const current = await git.hashFiles([...target.keys()], { write: false });
  const stale = [...target].filter(([path, e]) => !sameEntry(current.get(path), e));
  await git.writeFiles(git.repo, stale, { replace: true });
  const removed = onDisk.files.filter((p) => !target.has(p));
  for (const p of removed) await rm(join(git.repo, p), { force: true });
  await removeEmptyParents(git.repo, removed);
  await git.syncIndex(commit);
  return removed;
}

function sameEntry(a: TreeEntry | undefined, b: TreeEntry): boolean {
  return a !== undefined && a.oid === b.oid && a.mode === b.mode;
}
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
