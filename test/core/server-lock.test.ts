// The server lock, held by the OS for a process's lifetime: deleting the lock file does not let a second server in.
import { describe, it, expect, afterEach } from 'vitest';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { acquireServerLock, acquireFileLock, lockSocketName, releaseServerLock, type LockHolder } from '../../src/core/server-lock.js';

const MODULE = new URL('../../src/core/server-lock.ts', import.meta.url).pathname;
const children: ChildProcess[] = [];

afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

function gitRepo(): string {
  const repo = mkdtempSync(join(tmpdir(), 'ratchet-lock-'));
  execFileSync('git', ['init', '-q', repo]);
  return repo;
}

/** A separate process that takes the lock, prints what it got as one JSON line, and holds on until killed. */
function server(repo: string): { child: ChildProcess; result: Promise<LockHolder | null> } {
  const script = `
    import { acquireServerLock } from ${JSON.stringify(MODULE)};
    const holder = await acquireServerLock(${JSON.stringify(repo)});
    console.log(JSON.stringify({ holder }));
    setInterval(() => {}, 1000);
  `;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  const result = new Promise<LockHolder | null>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', (line) => resolve((JSON.parse(line) as { holder: LockHolder | null }).holder));
    child.once('exit', (code) => reject(new Error(`lock child exited early with ${code}`)));
  });
  return { child, result };
}

function exited(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', () => resolve())));
}

describe.runIf(process.platform === 'linux')('server lock across processes', () => {
  it('refuses a second server after the lock file is deleted, names the holder, and frees the lock when it dies', async () => {
    const repo = gitRepo();
    const lockFile = join(repo, '.ratchet', 'server.lock');
    const a = server(repo);
    expect(await a.result).toBeNull();
    expect(JSON.parse(readFileSync(lockFile, 'utf8')).pid).toBe(a.child.pid);

    rmSync(join(repo, '.ratchet'), { recursive: true, force: true }); // what `rm -rf .ratchet` in a run does
    const b = server(repo);
    expect(await b.result).toMatchObject({ pid: a.child.pid });

    a.child.kill('SIGKILL'); // no cleanup at all: the kernel frees the socket
    await exited(a.child);
    const c = server(repo);
    expect(await c.result).toBeNull();
  });

  it('one repo reached through a symlink is still one lock', async () => {
    const repo = gitRepo();
    const link = join(mkdtempSync(join(tmpdir(), 'ratchet-link-')), 'repo');
    symlinkSync(repo, link);
    expect(lockSocketName(link)).toBe(lockSocketName(repo));
    expect(lockSocketName(gitRepo())).not.toBe(lockSocketName(repo));
    const a = server(repo);
    expect(await a.result).toBeNull();
    expect(await server(link).result).toMatchObject({ pid: a.child.pid });
  });
});

describe.runIf(process.platform === 'linux')('server lock in one process', () => {
  it('is re-entrant for this process, and released only when its last user lets go', async () => {
    const repo = gitRepo();
    const first = join(repo, '.ratchet', 'server.lock');
    const second = join(repo, '.ratchet', 'other.lock');
    expect(await acquireServerLock(repo)).toBeNull();
    expect(await acquireServerLock(repo, second)).toBeNull();
    expect(JSON.parse(readFileSync(first, 'utf8')).pid).toBe(process.pid);
    releaseServerLock(repo);
    expect(existsSync(first)).toBe(false);
    expect(await server(repo).result).toMatchObject({ pid: process.pid });
    releaseServerLock(repo, second);
    expect(await server(repo).result).toBeNull();
  });
});

describe('file lock (platforms without abstract sockets)', () => {
  it('refuses while a live process holds the file and takes over from a dead one', () => {
    const path = join(mkdtempSync(join(tmpdir(), 'ratchet-filelock-')), 'server.lock');
    const live = spawn('sleep', ['30']);
    children.push(live);
    writeFileSync(path, JSON.stringify({ pid: live.pid, since: 'then' }));
    expect(acquireFileLock(path)).toMatchObject({ pid: live.pid });
    writeFileSync(path, JSON.stringify({ pid: 2 ** 22 + 1, since: 'then' })); // above pid_max: never alive
    expect(acquireFileLock(path)).toBeNull();
    expect(JSON.parse(readFileSync(path, 'utf8')).pid).toBe(process.pid);
  });
});
