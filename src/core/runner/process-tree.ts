// /proc reading: process identity (pid + start time), parentage, the run token in environ, RSS; identity-checked kills.
import { readdirSync, readFileSync } from 'node:fs';
import { TOKEN_ENV } from './run-spec.js';

export interface ProcStat {
  pid: number;
  ppid: number;
  pgid: number;
  sid: number;
  state: string;
  /** Clock ticks since boot: with the pid, it names one process even after the pid is reused. */
  startTime: string;
}

export function readStat(pid: number): ProcStat | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return null;
  }
  // comm (field 2) may hold spaces and parentheses, so fields are counted from the last ')'.
  const close = text.lastIndexOf(')');
  if (close < 0) return null;
  const f = text.slice(close + 2).split(' ');
  const [state, ppid, pgid, sid, startTime] = [f[0], Number(f[1]), Number(f[2]), Number(f[3]), f[19]];
  if (!state || !startTime || !Number.isInteger(ppid) || !Number.isInteger(pgid) || !Number.isInteger(sid)) return null;
  return { pid, ppid, pgid, sid, state, startTime };
}

/** Zombies are already dead: signals cannot touch them and they hold nothing but a pid. */
export function isDead(stat: ProcStat): boolean {
  return stat.state === 'Z' || stat.state === 'X' || stat.state === 'x';
}

export function listPids(): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (Number.isInteger(pid) && pid > 0) pids.push(pid);
  }
  return pids;
}

export function carriesToken(pid: number, token: string): boolean {
  let env: string;
  try {
    env = readFileSync(`/proc/${pid}/environ`, 'latin1');
  } catch {
    return false; // gone, or another user's process
  }
  if (`\0${env}`.includes(`\0${TOKEN_ENV}=${token}\0`)) return true;
  // A spare supervisor received its token after it started: it carries it in its process title.
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0')[0]!.endsWith(` ${TOKEN_ENV}=${token}`);
  } catch {
    return false;
  }
}

export function rssBytes(pid: number): number | null {
  try {
    const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'latin1'));
    return match?.[1] ? Number(match[1]) * 1024 : null;
  } catch {
    return null;
  }
}

export function isSameLiveProcess(pid: number, startTime: string): boolean {
  const stat = readStat(pid);
  return stat !== null && stat.startTime === startTime && !isDead(stat);
}

/** Signals pid only if it is still the process that was seen, so a reused pid is never hit. */
export function signalProcess(pid: number, startTime: string, signal: NodeJS.Signals): boolean {
  if (!isSameLiveProcess(pid, startTime)) return false;
  try {
    process.kill(pid, signal);
    return true;
  } catch {
    return false;
  }
}

export function signalGroup(pgid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    return false;
  }
}

/** Live processes carrying the token, plus their descendants (which may have scrubbed their environment). */
export function tokenTree(token: string, excludePids: ReadonlySet<number>): ProcStat[] {
  const live = listPids()
    .map(readStat)
    .filter((s): s is ProcStat => s !== null && !isDead(s) && !excludePids.has(s.pid));
  const found = new Map(live.filter((s) => carriesToken(s.pid, token)).map((s) => [s.pid, s]));
  const children = new Map<number, ProcStat[]>();
  for (const s of live) children.set(s.ppid, [...(children.get(s.ppid) ?? []), s]);
  const queue = [...found.keys()];
  for (let pid = queue.pop(); pid !== undefined; pid = queue.pop()) {
    for (const child of children.get(pid) ?? []) {
      if (found.has(child.pid)) continue;
      found.set(child.pid, child);
      queue.push(child.pid);
    }
  }
  return [...found.values()];
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
