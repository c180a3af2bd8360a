// Pins: the hash of every protected file (tracked or ignored), its stored copy, and the check that nothing under a protected glob changed.
import { createHash } from 'node:crypto';
import { createReadStream, constants as fsConstants } from 'node:fs';
import { chmod, copyFile, lstat, mkdir, readFile, readlink, realpath, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { RatchetError } from './errors.js';
import { Git } from './git.js';
import { globDirMatcher, globMatcher } from './globs.js';
import { assertTopLevel, byPath, parentOf, shellQuote, short, toRepoPath } from './repo-paths.js';
import type { Violation } from './surface.js';
import { walk } from './walk.js';
import { mapLimit } from './map-limit.js';

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
 * Pins only, tracked or ignored: each pinned file must still exist with the same content and kind,
 * and no unpinned file may have appeared under a protected glob. Run after an experiment, before
 * the trusted evaluate step reads anything.
 */
export async function verifyPins(repo: string, pins: Pin[], protectedGlobs: string[]): Promise<Violation[]> {
  await assertTopLevel(new Git(repo));
  return pinViolations(repo, pins, protectedGlobs);
}

export async function pinViolations(repo: string, pins: Pin[], protectedGlobs: string[]): Promise<Violation[]> {
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
