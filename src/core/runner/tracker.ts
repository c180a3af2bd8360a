// Follows every process of one run through /proc: descendants, its session and group, token carriers, cgroup members.
import { carriesToken, isDead, listPids, readStat, rssBytes, signalProcess, type ProcStat } from './process-tree.js';

interface Entry {
  stat: ProcStat;
  ours: boolean;
}

export class ProcessTracker {
  // Every process seen since its pid appeared; only those marked ours are re-read each scan.
  private readonly seen = new Map<number, Entry>();
  private rootPid: number | null = null;

  constructor(
    private readonly token: string,
    private readonly excludePids: ReadonlySet<number>,
    private readonly members: () => number[] = () => [],
  ) {}

  /** The main child: its session and process group (it leads both) are ours too. */
  adoptRoot(pid: number): void {
    this.rootPid = pid;
    this.markOurs(pid);
  }

  scan(): void {
    const pids = listPids();
    const present = new Set(pids);
    for (const pid of this.seen.keys()) if (!present.has(pid)) this.seen.delete(pid);
    const fresh: Entry[] = [];
    for (const pid of pids) {
      const known = this.seen.get(pid);
      // An unrelated process stays unrelated; pid reuse within one 100 ms scan would need a full pid wrap.
      if (known && !known.ours) continue;
      const stat = readStat(pid);
      if (!stat) {
        this.seen.delete(pid);
        continue;
      }
      if (known && known.stat.startTime === stat.startTime) {
        known.stat = stat;
        continue;
      }
      const entry = { stat, ours: false };
      this.seen.set(pid, entry);
      fresh.push(entry);
    }
    for (const pid of this.members()) this.markOurs(pid);
    for (const entry of fresh) if (!entry.ours && this.claims(entry.stat)) entry.ours = true;
    this.adoptChildren(fresh);
  }

  /** Live processes of the run, as last scanned. */
  live(): ProcStat[] {
    const out: ProcStat[] = [];
    for (const { stat, ours } of this.seen.values()) if (ours && !isDead(stat)) out.push(stat);
    return out;
  }

  /** Sum of VmRSS over the live processes (shared pages count once per process). */
  rssBytes(): number | null {
    let total: number | null = null;
    for (const stat of this.live()) {
      const rss = rssBytes(stat.pid);
      if (rss !== null) total = (total ?? 0) + rss;
    }
    return total;
  }

  signalAll(signal: NodeJS.Signals): number {
    let sent = 0;
    for (const stat of this.live()) if (signalProcess(stat.pid, stat.startTime, signal)) sent++;
    return sent;
  }

  private claims(stat: ProcStat): boolean {
    if (this.excludePids.has(stat.pid)) return false;
    const root = this.rootPid;
    // The kernel never hands out a pid still in use as a session or group id, so these cannot be strangers.
    if (root !== null && (stat.sid === root || stat.pgid === root)) return true;
    return carriesToken(stat.pid, this.token);
  }

  // New processes whose parent is ours, repeated so that a child and grandchild born in one interval both count.
  private adoptChildren(fresh: Entry[]): void {
    for (let grew = true; grew; ) {
      grew = false;
      for (const entry of fresh) {
        if (entry.ours || this.excludePids.has(entry.stat.pid)) continue;
        if (this.seen.get(entry.stat.ppid)?.ours) {
          entry.ours = true;
          grew = true;
        }
      }
    }
  }

  private markOurs(pid: number): void {
    if (this.excludePids.has(pid)) return;
    const known = this.seen.get(pid);
    const stat = readStat(pid);
    if (!stat) return;
    if (known && known.stat.startTime === stat.startTime) {
      known.stat = stat;
      known.ours = true;
    } else {
      this.seen.set(pid, { stat, ours: true });
    }
  }
}
