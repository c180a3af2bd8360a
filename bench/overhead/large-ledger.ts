// status, list_experiments and read_metric on a ledger of 100k experiments, built through the real Ledger after a real session start.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { ResearchLoop } from '../../src/core/loop.js';
import { Ledger, ledgerPath } from '../../src/core/ledger.js';
import type { DecisionReport } from '../../src/core/views.js';

const CALLS = 50;

function percentile(xs: number[], p: number): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
}

async function timed(fn: () => Promise<unknown>): Promise<{ p50: number; p95: number; first: number }> {
  const times: number[] = [];
  for (let i = 0; i < CALLS; i++) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  return { p50: percentile(times, 0.5), p95: percentile(times, 0.95), first: times[0]! };
}

export async function benchLargeLedger(size: number): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'ratchet-bench-ledger-'));
  const git = (...args: string[]) => execFileSync('git', ['-c', 'user.name=b', '-c', 'user.email=b@l', ...args], { cwd: dir, stdio: 'pipe' });
  try {
    git('init', '-q', '-b', 'main');
    writeFileSync(join(dir, 'value.txt'), '100\n');
    writeFileSync(join(dir, 'ratchet.json'), JSON.stringify({ editable: ['value.txt'], run: { command: 'echo "score: $(cat value.txt)"', budgetSeconds: 30 }, metric: { name: 'score', direction: 'minimize' } }));
    git('add', '-A');
    git('commit', '-q', '-m', 'init');
    const logger = pino({ level: 'silent' });
    const first = new ResearchLoop({ repo: dir, logger });
    await first.claim();
    const { baseline } = await first.startSession({ tag: 'big' });
    await first.waitExperiment(baseline.id, 50);
    await first.settle();
    first.close();

    // 100k decided experiments (a third of them with two repeats), appended through the Ledger's own transitions.
    const t0 = performance.now();
    const ledger = new Ledger(ledgerPath(dir));
    const session = ledger.activeSession()!;
    const commit = session.bestCommit;
    const verdict: DecisionReport = {
      rule: 'significant',
      runs: [],
      verdict: 'worse',
      candidate: { commit, n: 1, mean: null, interval: null },
      best: { commit, n: 1, mean: 1, interval: null },
      effect: -0.01,
      effectInterval: [-0.02, -0.005],
      relativeEffect: -0.01,
      confidence: 0.99,
      conditionalPower: null,
      runsSpent: 1,
      why: 'bench',
    };
    ledger.db.transaction(() => {
      for (let i = 0; i < size; i++) {
        const e = ledger.createExperiment({ sessionId: session.id, kind: 'candidate', parentCommit: commit, description: `idea ${i}`, host: 'bench' });
        ledger.setCommit(e.id, commit, { files: 1, insertions: 1, deletions: 1 });
        ledger.markStarted(e.id, { phase: 'run', runToken: `t${i}`, supervisorPid: 1, logPath: '' });
        ledger.recordRunFacts(e.id, { exitCode: 0, signal: null, durationMs: 300_000, peakMemoryBytes: 1e9, memoryMethod: 'bench' });
        const value = 1 + Math.sin(i) * 0.01;
        ledger.recordMeasurement(e.id, { metric: value, secondary: { peak_vram_mb: 40_000 }, constraintChecks: [], metricLines: 1, samples: [
          { name: 'score', value, source: 'run', host: 'bench', gpuModel: null },
          { name: 'peak_vram_mb', value: 40_000, source: 'run', host: 'bench', gpuModel: null },
        ] });
        // What the significant rule (the default) records for every decided candidate.
        ledger.recordVerdict(e.id, { ...verdict, runs: [{ id: e.id, side: 'candidate', value }], candidate: { ...verdict.candidate, mean: value } }, value);
        ledger.finish(e.id, 'measured', null);
        ledger.decide(e.id, { decision: 'reverted', reason: 'bench', forced: false });
      }
    })();
    const buildSeconds = (performance.now() - t0) / 1000;
    ledger.close();

    const loop = new ResearchLoop({ repo: dir, logger });
    await loop.claim();
    await loop.recover();
    const status = await timed(() => loop.status());
    const list = await timed(() => loop.listExperiments({ limit: 20 }));
    const metric = await timed(() => loop.readMetric());
    loop.close();
    console.log(`\nLedger of ${size.toLocaleString('en-US')} experiments (built in ${buildSeconds.toFixed(1)} s through Ledger transitions), ${CALLS} calls each:`);
    for (const [name, t] of [['status', status], ['list_experiments', list], ['read_metric', metric]] as const) {
      console.log(`  ${name.padEnd(17)} p50 ${t.p50.toFixed(1)} ms, p95 ${t.p95.toFixed(1)} ms (first call ${t.first.toFixed(1)} ms; target p50 < 20 ms)`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
