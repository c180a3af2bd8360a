// The runner's building blocks on their own: /proc parsing, token matching, cgroup discovery, command checks, log tail.
import { afterAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cgroupsFrom } from '../../../src/core/runner/cgroup-detect.js';
import { spawnProblem } from '../../../src/core/runner/child-command.js';
import { readLogTail } from '../../../src/core/runner/log-tail.js';
import { carriesToken, readStat, rssBytes, tokenTree } from '../../../src/core/runner/process-tree.js';
import { isValidToken } from '../../../src/core/runner/run-spec.js';
import { isDead, newToken, pidFrom, removeTempDirs, tempDir, waitFor } from './harness.js';

const children: ChildProcess[] = [];
function start(file: string, args: string[], env: Record<string, string> = {}, cwd?: string): ChildProcess {
  const child = spawn(file, args, { env: { ...process.env, ...env }, stdio: 'ignore', cwd });
  children.push(child);
  return child;
}
afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
  removeTempDirs();
});

describe('process-tree', () => {
  it('parses /proc/<pid>/stat even when the command name holds spaces and parentheses', async () => {
    const dir = tempDir();
    const odd = join(dir, 'a) b (c');
    copyFileSync('/bin/sleep', odd);
    chmodSync(odd, 0o755);
    const child = start(odd, ['30']);
    await waitFor(() => readStat(child.pid!)?.state === 'S', 5000, 'the sleeper to sleep');
    const stat = readStat(child.pid!)!;
    expect(stat.ppid).toBe(process.pid);
    expect(stat.startTime).toMatch(/^\d+$/);
    expect(rssBytes(child.pid!)).toBeGreaterThan(0);
    child.kill('SIGKILL');
    await waitFor(() => isDead(child.pid!), 5000, 'the sleeper to die');
    expect(readStat(child.pid!)?.state ?? 'gone').not.toBe('S');
  });

  it('matches the run token exactly, not as a prefix', async () => {
    const token = newToken();
    const child = start('/bin/sleep', ['30'], { RATCHET_RUN_TOKEN: token });
    await waitFor(() => carriesToken(child.pid!, token), 5000, 'the token to show in environ');
    expect(carriesToken(child.pid!, token.slice(0, -1))).toBe(false);
    expect(carriesToken(child.pid!, `${token}x`)).toBe(false);
    expect(carriesToken(process.pid, token)).toBe(false);
  });

  it('finds token carriers and their descendants that scrubbed the environment', async () => {
    const dir = tempDir();
    const token = newToken();
    const parent = start('/bin/sh', ['-c', 'env -i /bin/sleep 30 & echo $! > scrubbed.pid; wait'], { RATCHET_RUN_TOKEN: token }, dir);
    const scrubbed = await pidFrom(dir, 'scrubbed.pid');
    const tree = tokenTree(token, new Set([process.pid])).map((s) => s.pid);
    expect(tree).toContain(parent.pid);
    expect(tree).toContain(scrubbed);
    expect(carriesToken(scrubbed, token)).toBe(false);
    expect(tokenTree(token, new Set([parent.pid!])).map((s) => s.pid)).not.toContain(parent.pid);
  });
});

describe('cgroup discovery', () => {
  const mountinfo = (...lines: string[]): string => lines.join('\n');
  const any = (): boolean => true;

  it('finds the own cgroup on a pure cgroup v2 machine', () => {
    const found = cgroupsFrom(
      '0::/user.slice/user-1000.slice/session-2.scope\n',
      mountinfo('35 24 0:30 / /sys/fs/cgroup rw,nosuid shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot'),
      any,
    );
    expect(found).toEqual({ v2: '/sys/fs/cgroup/user.slice/user-1000.slice/session-2.scope', v1Memory: null });
  });

  it('finds both halves of a hybrid machine (v1 memory, v2 unified)', () => {
    const found = cgroupsFrom(
      '4:memory:/process_api/abc\n3:cpuset:/\n0::/\n',
      mountinfo(
        '30 25 0:26 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw',
        '31 25 0:27 / /sys/fs/cgroup/cpuset rw - cgroup cgroup rw,cpuset',
        '32 25 0:28 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory',
      ),
      any,
    );
    expect(found).toEqual({ v2: '/sys/fs/cgroup/unified', v1Memory: '/sys/fs/cgroup/memory/process_api/abc' });
  });

  it('maps the path through a mount that exposes only a subtree, and decodes escaped mount points', () => {
    const found = cgroupsFrom(
      '0::/docker/abc/inner\n',
      mountinfo('40 30 0:30 /docker/abc /sys/fs/my\\040cgroup ro - cgroup2 cgroup2 rw'),
      any,
    );
    expect(found.v2).toBe('/sys/fs/my cgroup/inner');
  });

  it('finds nothing when no mount holds our path or the directory is missing', () => {
    const info = mountinfo('40 30 0:30 /docker/other /sys/fs/cgroup ro - cgroup2 cgroup2 rw');
    expect(cgroupsFrom('0::/docker/abc\n', info, any)).toEqual({ v2: null, v1Memory: null });
    expect(cgroupsFrom('0::/x\n', mountinfo('1 0 0:1 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw'), () => false).v2).toBeNull();
  });
});

describe('command checks', () => {
  it('tells a missing program, a non-executable file, and a missing cwd apart', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'script.sh'), '#!/bin/sh\necho hi\n');
    const env = { PATH: '/usr/bin:/bin' };
    expect(spawnProblem(['./script.sh'], dir, env)).toMatch(/permission denied/);
    chmodSync(join(dir, 'script.sh'), 0o755);
    expect(spawnProblem(['./script.sh'], dir, env)).toBeNull();
    expect(spawnProblem(['sh', '-c', 'true'], dir, env)).toBeNull();
    expect(spawnProblem(['no-such-program-x1'], dir, env)).toMatch(/command not found/);
    expect(spawnProblem(['sh'], dir, { PATH: dir })).toMatch(/command not found/);
    expect(spawnProblem(['sh'], join(dir, 'missing'), env)).toMatch(/working directory/);
  });

  it('accepts only tokens safe for cgroup names and environ matching', () => {
    expect(isValidToken('12-run-a1b2c3')).toBe(true);
    for (const bad of ['', '..', 'a/b', 'a b', 'a=b', 'x'.repeat(129)]) expect(isValidToken(bad), bad).toBe(false);
  });
});

describe('readLogTail', () => {
  it('returns the last lines, without a trailing empty line', () => {
    const path = join(tempDir(), 'log');
    writeFileSync(path, 'one\ntwo\r\nthree\n');
    expect(readLogTail(path, 2)).toEqual(['two', 'three']);
    expect(readLogTail(path, 10)).toEqual(['one', 'two', 'three']);
    expect(readLogTail(join(tempDir(), 'missing'), 5)).toEqual([]);
  });

  it('reads only the end of a large log and drops the cut first line', () => {
    const path = join(tempDir(), 'log');
    const line = (i: number): string => `${String(i).padStart(6, '0')} ${'x'.repeat(993)}`; // 1000 bytes + newline
    writeFileSync(path, Array.from({ length: 2000 }, (_, i) => `${line(i)}\n`).join(''));
    const all = readLogTail(path, 100_000);
    // 256 KiB of 1001-byte lines: 261 whole lines fit after the cut one is dropped.
    expect(all.length).toBe(261);
    expect(all.every((l) => /^\d{6} x{993}$/.test(l))).toBe(true);
    expect(all.at(-1)).toBe(line(1999));
    expect(readLogTail(path, 3)).toEqual([line(1997), line(1998), line(1999)]);
  });

  it('keeps the first whole line when the 256 KiB window starts exactly on a line', () => {
    const path = join(tempDir(), 'log');
    const line = (i: number): string => `${String(i).padStart(6, '0')}${'y'.repeat(1017)}`; // 1024 bytes with newline
    writeFileSync(path, Array.from({ length: 300 }, (_, i) => `${line(i)}\n`).join(''));
    const all = readLogTail(path, 100_000);
    expect(all.length).toBe(256);
    expect(all[0]).toBe(line(44));
  });
});
