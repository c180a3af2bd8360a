import { describe, expect, it } from 'vitest';
import { busyByDevice, handoffsOf, median, outOfOrder, quantile, splitByCalls, summarize, windowOf, type RunTimes } from '../../bench/pool/measure.js';

const run = (id: number, device: number, t: [submitted: number, leased: number, spawned: number, workStart: number, workEnd: number, released: number], finished = true): RunTimes => ({
  id,
  device,
  submittedAt: t[0],
  leasedAt: t[1],
  spawnedAt: t[2],
  workStart: t[3],
  workEnd: t[4],
  releasedAt: t[5],
  finished,
});

// Two devices, ids in the order the agent submitted them. GPU 0 runs #1, #3 and #6; #6 was submitted after #3's lease
// came back and still took GPU 0 before #5, which had waited since the start: out of order. GPU 1 runs #2, #4 and #5,
// which was cancelled at the end, after the window.
const RUNS = [
  run(1, 0, [0, 100, 150, 200, 3200, 3250]),
  run(3, 0, [60, 3300, 3320, 3400, 6400, 6450]),
  run(6, 0, [6500, 6600, 6610, 6700, 9700, 9750]),
  run(2, 1, [50, 400, 450, 500, 3500, 3600]),
  run(4, 1, [70, 3700, 3710, 3800, 6800, 6900]),
  run(5, 1, [80, 6950, 6960, 7000, 8000, 8050], false),
];

describe('the window', () => {
  it('runs from the first work to the end of the count-th finished run; a cancelled run does not end it', () => {
    expect(windowOf(RUNS, 4)).toEqual({ start: 200, end: 6800 });
    expect(windowOf(RUNS, 5)).toEqual({ start: 200, end: 9700 });
    expect(windowOf(RUNS, 50)).toEqual({ start: 200, end: 9700 });
    expect(() => windowOf([], 1)).toThrow(/no finished runs/);
  });
});

describe('busy fraction', () => {
  it("is each device's work over its span from its first work to the window's end, clipped there; an unused pool device is idle", () => {
    const busy = busyByDevice(RUNS, { start: 200, end: 6800 }, [0, 1, 2]);
    expect(busy.map((d) => d.device)).toEqual([0, 1, 2]);
    // GPU 0: 3000 + 3000 + the 100 ms of the third run inside the window, over 6800 - 200.
    expect(busy[0]).toMatchObject({ runs: 3, busyMs: 6100, spanMs: 6600, overlaps: 0 });
    expect(busy[0]!.fraction).toBeCloseTo(6100 / 6600, 10);
    // Leased: 3250 - 200, 6450 - 3300 and 6800 - 6600.
    expect(busy[0]!.leasedFraction).toBeCloseTo(6400 / 6600, 10);
    // GPU 1 starts at 500; its third run begins after the window and does not count.
    expect(busy[1]).toMatchObject({ runs: 2, busyMs: 6000, spanMs: 6300 });
    expect(busy[2]).toMatchObject({ runs: 0, busyMs: 0, spanMs: 6600, fraction: 0 });
  });

  it('counts overlapping work once and reports the overlap', () => {
    const [d] = busyByDevice([run(1, 0, [0, 0, 0, 0, 100, 100]), run(2, 0, [0, 0, 0, 50, 150, 150])], { start: 0, end: 200 });
    expect(d).toMatchObject({ busyMs: 150, spanMs: 200, overlaps: 1 });
  });
});

describe('hand-offs', () => {
  const handoffs = handoffsOf(RUNS, { start: 200, end: 6800 });

  it('pairs consecutive runs on each device whose next run began inside the window', () => {
    expect(handoffs.map((h) => [h.device, h.from, h.to])).toEqual([
      [0, 1, 3],
      [0, 3, 6],
      [1, 2, 4],
    ]);
  });

  it('splits the idle time into recording, scheduling, launch and command start, which add up', () => {
    expect(handoffs[0]).toMatchObject({ at: 3250, recordMs: 50, scheduleMs: 50, launchMs: 20, sandboxMs: 80, gapMs: 150, idleMs: 200, dry: false });
    // #5 was waiting when #3's lease came back, so the queue was not dry, though #6 took the device.
    expect(handoffs[1]).toMatchObject({ recordMs: 50, scheduleMs: 150, launchMs: 10, sandboxMs: 90, gapMs: 250, idleMs: 300, dry: false });
    expect(handoffs[2]).toMatchObject({ recordMs: 100, scheduleMs: 100, launchMs: 10, sandboxMs: 90, gapMs: 200, idleMs: 300, dry: false });
    for (const h of handoffs) {
      expect(h.scheduleMs + h.launchMs + h.sandboxMs).toBe(h.gapMs);
      expect(h.recordMs + h.gapMs).toBe(h.idleMs);
    }
  });

  it('is dry when no candidate was waiting as the lease came back', () => {
    const [h] = handoffsOf([run(1, 0, [0, 10, 20, 30, 1000, 1050]), run(2, 0, [1100, 1150, 1160, 1170, 2000, 2050])], { start: 30, end: 2000 });
    expect(h).toMatchObject({ dry: true, gapMs: 120 });
  });

  it('finds runs that took a device while a candidate submitted before them still waited', () => {
    expect(outOfOrder(RUNS)).toEqual([6]);
    expect(outOfOrder(RUNS.filter((r) => r.id !== 5))).toEqual([]);
  });

  it('tells the hand-offs whose lease came back while a call was being served', () => {
    const { during, clear } = splitByCalls(handoffs, [{ start: 3200, end: 3300 }, { start: 6000, end: 6450 }]);
    expect(during.map((h) => h.to)).toEqual([3]);
    expect(clear.map((h) => h.to)).toEqual([6, 4]);
  });
});

describe('summarize', () => {
  it('gives runs per minute over the window, the ramp-up and every pool device', () => {
    const s = summarize(RUNS, 4, [0, 1, 2, 3]);
    expect(s.window).toEqual({ start: 200, end: 6800 });
    expect(s.runs).toBe(4);
    expect(s.runsPerMinute).toBeCloseTo((4 * 60_000) / 6600, 10);
    expect(s.rampMs).toBe(300);
    expect(s.devices).toHaveLength(4);
    expect(s.handoffs).toHaveLength(3);
    expect(s.outOfOrder).toEqual([6]);
  });
});

describe('quantiles', () => {
  it('takes the nearest rank', () => {
    expect(median([5, 1, 3])).toBe(3);
    expect(median([4, 1, 3, 2])).toBe(2);
    expect(quantile([1, 2, 3, 4], 0.95)).toBe(4);
    expect(median([])).toBeNaN();
  });
});
