// Writing blobs from the object store into files: exact committed bytes and modes, every object checked against its id.
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, fchmodSync, openSync, writeSync } from 'node:fs';
import { lstat, mkdir, rename, rm, rmdir, symlink } from 'node:fs/promises';
import { dirname, isAbsolute, join } from 'node:path';
import { RatchetError } from '../errors.js';
import type { ObjectStore } from './objects.js';
import type { TreeEntry } from './run.js';

/**
 * Writes blobs, read through the store's long-lived reader one at a time, into files under `root`.
 * Symlinks are created last, so no file is ever written through a link this call made. With
 * `replace`, an existing file, link or directory at a path is replaced (written beside it, then
 * renamed over).
 */
export async function writeBlobs(objects: ObjectStore, root: string, entries: [string, TreeEntry][], opts: { replace: boolean }): Promise<void> {
  if (!entries.length) return;
  for (const [path] of entries) assertSafePath(path);
  const links: { path: string; target: Buffer }[] = [];
  const dirs = new Set<string>();
  const ensureDir = async (path: string) => {
    const parent = dirname(path);
    if (parent === '.' || dirs.has(parent)) return;
    if (opts.replace) await replaceNonDirectoryAncestors(root, parent);
    await mkdir(join(root, parent), { recursive: true });
    dirs.add(parent);
  };
  for (const [path, e] of entries) {
    const content = await verifiedBlob(objects, e.oid);
    if (e.mode === '120000') {
      links.push({ path, target: content });
      continue;
    }
    await ensureDir(path);
    const abs = join(root, path);
    const dest = opts.replace ? join(dirname(abs), `.ratchet-write-${process.pid}-${randomBytes(6).toString('hex')}`) : abs;
    const mode = e.mode === '100755' ? 0o755 : 0o644;
    // Synchronous writes: a workspace is hundreds of small files, and a round trip to the thread pool per call costs more than the write.
    const fd = openSync(dest, 'wx', mode);
    try {
      writeSync(fd, content);
      fchmodSync(fd, mode);
    } finally {
      closeSync(fd);
    }
    if (opts.replace) await replaceWith(dest, abs);
  }
  for (const { path, target } of links) {
    await ensureDir(path);
    const abs = join(root, path);
    if (!opts.replace) {
      await symlink(target.toString('utf8'), abs);
      continue;
    }
    const dest = join(dirname(abs), `.ratchet-link-${process.pid}-${randomBytes(6).toString('hex')}`);
    await symlink(target.toString('utf8'), dest);
    await replaceWith(dest, abs);
  }
}

/** A blob's bytes, checked against its id: an object file rewritten on disk cannot slip into a workspace. */
async function verifiedBlob(objects: ObjectStore, oid: string): Promise<Buffer> {
  const obj = await objects.contents(oid);
  if (!obj || obj.info.type !== 'blob') {
    throw new RatchetError('git_state', `git cat-file could not read blob ${oid}.`, 'Run `git fsck` in the repo to find damaged objects.');
  }
  const hash = createHash(oid.length === 64 ? 'sha256' : 'sha1').update(`blob ${obj.data.length}\0`).update(obj.data).digest('hex');
  if (hash !== oid) {
    throw new RatchetError('git_state', `Object ${oid} does not match its content: the object store was tampered with or is damaged.`, 'Run `git fsck` in the repo, and do not keep any result measured from it.');
  }
  return obj.data;
}

/** A path from a tree that would write outside the target directory, or into a .git, is refused. */
function assertSafePath(path: string): void {
  const bad = path.split('/').some((part) => part === '' || part === '.' || part === '..' || part.toLowerCase() === '.git');
  if (bad || isAbsolute(path)) {
    throw new RatchetError('git_state', `Refusing to write ${JSON.stringify(path)}: the path leaves the directory or enters .git.`, 'The commit was crafted by hand; do not use it.');
  }
}

/** Each ancestor of `dir` under `root` that is a symlink or a file is removed, so the directory can be made there. */
async function replaceNonDirectoryAncestors(root: string, dir: string): Promise<void> {
  const parts = dir.split('/');
  for (let i = 1; i <= parts.length; i++) {
    const abs = join(root, ...parts.slice(0, i));
    const st = await lstat(abs).catch(() => null);
    if (st === null) return;
    if (!st.isDirectory()) await rm(abs, { force: true });
  }
}

/** Renames `source` over `dest`; a directory standing at `dest` is removed first (rename cannot replace it). */
async function replaceWith(source: string, dest: string): Promise<void> {
  if ((await lstat(dest).catch(() => null))?.isDirectory()) await rm(dest, { recursive: true, force: true });
  await rename(source, dest);
}

/** Directories left empty by deleting `paths` are removed too, as git does. */
export async function removeEmptyParents(root: string, paths: string[]): Promise<void> {
  const dirs = new Set<string>();
  for (const p of paths) for (let d = dirname(p); d !== '.'; d = dirname(d)) dirs.add(d);
  for (const d of [...dirs].sort((a, b) => b.length - a.length)) await rmdir(join(root, d)).catch(() => {});
}
