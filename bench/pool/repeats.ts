// npm run bench:repeats — the wall time of one decision under the significant rule, when its runs (candidate and best,
// ABBA) go on 1 device and on several at once: the same candidates, the same noise model, side by side in one run.
//
//   npx tsx bench/pool/repeats.ts [--sleep 2] [--devices 1,4] [--sandbox auto|required|off]
//
// One agent, `parallel: 1`, so each decision has the pool to itself. Progress goes to stderr; the report to stdout.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { connect, makeBenchRepo } from './server.js';

/** Each candidate's true change to a score of 1.0 (lower is better), with noise of sd ~0.03 per run. */
const CANDIDATES = [-0.08, 0, -0.06, 0.05, -0.1, 0];
const NOISE = 0.1; // uniform width: sd = 0.1 / sqrt(12) ~ 0.029

function runCommand(sleep: number): string {
  // A fresh random number per run (runs that start together must not share it), then the score with its noise.
  return `sleep ${sleep}; r=$(od -An -N2 -tu2 /dev/urandom | tr -d ' '); awk -v v="$(cat value.txt)" -v r="$r" 'BEGIN { printf "score: %.5f\\n", v + (r / 65535 - 0.5) * ${NOISE} }'`;
}

function makeRepo(root: string, sleep: number, sandbox: string): string {
  return makeBenchRepo(root, '1.0', {
    run: { command: runCommand(sleep), budgetSeconds: sleep + 60, graceSeconds: 1 },
    metric: { name: 'score', direction: 'minimize' },
    decision: { rule: 'significant', confidence: 0.95, maxRepeats: 4, baselineRepeats: 4 },
    parallel: 1,
    gpu: { required: true, perRun: 1 },
    sandbox,
  });
}

interface Decision {
  seconds: number;
  runs: number;
  verdict: string;
}

async function measure(devices: number, sleep: number, sandbox: string): Promise<{ baseline: Decision; decisions: Decision[]; devicesUsed: number }> {
  const root = mkdtempSync(join(tmpdir(), 'ratchet-bench-repeats-'));
  const repo = makeRepo(root, sleep, sandbox);
  const server = await connect(repo, root, devices);
  const settled = async (id: number) => {
    for (;;) {
      const e = (await server.call('wait_experiment', { id, wait_seconds: 50 })).experiment;
      if (e.state !== 'running' && e.state !== 'queued') return e;
    }
  };
  try {
    let t = Date.now();
    const started = await server.call('start_session', { tag: 'bench' });
    const base = await settled(started.baseline.id);
    const baseline = { seconds: (Date.now() - t) / 1000, runs: base.runs, verdict: 'baseline' };
    const decisions: Decision[] = [];
    const gpus = new Set<number>();
    let best = 1.0;
    for (const [i, delta] of CANDIDATES.entries()) {
      // One more decimal each time, so even a change of 0 is an edit of the file.
      writeFileSync(join(repo, 'value.txt'), `${(best + delta).toFixed(3 + i)}\n`);
      t = Date.now();
      const id = (await server.call('run_experiment', { description: `change ${i + 1}: ${delta}`, wait_seconds: 0 })).experiment.id;
      const e = await settled(id);
      const seconds = (Date.now() - t) / 1000;
      const report = await server.call('read_metric', { id });
      const verdict = (report.decision as { verdict?: string } | null)?.verdict ?? e.state;
      decisions.push({ seconds, runs: e.runs, verdict });
      if (report.keepable === true) {
        await server.call('keep', { id });
        best += delta;
      } else {
        await server.call('revert', { id });
      }
      process.stderr.write(`  ${devices} device(s): decision ${i + 1}/${CANDIDATES.length}: ${verdict}, ${e.runs} runs, ${seconds.toFixed(1)} s\n`);
    }
    // Every device any run of the session used, repeats included, from the ledger.
    const db = new Database(join(repo, '.ratchet', 'ratchet.db'), { readonly: true });
    for (const g of db.prepare('SELECT DISTINCT gpus FROM experiments WHERE gpus IS NOT NULL').pluck().all() as string[]) for (const i of (JSON.parse(g) as { indices: number[] }).indices) gpus.add(i);
    db.close();
    return { baseline, decisions, devicesUsed: gpus.size };
  } finally {
    await server.close();
    rmSync(root, { recursive: true, force: true });
  }
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { sleep: { type: 'string' }, devices: { type: 'string' }, sandbox: { type: 'string' } } });
  const sleep = Number(values.sleep ?? 2);
  const deviceCounts = (values.devices ?? '1,4').split(',').map(Number);
  const sandbox = values.sandbox ?? 'auto';
  if (!(sleep > 0) || deviceCounts.some((d) => !Number.isInteger(d) || d < 1 || d > 8) || !['auto', 'required', 'off'].includes(sandbox)) {
    throw new Error('usage: bench/pool/repeats.ts [--sleep seconds > 0] [--devices 1,4 (each 1 to 8)] [--sandbox auto|required|off]');
  }
  const rows = [];
  for (const devices of deviceCounts) rows.push({ devices, ...(await measure(devices, sleep, sandbox)) });
  const one = rows.find((r) => r.devices === 1);
  const lines = [
    `### Parallel repeats (\`npx tsx bench/pool/repeats.ts --sleep ${sleep} --devices ${deviceCounts.join(',')} --sandbox ${sandbox}\`)`,
    '',
    `One agent, \`parallel: 1\`, significant rule (confidence 0.95, maxRepeats 4, baselineRepeats 4), the fake nvidia-smi narrowed to n devices. ` +
      `${CANDIDATES.length} candidates with true changes ${CANDIDATES.join(', ')} to a score of 1.0, noise uniform of width ${NOISE} per run; each run sleeps ${sleep} s.`,
    '',
    '| devices | baseline (s) | decisions | runs per decision (mean) | wall time per decision (mean s) | speed-up per decision vs 1 | verdicts | devices any run used |',
    '|---|---|---|---|---|---|---|---|',
    ...rows.map((r) => {
      const wall = mean(r.decisions.map((d) => d.seconds));
      const perRun = (x: typeof r) => mean(x.decisions.map((d) => d.seconds));
      return `| ${r.devices} | ${r.baseline.seconds.toFixed(1)} | ${r.decisions.length} | ${mean(r.decisions.map((d) => d.runs)).toFixed(2)} | ${wall.toFixed(1)} | ${one ? `${(perRun(one) / wall).toFixed(2)}×` : 'n/a'} | ${r.decisions.map((d) => d.verdict).join(', ')} | ${r.devicesUsed} |`;
    }),
  ];
  process.stdout.write(lines.join('\n') + '\n');
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? err}\n`);
  process.exitCode = 1;
});
