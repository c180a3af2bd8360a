// Who holds a lease: a process named so that a dead holder is recognised even when its pid has been reused.
import { spawnSync } from 'node:child_process';
import { readFileSync, readlinkSync } from 'node:fs';
import { hostname } from 'node:os';
import { isDead, readStat } from '../runner/process-tree.js';

export interface Holder {
  pid: number;
  /** The kernel's start time of the process (clock ticks since boot on Linux, `ps` lstart elsewhere); null when unknown. */
  start: string | null;
  /** Linux boot id: a lease from before a reboot has no living holder. */
  boot: string | null;
  /** The pid namespace the pid belongs to: a pid from another container cannot be checked from here. */
  pidns: string | null;
  host: string;
}

/** How a holder is stored in a ledger row (leases, run_owners): five columns. */
export interface HolderColumns {
  holder_pid: number;
  holder_start: string | null;
  holder_boot: string | null;
  holder_pidns: string | null;
  holder_host: string;
}

export function holderOfRow(r: HolderColumns): Holder {
  return { pid: r.holder_pid, start: r.holder_start, boot: r.holder_boot, pidns: r.holder_pidns, host: r.holder_host };
}

/** The same process: pid, start time, host and pid namespace all agree (the boot id follows from the start time). */
export function sameHolder(a: Holder, b: Holder): boolean {
  return a.pid === b.pid && a.start === b.start && a.host === b.host && a.pidns === b.pidns;
}

/** alive or dead as far as this process can tell; unknown when the holder lives on another machine or in another container. */
export type HolderState = 'alive' | 'dead' | 'unknown';

let self: Holder | undefined;

/** This process, as it signs its leases. */
export function currentHolder(): Holder {
  self ??= holderFor(process.pid);
  return self;
}

export function holderFor(pid: number): Holder {
  return { pid, start: startTimeOf(pid), boot: read('/proc/sys/kernel/random/boot_id'), pidns: link('/proc/self/ns/pid'), host: hostname() };
}

/**
 * Whether the holder still runs. A pid alone is not trusted: the holder's start time must match too, so a pid that
 * the kernel handed to a new process after the holder died (SIGKILL, a crash) reads as dead.
 */
export function holderState(h: Holder, me: Holder = currentHolder()): HolderState {
  if (h.host !== me.host) return 'unknown';
  if (h.boot && me.boot && h.boot !== me.boot) return 'dead'; // the machine has rebooted since
  if (h.pidns !== me.pidns) return 'unknown';
  if (h.pid === me.pid && h.start === me.start) return 'alive';
  const start = startTimeOf(h.pid);
  if (start === null) return processExists(h.pid) ? 'alive' : 'dead';
  return h.start === null || h.start === start ? 'alive' : 'dead';
}

/** null when the process does not exist, is a zombie, or the platform cannot say. */
function startTimeOf(pid: number): string | null {
  if (process.platform === 'linux') {
    const stat = readStat(pid);
    return stat && !isDead(stat) ? stat.startTime : null;
  }
  const ps = spawnSync('ps', ['-o', 'lstart=', '-p', String(pid)], { encoding: 'utf8', timeout: 5000 });
  const start = ps.status === 0 ? ps.stdout.trim() : '';
  return start || null;
}

/** Only consulted where no start time can be read: on Linux a missing /proc entry already means dead. */
function processExists(pid: number): boolean {
  if (process.platform === 'linux') return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function read(path: string): string | null {
  try {
    return readFileSync(path, 'utf8').trim() || null;
  } catch {
    return null;
  }
}

function link(path: string): string | null {
  try {
    return readlinkSync(path);
  } catch {
    return null;
  }
}
