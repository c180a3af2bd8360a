// Cgroup containment for one run: ratchet-<token> under the supervisor's own cgroup, in cgroup2 and/or the v1 memory hierarchy.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { cgroupMountPoints, ownCgroups } from './cgroup-detect.js';
import { sleep } from './process-tree.js';

export interface RunCgroup {
  containment: 'cgroup-v2' | 'cgroup-v1';
  v2Dir: string | null;
  v1MemoryDir: string | null;
  memory: CgroupMemory | null;
}

export interface CgroupMemory {
  file: string;
  method: string;
  /** The file holds current usage, so the supervisor keeps the maximum of its samples. */
  sampled: boolean;
}

export type CgroupOutcome = { ok: true; cgroup: RunCgroup } | { ok: false; reason: string };

export function cgroupName(token: string): string {
  return `ratchet-${token}`;
}

export function createRunCgroup(token: string): CgroupOutcome {
  const own = ownCgroups();
  const reasons: string[] = [];
  const v2Dir = own.v2 ? joinableDir(join(own.v2, cgroupName(token)), reasons) : null;
  const v1MemoryDir = own.v1Memory ? joinableDir(join(own.v1Memory, cgroupName(token)), reasons) : null;
  if (!own.v2 && !own.v1Memory) reasons.push('no writable cgroup2 or cgroup-v1 memory hierarchy is mounted');
  if (!v2Dir && !v1MemoryDir) return { ok: false, reason: reasons.join('; ') };
  return {
    ok: true,
    cgroup: { containment: v2Dir ? 'cgroup-v2' : 'cgroup-v1', v2Dir, v1MemoryDir, memory: memorySource(v2Dir, v1MemoryDir) },
  };
}

export function cgroupDirs(cg: RunCgroup): string[] {
  return [cg.v2Dir, cg.v1MemoryDir].filter((d): d is string => d !== null);
}

export function procsFiles(cg: RunCgroup): string[] {
  return cgroupDirs(cg).map((d) => join(d, 'cgroup.procs'));
}

export function cgroupMembers(dirs: string[]): number[] {
  const pids = new Set<number>();
  for (const dir of dirs) {
    let text = '';
    try {
      text = readFileSync(join(dir, 'cgroup.procs'), 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n')) if (line) pids.add(Number(line));
  }
  return [...pids].filter((pid) => Number.isInteger(pid) && pid > 0);
}

/** Signals every member; SIGKILL goes through cgroup.kill where the kernel has it, which no fork can race. */
export function signalCgroup(dirs: string[], signal: NodeJS.Signals): number {
  if (signal === 'SIGKILL') {
    for (const dir of dirs) {
      const killFile = join(dir, 'cgroup.kill');
      if (!existsSync(killFile)) continue;
      try {
        writeFileSync(killFile, '1');
      } catch {
        // fall through to per-process kills
      }
    }
  }
  let sent = 0;
  for (const pid of cgroupMembers(dirs)) {
    try {
      process.kill(pid, signal);
      sent++;
    } catch {
      // already gone
    }
  }
  return sent;
}

export function readMemoryBytes(memory: CgroupMemory): number | null {
  try {
    const value = Number(readFileSync(memory.file, 'utf8').trim());
    return Number.isFinite(value) && value >= 0 ? value : null;
  } catch {
    return null;
  }
}

/** Removes the groups once empty; a group whose last process is slow to die is retried for a few seconds, then left. */
export async function removeCgroups(dirs: string[], timeoutMs = 5000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  let pending = dirs.filter((d) => existsSync(d));
  while (pending.length > 0) {
    pending = pending.filter((dir) => !removed(dir));
    if (pending.length === 0 || Date.now() >= deadline) break;
    signalCgroup(pending, 'SIGKILL');
    await sleep(50);
  }
  return pending.length === 0;
}

/** The run's groups, for recovery after its supervisor died: under our own cgroup first, else searched for by name. */
export function findRunCgroups(token: string): string[] {
  const name = cgroupName(token);
  const own = ownCgroups();
  const found = new Set<string>();
  for (const base of [own.v2, own.v1Memory]) if (base && existsSync(join(base, name))) found.add(join(base, name));
  if (found.size > 0) return [...found];
  for (const mount of cgroupMountPoints()) {
    const dir = searchDir(mount, name);
    if (dir) found.add(dir);
  }
  return [...found];
}

/** Parents under which a process was already moved into a new group: the rights on ancestors are proven there. */
const joinableParents = new Set<string>();

/**
 * A spare supervisor proves its groups' parents while it waits (a throwaway group and a throwaway
 * process), so the run it is handed does not wait for the probes.
 */
export function proveCgroupParents(): void {
  const own = ownCgroups();
  for (const parent of [own.v2, own.v1Memory]) {
    if (!parent || joinableParents.has(parent)) continue;
    const dir = join(parent, `ratchet-probe-${process.pid}`);
    if (joinableDir(dir, [])) removed(dir);
  }
}

function joinableDir(dir: string, reasons: string[]): string | null {
  try {
    mkdirSync(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // A leftover of an earlier attempt with this token is fine to reuse once empty.
    if (code !== 'EEXIST' || cgroupMembers([dir]).length > 0) {
      reasons.push(`cannot create ${dir}: ${code ?? (err as Error).message}`);
      return null;
    }
  }
  if (joinableParents.has(dirname(dir))) return dir;
  // Writing cgroup.procs may need rights on ancestors too (cgroup2 delegation): prove it with a throwaway process.
  const probe = spawnSync('/bin/sh', ['-c', 'echo $$ > "$1"', 'ratchet-cgroup-probe', join(dir, 'cgroup.procs')], {
    stdio: 'ignore',
    timeout: 5000,
  });
  if (probe.status === 0) {
    joinableParents.add(dirname(dir));
    return dir;
  }
  reasons.push(`cannot move a process into ${dir}`);
  removed(dir);
  return null;
}

function memorySource(v2Dir: string | null, v1MemoryDir: string | null): CgroupMemory | null {
  if (v2Dir && existsSync(join(v2Dir, 'memory.peak'))) {
    return { file: join(v2Dir, 'memory.peak'), method: 'cgroup-v2 memory.peak', sampled: false };
  }
  if (v1MemoryDir && existsSync(join(v1MemoryDir, 'memory.max_usage_in_bytes'))) {
    return {
      file: join(v1MemoryDir, 'memory.max_usage_in_bytes'),
      method: 'cgroup-v1 memory.max_usage_in_bytes',
      sampled: false,
    };
  }
  if (v2Dir && existsSync(join(v2Dir, 'memory.current'))) {
    return { file: join(v2Dir, 'memory.current'), method: 'cgroup-v2 memory.current sampled every 100ms', sampled: true };
  }
  return null;
}

function removed(dir: string): boolean {
  try {
    rmdirSync(dir);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT';
  }
}

// Breadth-first and bounded: cgroup trees are small, but a recovery path must not wander for long.
function searchDir(root: string, name: string, maxDirs = 20_000): string | null {
  const queue = [root];
  for (let visited = 0, dir = queue.shift(); dir !== undefined && visited < maxDirs; dir = queue.shift(), visited++) {
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      continue;
    }
    for (const entry of entries) {
      if (!entry.isDirectory()) continue;
      const path = join(dir, entry.name);
      if (entry.name === name) return path;
      queue.push(path);
    }
  }
  return null;
}
