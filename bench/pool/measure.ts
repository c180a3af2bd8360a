// What bench:pool measures, from each run's timestamps: runs per minute, each device's busy fraction, and the hand-offs.
// Pure: no I/O, so the arithmetic is tested on synthetic rows (test/bench/pool.test.ts).

/** One candidate run on one device; every time is milliseconds since the epoch, all read from the same clock. */
export interface RunTimes {
  id: number;
  device: number;
  /** The agent submitted the candidate (experiments.created_at). */
  submittedAt: number;
  /** The device's lease was taken and given back (leases.acquired_at, released_at). */
  leasedAt: number;
  releasedAt: number;
  /** The supervisor spawned the command (run.result.json startedAt): the sandbox starts here. */
  spawnedAt: number;
  /** The command's own first and last timestamps: the span the device does the run's work. */
  workStart: number;
  workEnd: number;
  /** Measured: its work ran to the end (not cancelled once the benchmark had what it needed). */
  finished: boolean;
}

/** The step from one run to the next on a device, split where the time goes. */
export interface Handoff {
  device: number;
  from: number;
  to: number;
  /** When the previous run's lease came back. */
  at: number;
  /** Previous work ended → its lease given back: the result heard, recorded and measured. */
  recordMs: number;
  /** Lease given back → the next lease taken: the scheduler's turn (startQueued behind other calls). */
  scheduleMs: number;
  /** Next lease taken → its command spawned: workspace, spec and supervisor. */
  launchMs: number;
  /** Command spawned → its work began: sandbox and shell start. */
  sandboxMs: number;
  /** Lease given back → the next run's work began: the hand-off gap the target is about. */
  gapMs: number;
  /** Previous work ended → the next began: all the time the device sat idle. */
  idleMs: number;
  /** No candidate was waiting when the lease came back: the queue had run dry, and the device waited for the agent. */
  dry: boolean;
}

export interface DeviceBusy {
  device: number;
  runs: number;
  /** Work inside the window, overlaps counted once. */
  busyMs: number;
  /** From the device's first work to the window's end. */
  spanMs: number;
  fraction: number;
  /** The same span's share under a lease, whether or not work ran: what the pool's bookkeeping sees. */
  leasedFraction: number;
  /** Pairs of runs whose work overlapped on this device: a double lease, which the pool must never grant. */
  overlaps: number;
}

export interface PoolSummary {
  /** From the first run's work to the end of the `count`-th run's work. */
  window: { start: number; end: number };
  /** Runs whose work ended inside the window (the count asked for, unless fewer ran). */
  runs: number;
  runsPerMinute: number;
  devices: DeviceBusy[];
  handoffs: Handoff[];
  /** The last device's first work after the first device's: the agent's time to fill the pool at the start. */
  rampMs: number;
  /** Runs in the window that took a device while a candidate submitted before them still waited: the queue is not first in, first out. */
  outOfOrder: number[];
}

/** The window: from the first work start to the end of the count-th finished run's work; what comes after does not count. */
export function windowOf(runs: RunTimes[], count: number): { start: number; end: number } {
  const ends = runs.filter((r) => r.finished).map((r) => r.workEnd).sort((a, b) => a - b);
  if (!ends.length) throw new Error('no finished runs to measure');
  return { start: Math.min(...runs.map((r) => r.workStart)), end: ends[Math.min(count, ends.length) - 1]! };
}

/** Each device's share of its span spent on work, clipped to the window; a pool device that never ran anything is idle throughout. */
export function busyByDevice(runs: RunTimes[], window: { start: number; end: number }, pool: number[] = []): DeviceBusy[] {
  const devices = [...new Set([...pool, ...runs.map((r) => r.device)])].sort((a, b) => a - b);
  return devices.map((device) => {
    const mine = runs.filter((r) => r.device === device && r.workStart < window.end).sort((a, b) => a.workStart - b.workStart);
    const first = Math.max(window.start, mine[0]?.workStart ?? window.start);
    let busy = 0;
    let reached = first;
    let overlaps = 0;
    for (const r of mine) {
      if (r.workStart < reached) overlaps++;
      const from = Math.max(r.workStart, reached);
      const to = Math.min(r.workEnd, window.end);
      if (to > from) busy += to - from;
      reached = Math.max(reached, Math.min(r.workEnd, window.end));
    }
    const span = window.end - first;
    const leased = mine.reduce((sum, r) => sum + Math.max(0, Math.min(r.releasedAt, window.end) - Math.max(r.leasedAt, first)), 0);
    return { device, runs: mine.length, busyMs: busy, spanMs: span, fraction: span > 0 ? busy / span : 0, leasedFraction: span > 0 ? leased / span : 0, overlaps };
  });
}

/** Every hand-off between consecutive runs on one device whose next run started inside the window. */
export function handoffsOf(runs: RunTimes[], window: { start: number; end: number }): Handoff[] {
  const out: Handoff[] = [];
  const byDevice = new Map<number, RunTimes[]>();
  for (const r of runs) byDevice.set(r.device, [...(byDevice.get(r.device) ?? []), r]);
  for (const [device, mine] of [...byDevice].sort((a, b) => a[0] - b[0])) {
    mine.sort((a, b) => a.leasedAt - b.leasedAt);
    for (let i = 1; i < mine.length; i++) {
      const a = mine[i - 1]!;
      const b = mine[i]!;
      if (b.workStart >= window.end) break;
      out.push({
        device,
        from: a.id,
        to: b.id,
        at: a.releasedAt,
        recordMs: a.releasedAt - a.workEnd,
        scheduleMs: b.leasedAt - a.releasedAt,
        launchMs: b.spawnedAt - b.leasedAt,
        sandboxMs: b.workStart - b.spawnedAt,
        gapMs: b.workStart - a.releasedAt,
        idleMs: b.workStart - a.workEnd,
        dry: !runs.some((r) => r.submittedAt <= a.releasedAt && r.leasedAt > a.releasedAt),
      });
    }
  }
  return out;
}

/** The figures of one session: `count` finished runs make the window; `pool` lists every device the runs could lease. */
/** Runs that were leased a device while a candidate submitted before them still waited for one. */
export function outOfOrder(runs: RunTimes[]): number[] {
  return runs.filter((b) => runs.some((r) => r.submittedAt < b.submittedAt && r.leasedAt > b.leasedAt)).map((b) => b.id);
}

export function summarize(runs: RunTimes[], count: number, pool: number[] = []): PoolSummary {
  const window = windowOf(runs, count);
  const done = runs.filter((r) => r.finished && r.workEnd <= window.end).length;
  const firsts = [...new Set(runs.map((r) => r.device))].map((d) => Math.min(...runs.filter((r) => r.device === d).map((r) => r.workStart)));
  return {
    window,
    runs: done,
    runsPerMinute: window.end > window.start ? (done * 60_000) / (window.end - window.start) : 0,
    devices: busyByDevice(runs, window, pool),
    handoffs: handoffsOf(runs, window),
    rampMs: Math.max(...firsts) - Math.min(...firsts),
    outOfOrder: outOfOrder(runs).filter((id) => runs.find((r) => r.id === id)!.workStart < window.end),
  };
}

export interface Interval {
  start: number;
  end: number;
}

/** Splits hand-offs by whether their lease came back while one of these calls was being served (the scheduler waits its turn behind it). */
export function splitByCalls(handoffs: Handoff[], calls: Interval[]): { during: Handoff[]; clear: Handoff[] } {
  const during = handoffs.filter((h) => calls.some((c) => c.start <= h.at && h.at < c.end));
  return { during, clear: handoffs.filter((h) => !during.includes(h)) };
}

/** The value at quantile q of xs (nearest rank); NaN for none. */
export function quantile(xs: number[], q: number): number {
  if (!xs.length) return Number.NaN;
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

export const median = (xs: number[]) => quantile(xs, 0.5);
