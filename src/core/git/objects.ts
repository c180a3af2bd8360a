// The object store without a process per question: one long-lived `cat-file --batch-command` reads,
// and blobs, trees and commits are written as loose objects by ratchet itself. Process creation
// costs 10–20 ms on a loaded machine, and an iteration asks dozens of questions.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, writeFileSync, chmodSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import { RatchetError } from '../errors.js';
import { hold } from './refs.js';
import { gitEnv, HARDENING, runGit, type TreeEntry } from './run.js';

export type ObjectType = 'blob' | 'tree' | 'commit' | 'tag';

export interface ObjectInfo {
  oid: string;
  type: ObjectType;
  size: number;
}

interface Layout {
  objectsDir: string;
  headFile: string;
  /** Where refs live, shared by every worktree. */
  commonDir: string;
  format: 'sha1' | 'sha256';
  /** This worktree's index. */
  indexFile: string;
}

/** Questions to one `git cat-file --batch-command`, answered in order; restarted if it dies. */
class BatchReader {
  private child: ChildProcessWithoutNullStreams | null = null;
  private buffered: Buffer = Buffer.alloc(0);
  private waiting: (() => void) | null = null;
  private ended = false;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly repo: string) {}

  private start(): ChildProcessWithoutNullStreams {
    const child = spawn('git', [...HARDENING, 'cat-file', '--batch-command'], { cwd: this.repo, env: gitEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
    this.buffered = Buffer.alloc(0);
    this.ended = false;
    child.stdout.on('data', (c: Buffer) => {
      this.buffered = this.buffered.length ? Buffer.concat([this.buffered, c]) : c;
      this.waiting?.();
    });
    const gone = () => {
      this.ended = true;
      if (this.child === child) this.child = null;
      this.waiting?.();
    };
    child.on('close', gone);
    child.on('error', gone);
    child.stdin.on('error', () => {});
    child.stderr.resume();
    hold(child, false);
    return child;
  }

  /** Sends one command and reads its answer: the header, and for `contents` the bytes. */
  ask(command: 'info' | 'contents', object: string): Promise<{ info: ObjectInfo | null; data: Buffer | null }> {
    const run = this.queue.then(() => this.exchange(command, object));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async exchange(command: 'info' | 'contents', object: string): Promise<{ info: ObjectInfo | null; data: Buffer | null }> {
    // A newline would end the command early and desynchronise every later answer.
    if (object.includes('\n') || object.includes('\0') || !object) return { info: null, data: null };
    const child = (this.child ??= this.start());
    hold(child, true);
    try {
      return await this.answer(child, command, object);
    } finally {
      hold(child, false);
    }
  }

  private async answer(child: ChildProcessWithoutNullStreams, command: 'info' | 'contents', object: string): Promise<{ info: ObjectInfo | null; data: Buffer | null }> {
    child.stdin.write(`${command} ${object}\n`);
    const header = (await this.take(-1)).toString('utf8');
    const m = /^([0-9a-f]{40,64}) (blob|tree|commit|tag) (\d+)$/.exec(header);
    if (!m) {
      if (/ (missing|ambiguous)$/.test(header)) return { info: null, data: null };
      throw new RatchetError('git_state', `git cat-file answered unexpectedly: ${header.slice(0, 200) || 'nothing (it exited)'}`, 'Check that the repo is a healthy git work tree (`git fsck` there), then call the tool again.');
    }
    const info = { oid: m[1]!, type: m[2] as ObjectType, size: Number(m[3]) };
    if (command === 'info') return { info, data: null };
    const data = await this.take(info.size + 1); // the content and its trailing newline
    return { info, data: data.subarray(0, info.size) };
  }

  /** n bytes, or with n = -1 one line without its newline. */
  private async take(n: number): Promise<Buffer> {
    for (;;) {
      const end = n < 0 ? this.buffered.indexOf(10) : this.buffered.length >= n ? n : -1;
      if (end >= 0) {
        const out = this.buffered.subarray(0, end);
        this.buffered = this.buffered.subarray(n < 0 ? end + 1 : end);
        return out;
      }
      if (this.ended) {
        this.child = null;
        return Buffer.alloc(0);
      }
      await new Promise<void>((resolve) => (this.waiting = resolve));
      this.waiting = null;
    }
  }

  close(): void {
    this.child?.stdin.end();
    this.child = null;
  }
}

export class ObjectStore {
  private layout: Promise<Layout> | null = null;
  private readonly reader: BatchReader;

  constructor(private readonly repo: string) {
    this.reader = new BatchReader(repo);
  }

  /** Where objects and HEAD live (worktrees included), asked of git once. */
  where(): Promise<Layout> {
    this.layout ??= (async () => {
      const out = (await runGit(this.repo, ['rev-parse', '--git-path', 'objects', '--git-path', 'HEAD', '--git-common-dir', '--show-object-format', '--git-path', 'index'])).stdout.toString('utf8').split('\n');
      const abs = (p: string) => (p.startsWith('/') ? p : join(this.repo, p));
      return { objectsDir: abs(out[0]!), headFile: abs(out[1]!), commonDir: abs(out[2]!), format: out[3] === 'sha256' ? 'sha256' : 'sha1', indexFile: abs(out[4]!) };
    })();
    this.layout.catch(() => (this.layout = null));
    return this.layout;
  }

  async info(object: string): Promise<ObjectInfo | null> {
    return (await this.reader.ask('info', object)).info;
  }

  async contents(object: string): Promise<{ info: ObjectInfo; data: Buffer } | null> {
    const r = await this.reader.ask('contents', object);
    return r.info && r.data ? { info: r.info, data: r.data } : null;
  }

  /** A tree's entries by name (one level), parsed from git's binary tree format. */
  async readTree(oid: string): Promise<Map<string, TreeEntry>> {
    const obj = await this.contents(oid);
    if (!obj || obj.info.type !== 'tree') throw new RatchetError('git_state', `Object ${oid} is not a tree.`, 'Run `git fsck` in the repo to find damaged objects.');
    const hashBytes = obj.info.oid.length / 2;
    const entries = new Map<string, TreeEntry>();
    const d = obj.data;
    for (let i = 0; i < d.length; ) {
      const space = d.indexOf(32, i);
      const nul = d.indexOf(0, space);
      const mode = d.subarray(i, space).toString('latin1');
      const name = d.subarray(space + 1, nul).toString('utf8');
      const oidHex = d.subarray(nul + 1, nul + 1 + hashBytes).toString('hex');
      entries.set(name, { mode: mode === '40000' ? '040000' : mode, oid: oidHex });
      i = nul + 1 + hashBytes;
    }
    return entries;
  }

  /** The id git gives `content` as an object of `type`, and writes it as a loose object unless it exists. */
  async write(type: ObjectType, content: Buffer, opts: { store?: boolean } = {}): Promise<string> {
    const { objectsDir, format } = await this.where();
    const header = Buffer.from(`${type} ${content.length}\0`);
    const oid = createHash(format === 'sha256' ? 'sha256' : 'sha1').update(header).update(content).digest('hex');
    if (opts.store === false) return oid;
    const dir = join(objectsDir, oid.slice(0, 2));
    const file = join(dir, oid.slice(2));
    if (existsSync(file) || (await this.info(oid))) return oid;
    mkdirSync(dir, { recursive: true });
    const tmp = join(dir, `tmp_obj_ratchet_${process.pid}_${randomBytes(6).toString('hex')}`);
    try {
      writeFileSync(tmp, deflateSync(Buffer.concat([header, content])), { mode: 0o444 });
      chmodSync(tmp, 0o444);
      renameSync(tmp, file);
    } finally {
      rmSync(tmp, { force: true });
    }
    return oid;
  }

  close(): void {
    this.reader.close();
  }
}

/** git's order of tree entries: by name, a directory compared as if its name ended in "/". */
export function treeOrder(a: [string, TreeEntry], b: [string, TreeEntry]): number {
  const key = ([name, e]: [string, TreeEntry]) => Buffer.from(e.mode === '040000' ? `${name}/` : name, 'utf8');
  return Buffer.compare(key(a), key(b));
}

/** One tree object's bytes from its entries. */
export function encodeTree(entries: [string, TreeEntry][]): Buffer {
  const parts: Buffer[] = [];
  for (const [name, e] of [...entries].sort(treeOrder)) {
    parts.push(Buffer.from(`${e.mode === '040000' ? '40000' : e.mode} ${name}\0`, 'utf8'), Buffer.from(e.oid, 'hex'));
  }
  return Buffer.concat(parts);
}
