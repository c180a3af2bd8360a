// One ratchet server drives a repo for its whole lifetime; a second one (another agent window) may only read.
// On Linux the lock is an abstract Unix socket the kernel frees only when the holder dies: no file to delete.
import { createHash } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { RatchetError } from './errors.js';

export interface LockHolder {
  pid: number;
  since: string;
  /** Kernel start time of the holder, so a pid reused after a reboot is not mistaken for it. */
  startTime?: string;
  /** The repo the holder serves, where that tells people more than a pid (a device claimed by another repo's server). */
  repo?: string;
}

/** How long a second server waits for the holder to say who it is; a stopped holder still holds the lock. */
const ASK_TIMEOUT_MS = 2000;

/** Listening sockets of this process, by socket name, with the lock files they stand for. */
const held = new Map<string, { server: Server; lockFiles: Set<string> }>();
const socketOfLockFile = new Map<string, string>();

export function defaultLockFile(repo: string): string {
  return join(repo, '.ratchet', 'server.lock');
}

/**
 * Takes the repo's server lock for the life of this process. Returns null when this process holds it,
 * else the live holder. `lockFile` is written as a hint for people; on Linux deleting it changes
 * nothing, because the lock is the abstract socket named after the repo's git directory.
 */
export async function acquireServerLock(repo: string, lockFile = defaultLockFile(repo)): Promise<LockHolder | null> {
  if (process.platform !== 'linux') return acquireFileLock(lockFile);
  const name = lockSocketName(repo);
  const mine = held.get(name);
  if (mine) {
    mine.lockFiles.add(lockFile);
    socketOfLockFile.set(lockFile, name);
    return null;
  }
  const me = self();
  for (let attempt = 0; attempt < 3; attempt++) {
    const server = await listen(name, me);
    if (server) {
      held.set(name, { server, lockFiles: new Set([lockFile]) });
      socketOfLockFile.set(lockFile, name);
      writeHint(lockFile, me);
      return null;
    }
    const holder = await askHolder(name, lockFile);
    if (holder) return holder;
    // The holder exited between our listen and our connect: try again.
  }
  throw new RatchetError(
    'locked',
    'Could not take the server lock: another ratchet server keeps starting and stopping on this repo.',
    'Stop the other ratchet server for this repo, then restart this one.',
  );
}

/** The live server that holds the repo's lock, or null when none does: asked without taking the lock. */
export async function serverHolding(repo: string, lockFile = defaultLockFile(repo)): Promise<LockHolder | null> {
  if (process.platform !== 'linux') {
    let holder: LockHolder | null = null;
    try {
      holder = parseHolder(readFileSync(lockFile, 'utf8'));
    } catch {
      return null; // no lock file: no server
    }
    return holder && holderAlive(holder) ? holder : null;
  }
  return askHolder(lockSocketName(repo), lockFile);
}

/** Gives the lock up (the OS does the same when the process dies) and removes the hint file if it is ours. */
export function releaseServerLock(repo: string, lockFile = defaultLockFile(repo)): void {
  const name = socketOfLockFile.get(lockFile);
  socketOfLockFile.delete(lockFile);
  const entry = name === undefined ? undefined : held.get(name);
  if (name !== undefined && entry && entry.lockFiles.delete(lockFile) && entry.lockFiles.size === 0) {
    entry.server.close();
    held.delete(name);
  }
  try {
    const holder = JSON.parse(readFileSync(lockFile, 'utf8')) as LockHolder;
    if (holder.pid === process.pid) rmSync(lockFile, { force: true });
  } catch {
    // already gone
  }
}

/** "\0ratchet-<sha256 of the real git directory>": one name per repo, whatever path or symlink reached it. */
export function lockSocketName(repo: string): string {
  return `\0ratchet-${createHash('sha256').update(gitDirOf(repo)).digest('hex')}`;
}

function gitDirOf(repo: string): string {
  const dotGit = join(repo, '.git');
  try {
    if (statSync(dotGit).isDirectory()) return realpathSync(dotGit);
    // A worktree or submodule: ".git" is a file saying "gitdir: <path>".
    const pointer = /^gitdir:\s*(.+?)\s*$/m.exec(readFileSync(dotGit, 'utf8'))?.[1];
    if (pointer) return realpathSync(resolve(repo, pointer));
  } catch {
    // no git directory yet: the repo's own real path still names it uniquely
  }
  return realpathSync(repo);
}

/** A listening server on `name`, or null when another process already listens there. */
export function listen(name: string, me: LockHolder): Promise<Server | null> {
  return new Promise((resolveListen, reject) => {
    const server = createServer((socket) => {
      socket.on('error', () => {}); // a client that hangs up early is not our problem
      socket.end(JSON.stringify(me));
    });
    server.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE') resolveListen(null);
      else reject(err);
    });
    server.listen(name, () => {
      server.removeAllListeners('error');
      server.on('error', () => {});
      server.unref(); // the lock must not keep the process alive on its own
      resolveListen(server);
    });
  });
}

/** The holder's own account of itself; null when nobody answers (it just exited). */
export function askHolder(name: string, lockFile: string): Promise<LockHolder | null> {
  return new Promise((resolveAsk) => {
    let text = '';
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    const done = (holder: LockHolder | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolveAsk(holder);
    };
    const socket = connect(name);
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      text += chunk;
      if (text.length > 4096) done(parseHolder(text.slice(0, 4096)) ?? unknownHolder(lockFile));
    });
    socket.on('end', () => done(parseHolder(text) ?? unknownHolder(lockFile)));
    socket.on('error', (err: NodeJS.ErrnoException) => done(err.code === 'ECONNREFUSED' || err.code === 'ENOENT' ? null : unknownHolder(lockFile)));
    // A holder that is alive but not answering (stopped, busy) still holds the lock.
    timer = setTimeout(() => done(unknownHolder(lockFile)), ASK_TIMEOUT_MS);
  });
}

function parseHolder(text: string): LockHolder | null {
  try {
    const value = JSON.parse(text) as Partial<LockHolder>;
    if (typeof value.pid === 'number' && Number.isSafeInteger(value.pid) && typeof value.since === 'string') {
      return {
        pid: value.pid,
        since: value.since,
        ...(typeof value.startTime === 'string' ? { startTime: value.startTime } : {}),
        ...(typeof value.repo === 'string' ? { repo: value.repo.slice(0, 1000) } : {}),
      };
    }
  } catch {
    // not JSON
  }
  return null;
}

/** The hint file's holder, when the socket's holder does not say who it is; pid 0 when even that is gone. */
function unknownHolder(lockFile: string): LockHolder {
  try {
    return parseHolder(readFileSync(lockFile, 'utf8')) ?? { pid: 0, since: 'unknown' };
  } catch {
    return { pid: 0, since: 'unknown' };
  }
}

export function self(): LockHolder {
  const startTime = startTimeOf(process.pid);
  return { pid: process.pid, since: new Date().toISOString(), ...(startTime ? { startTime } : {}) };
}

function writeHint(lockFile: string, me: LockHolder): void {
  try {
    mkdirSync(dirname(lockFile), { recursive: true });
    writeFileSync(lockFile, JSON.stringify(me));
  } catch {
    // only a hint for people; the socket is the lock
  }
}

// ------------------------------------------------------------------ fallback: a file lock where abstract sockets do not exist

function startTimeOf(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

function holderAlive(holder: LockHolder): boolean {
  if (process.platform !== 'linux') {
    try {
      process.kill(holder.pid, 0);
      return true;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === 'EPERM';
    }
  }
  const started = startTimeOf(holder.pid);
  if (started === null) return false;
  return holder.startTime === undefined || holder.startTime === started;
}

/**
 * The lock file alone, replacing one whose holder has died: weaker (deleting the file lets a second
 * server in), used only where the platform has no abstract sockets.
 */
export function acquireFileLock(path: string): LockHolder | null {
  mkdirSync(dirname(path), { recursive: true });
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(path, 'wx');
      writeSync(fd, JSON.stringify(self()));
      closeSync(fd);
      return null;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      let holder: LockHolder | null = null;
      try {
        holder = JSON.parse(readFileSync(path, 'utf8')) as LockHolder;
      } catch {
        holder = null; // half-written or corrupt: treat as stale
      }
      if (holder && holder.pid !== process.pid && holderAlive(holder)) return holder;
      rmSync(path, { force: true });
    }
  }
  throw new Error(`could not take the server lock ${path}`);
}
