// Ledger benchmark: a 100k-experiment ledger built through the real Ledger API, then the reads a tool call makes, timed.
//
//   npm run bench:ledger -- [--experiments 100000] [--samples 3] [--iterations 200] [--keep]
//
// Everything runs in one process on one temp ledger; the report (Markdown) goes to stdout, progress to stderr.
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Ledger } from '../../src/core/ledger.js';

const { values: args } = parseArgs({
  options: {
    experiments: { type: 'string', default: '100000' },
    samples: { type: 'string', default: '3' },
    iterations: { type: 'string', default: '200' },
    keep: { type: 'boolean', default: false },
  },
});
const TOTAL = Number(args.experiments);
const SAMPLES = Math.max(1, Number(args.samples));
const ITERATIONS = Number(args.iterations);
/** A session of the size a real overnight run reaches, for the reads that scale with a session. */
const REALISTIC = Math.min(1000, Math.floor(TOTAL / 10));
const BATCH = 1000;

const dir = mkdtempSync(join(tmpdir(), 'ratchet-bench-ledger-'));
const path = join(dir, '.ratchet', 'ratchet.db');
const ledger = new Ledger(path);
const log = (s: string) => process.stderr.write(`${s}\n`);

/** One experiment's whole life, through the transitions the loop makes. */
function lifecycle(sessionId: number, i: number, best: { commit: string }): void {
  const kind = i === 0 ? 'baseline' : 'candidate';
  const e = ledger.createExperiment({ sessionId, kind, parentCommit: best.commit, description: `idea ${i}: tweak the learning rate schedule`, host: 'bench' });
  const commit = `${i.toString(16).padStart(8, '0')}${'c'.repeat(32)}`;
  ledger.setCommit(e.id, commit, { files: 1, insertions: 3, deletions: 1 });
  ledger.markLaunching(e.id, { phase: 'run', runToken: `${e.id}-run` });
  ledger.markStarted(e.id, { phase: 'run', runToken: `${e.id}-run`, supervisorPid: 1000 + i, logPath: `/runs/${e.id}/run.log`, workspace: `/ws/${e.id}`, gpus: { indices: [0], model: 'NVIDIA H100' } });
  ledger.recordRunFacts(e.id, { exitCode: 0, signal: null, durationMs: 300_000, peakMemoryBytes: 2 ** 33, memoryMethod: 'cgroup' });
  if (i % 10 === 7) {
    ledger.finish(e.id, 'crashed', 'exit 1: CUDA out of memory');
    return;
  }
  const metric = 1 - i * 1e-7 + (i % 13) * 1e-4;
  const samples = [{ name: 'val_bpb', value: metric, source: 'run' as const, host: 'bench', gpuModel: 'NVIDIA H100' }];
  for (let k = 1; k < SAMPLES; k++) samples.push({ name: `secondary_${k}`, value: k * 10, source: 'run', host: 'bench', gpuModel: 'NVIDIA H100' });
  ledger.recordMeasurement(e.id, { metric, secondary: { peak_vram_mb: 45000 }, constraintChecks: [], metricLines: 1, samples });
  ledger.finish(e.id, 'measured', null);
  if (kind === 'baseline' || i % 20 === 1) {
    ledger.keep(sessionId, e.id, commit, { reason: kind === 'baseline' ? 'baseline' : 'improved' });
    best.commit = commit;
  } else ledger.decide(e.id, { decision: 'reverted', reason: 'reverted by the agent' });
}

function buildSession(tag: string, count: number): number {
  const s = ledger.createSession({ tag, branch: `ratchet/${tag}`, baseCommit: 'base', bestCommit: 'base', config: { metric: { name: 'val_bpb' } }, pins: [] });
  const best = { commit: 'base' };
  const started = performance.now();
  for (let i = 0; i < count; i += BATCH) {
    // Batched only to build the fixture quickly; per-call costs are measured below, one commit per transition.
    ledger.transaction(() => {
      for (let j = i; j < Math.min(count, i + BATCH); j++) lifecycle(s.id, j, best);
    });
    if ((i / BATCH) % 10 === 0) log(`  ${tag}: ${Math.min(count, i + BATCH)}/${count} (${((performance.now() - started) / 1000).toFixed(0)} s)`);
  }
  return s.id;
}

function time(fn: () => unknown, n = ITERATIONS): { p50: number; p95: number } {
  for (let i = 0; i < Math.min(10, n); i++) fn(); // warm the statement cache and the page cache
  const ms: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    fn();
    ms.push(performance.now() - t);
  }
  ms.sort((a, b) => a - b);
  return { p50: ms[Math.floor(n * 0.5)]!, p95: ms[Math.min(n - 1, Math.floor(n * 0.95))]! };
}

const fmt = (ms: number) => (ms < 1 ? ms.toFixed(3) : ms.toFixed(1));
const rows: string[] = [];
const row = (what: string, t: { p50: number; p95: number }) => rows.push(`| ${what} | ${fmt(t.p50)} | ${fmt(t.p95)} |`);

log(`building ${REALISTIC} + ${TOTAL - REALISTIC} experiments with ${SAMPLES} samples each in ${path}`);
const buildStart = performance.now();
const realistic = buildSession('realistic', REALISTIC);
const big = buildSession('big', TOTAL - REALISTIC);
const buildSeconds = (performance.now() - buildStart) / 1000;
const chainLength = ledger.chainHead().seq;

// Unbatched: what one experiment's transitions cost at this size, each its own commit as in the server.
const perExperiment = time(() => lifecycle(big, 1 + Math.floor(Math.random() * 1e6) * 20 + 2, { commit: 'x' }), 100);

const listMiddle = ledger.listExperiments(big, { limit: 1, beforeId: Math.floor(TOTAL / 2) }).rows[0]!.id;
const lastSample = (ledger.db.prepare('SELECT MAX(id) AS id FROM samples').get() as { id: number }).id - 3;
const status = () => {
  const s = ledger.activeSession()!;
  ledger.externallyModified();
  ledger.unfinishedExperiments();
  ledger.countsByState(s.id);
  ledger.runsSpent(s.id);
  ledger.latestRunExperiment(s.id);
  ledger.latestExperiment(s.id);
  ledger.baselineMetric(s.id);
  ledger.countMetricRepeats(s.id);
  if (s.bestExperimentId !== null) ledger.runsOf(s.bestExperimentId);
};
row('status reads (active session, unfinished, counts, runs spent, latest, baseline, best)', time(status));
row('list_experiments: newest 20', time(() => ledger.listExperiments(big, { limit: 20 })));
row('list_experiments: 20 from the middle (beforeId)', time(() => ledger.listExperiments(big, { limit: 20, beforeId: listMiddle })));
row("list_experiments: 20 'crashed'", time(() => ledger.listExperiments(big, { limit: 20, state: 'crashed' })));
row('externallyModified (PRAGMA data_version)', time(() => ledger.externallyModified(), 1000));
row(`measurements: a ${REALISTIC}-experiment session`, time(() => ledger.measurements(realistic, 'val_bpb')));
row('measurementsAfter: the newest samples of the big session', time(() => ledger.measurementsAfter(big, 'val_bpb', lastSample)));
row(`measurements: the whole ${TOTAL - REALISTIC}-experiment session`, time(() => ledger.measurements(big, 'val_bpb'), 10));
row('one experiment, unbatched (~9 transitions, each its own commit)', perExperiment);

// results.tsv: the first write in a process is a full rewrite; after that, a finished experiment is one append.
const tsv = join(dir, 'results.tsv');
const rewrite = time(() => {
  rmSync(tsv, { force: true });
  ledger.writeResultsTsv(big, 'val_bpb', tsv);
}, 10);
const append = time(() => {
  lifecycle(big, 3, { commit: 'x' }); // a reverted candidate: one final line
  if (ledger.writeResultsTsv(big, 'val_bpb', tsv) !== 'appended') throw new Error('expected an append');
}, 50);
// A restarted server adopts a file that already ends with the last final line, instead of rewriting it.
const adopt = time(() => {
  const restarted = new Ledger(path);
  if (restarted.writeResultsTsv(big, 'val_bpb', tsv) !== 'unchanged') throw new Error('expected the file to be adopted');
  restarted.close();
}, 10);
row('results.tsv: full rewrite', rewrite);
row('results.tsv: adopted after a restart (open the ledger + check the file)', adopt);
row('results.tsv: one experiment + append', append);

const verifyMs: number[] = [];
for (let i = 0; i < 3; i++) {
  const t = performance.now();
  const findings = ledger.verifyChain();
  verifyMs.push(performance.now() - t);
  if (findings.length) throw new Error(`an honest ledger has findings: ${JSON.stringify(findings.slice(0, 3))}`);
}
ledger.db.pragma('wal_checkpoint(TRUNCATE)');
const size = statSync(path).size;
const counts = ledger.db.prepare('SELECT (SELECT COUNT(*) FROM experiments) AS e, (SELECT COUNT(*) FROM samples) AS s, (SELECT COUNT(*) FROM chain) AS c').get() as { e: number; s: number; c: number };

console.log(`# Ledger at ${counts.e.toLocaleString('en')} experiments\n`);
console.log(`Command: \`npm run bench:ledger -- --experiments ${TOTAL} --samples ${SAMPLES} --iterations ${ITERATIONS}\` (Node ${process.version})\n`);
console.log(`${counts.e.toLocaleString('en')} experiments, ${counts.s.toLocaleString('en')} samples, ${counts.c.toLocaleString('en')} chain entries (${chainLength.toLocaleString('en')} after the build); built in ${buildSeconds.toFixed(1)} s.\n`);
console.log('| read | p50 ms | p95 ms |\n|---|---|---|');
console.log(rows.join('\n'));
console.log(`\n- verifyChain (every link and every row): ${verifyMs.map((m) => `${(m / 1000).toFixed(2)} s`).join(', ')}`);
console.log(`- results.tsv: full rewrite / append = ${(rewrite.p50 / append.p50).toFixed(0)}× (p50 ${fmt(rewrite.p50)} ms vs ${fmt(append.p50)} ms, the append including one experiment's transitions)`);
console.log(`- ledger file: ${(size / 1024 ** 2).toFixed(1)} MiB after a checkpoint (${(size / counts.e).toFixed(0)} bytes per experiment)`);
console.log(`- process RSS: ${(process.memoryUsage().rss / 1024 ** 2).toFixed(0)} MiB`);

ledger.close();
if (args.keep) log(`kept ${path}`);
else rmSync(dir, { recursive: true, force: true });
