// Writing blobs from the object store into files: exact committed bytes and modes, every object checked against its id.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, fchmodSync, openSync, writeSync } from 'node:fs';
import { lstat, mkdir, rename, rm, rmdir, symlink } from 'node:fs/promises';
import { dirname, isAbsolute, join } from 'node:path';
import { RatchetError } from '../errors.js';
import { gitEnv, HARDENING, type TreeEntry } from './run.js';

/**
 * Streams blobs from one `git cat-file --batch` process into files under `root`. Symlinks are
 * created last, so no file is ever written through a link this call made. With `replace`, an
 * existing file, link or directory at a path is replaced (written beside it, then renamed over).
 */
export async function writeBlobs(repo: string, root: string, entries: [string, TreeEntry][], opts: { replace: boolean }): Promise<void> {
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
  await catBlobs(
    repo,
    entries.map(([, e]) => e.oid),
    async (i, content) => {
      const [path, e] = entries[i]!;
      if (e.mode === '120000') {
        links.push({ path, target: await content.all() });
        return;
      }
      await ensureDir(path);
      const abs = join(root, path);
      const dest = opts.replace ? join(dirname(abs), `.ratchet-write-${process.pid}-${randomBytes(6).toString('hex')}`) : abs;
      const mode = e.mode === '100755' ? 0o755 : 0o644;
      // Synchronous writes: a workspace is hundreds of small files, and a round trip to the thread pool per call costs more than the write.
      const fd = openSync(dest, 'wx', mode);
      try {
        for await (const chunk of content.chunks()) writeSync(fd, chunk);
        fchmodSync(fd, mode);
      } finally {
        closeSync(fd);
      }
      if (opts.replace) await replaceWith(dest, abs);
    },
  );
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

/**
 * Feeds object ids to one `cat-file --batch` and hands each object's bytes to `onBlob` in order,
 * verifying every object's content against its id.
 */
async function catBlobs(repo: string, oids: string[], onBlob: (i: number, content: BlobContent) => Promise<void>): Promise<void> {
  const child = spawn('git', [...HARDENING, 'cat-file', '--batch', '--buffer'], { cwd: repo, env: gitEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
  const stderr: Buffer[] = [];
  child.stderr.on('data', (c: Buffer) => stderr.push(c));
  const exited = new Promise<number>((res) => child.on('close', (code) => res(code ?? 128)));
  child.on('error', () => {}); // the exit code below reports it
  child.stdin.on('error', () => {});
  child.stdin.end(oids.map((o) => `${o}\n`).join(''));
  const reader = new ByteReader(child.stdout);
  try {
    for (let i = 0; i < oids.length; i++) {
      const header = (await reader.line()).toString('utf8');
      const m = /^([0-9a-f]+) (\w+) (\d+)$/.exec(header);
      if (!m || m[2] !== 'blob') {
        throw new RatchetError('git_state', `git cat-file could not read blob ${oids[i]}: ${header || stderr.join('')}`, 'Run `git fsck` in the repo to find damaged objects.');
      }
      const size = Number(m[3]);
      const hash = createHash(oids[i]!.length === 64 ? 'sha256' : 'sha1').update(`blob ${size}\0`);
      let consumed = false;
      const content: BlobContent = {
        chunks: async function* () {
          consumed = true;
          for await (const chunk of reader.take(size)) {
            hash.update(chunk);
            yield chunk;
          }
        },
        all: async () => {
          const parts: Buffer[] = [];
          for await (const chunk of content.chunks()) parts.push(chunk);
          return Buffer.concat(parts);
        },
      };
      await onBlob(i, content);
      if (!consumed) for await (const _ of content.chunks());
      await reader.take(1).next(); // the newline after each object
      if (hash.digest('hex') !== oids[i]) {
        throw new RatchetError('git_state', `Object ${oids[i]} does not match its content: the object store was tampered with or is damaged.`, 'Run `git fsck` in the repo, and do not keep any result measured from it.');
      }
    }
  } finally {
    child.stdout.destroy();
    if (child.exitCode === null) child.kill();
    await exited;
  }
}

interface BlobContent {
  chunks(): AsyncGenerator<Buffer>;
  all(): Promise<Buffer>;
}

/** Pull-based reads from a stream: whole lines, or exactly n bytes as chunks. */
class ByteReader {
  private buffered: Buffer[] = [];
  private readonly iterator: AsyncIterator<Buffer>;
  private ended = false;

  constructor(stream: NodeJS.ReadableStream) {
    this.iterator = (stream as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  }

  private async fill(): Promise<boolean> {
    if (this.ended) return false;
    const next = await this.iterator.next();
    if (next.done) {
      this.ended = true;
      return false;
    }
    this.buffered.push(next.value);
    return true;
  }

  async line(): Promise<Buffer> {
    for (;;) {
      const joined = this.buffered.length > 1 ? Buffer.concat(this.buffered) : (this.buffered[0] ?? Buffer.alloc(0));
      this.buffered = joined.length ? [joined] : [];
      const nl = joined.indexOf(10);
      if (nl >= 0) {
        this.buffered = nl + 1 < joined.length ? [joined.subarray(nl + 1)] : [];
        return joined.subarray(0, nl);
      }
      if (!(await this.fill())) return joined;
    }
  }

  async *take(n: number): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0) {
      if (!this.buffered.length && !(await this.fill())) throw new Error('git cat-file ended early');
      const head = this.buffered[0]!;
      if (head.length <= left) {
        this.buffered.shift();
        left -= head.length;
        yield head;
      } else {
        this.buffered[0] = head.subarray(left);
        yield head.subarray(0, left);
        left = 0;
      }
    }
  }
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
