// Finds this process's own cgroup directories: the cgroup2 one and the cgroup-v1 memory one, where mounted.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface OwnCgroups {
  v2: string | null;
  v1Memory: string | null;
}

interface Mount {
  root: string;
  mountPoint: string;
  fsType: string;
  superOptions: string[];
}

export function ownCgroups(): OwnCgroups {
  return cgroupsFrom(readText('/proc/self/cgroup'), readText('/proc/self/mountinfo'));
}

/** The directories named by /proc/<pid>/cgroup and /proc/<pid>/mountinfo text; `exists` is injectable for tests. */
export function cgroupsFrom(cgroupText: string, mountinfoText: string, exists: (path: string) => boolean = existsSync): OwnCgroups {
  const memberships = parseMemberships(cgroupText);
  const mounts = parseMounts(mountinfoText);
  const dirIn = (candidates: Mount[], path: string): string | null => {
    for (const m of candidates) {
      const dir = dirUnder(m, path);
      if (dir && exists(join(dir, 'cgroup.procs'))) return dir;
    }
    return null;
  };
  const v2Path = memberships.find((m) => m.id === '0' && m.controllers.length === 0)?.path;
  const memoryPath = memberships.find((m) => m.controllers.includes('memory'))?.path;
  return {
    v2: v2Path ? dirIn(mounts.filter((m) => m.fsType === 'cgroup2'), v2Path) : null,
    v1Memory: memoryPath
      ? dirIn(mounts.filter((m) => m.fsType === 'cgroup' && m.superOptions.includes('memory')), memoryPath)
      : null,
  };
}

/** Mount points of the hierarchies a run cgroup may live in, for searching when our own cgroup has changed. */
export function cgroupMountPoints(): string[] {
  return parseMounts(readText('/proc/self/mountinfo'))
    .filter((m) => m.fsType === 'cgroup2' || (m.fsType === 'cgroup' && m.superOptions.includes('memory')))
    .map((m) => m.mountPoint);
}

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

function parseMemberships(text: string): Array<{ id: string; controllers: string[]; path: string }> {
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [id = '', controllers = '', ...rest] = line.split(':');
      return { id, controllers: controllers ? controllers.split(',') : [], path: rest.join(':') };
    });
}

function parseMounts(text: string): Mount[] {
  const mounts: Mount[] = [];
  for (const line of text.split('\n')) {
    const [before, after] = line.split(' - ');
    if (!before || !after) continue;
    const left = before.split(' ');
    const [fsType, , superOptions = ''] = after.split(' ');
    if (!fsType || !left[3] || !left[4]) continue;
    mounts.push({ root: unescape(left[3]), mountPoint: unescape(left[4]), fsType, superOptions: superOptions.split(',') });
  }
  return mounts;
}

// A mount may expose a subtree only (containers without a cgroup namespace): map our path through its root.
function dirUnder(m: Mount, path: string): string | null {
  const inside = m.root === '/' ? path : path === m.root ? '/' : path.startsWith(`${m.root}/`) ? path.slice(m.root.length) : null;
  return inside === null ? null : join(m.mountPoint, inside).replace(/(.)\/+$/, '$1');
}

function unescape(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}
