// The pass-rate scenario: a simulated skill eval (10 cases × 4 binary assertions × 3 trials, binomial noise) improved by a
// stream of prompt edits with known true effects, decided by greedy, by the significant rule on the pass rate alone (what
// a user gets without case lines), and by the paired rule (the same rule when the eval prints case lines), all through
// the real loop at default settings.
//
//   npx tsx bench/decisions/pass-rate.ts [--budget 60] [--seeds 4] [--parallel 2] [--json out.json] [--quick]
//
// Progress goes to stderr; the Markdown report to stdout. `npm run build` first: runs are supervised by dist/.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { ResearchLoop } from '../../src/core/loop.js';
import { mulberry32 } from './prng.mjs';
import { truePassRate, truthRates } from './skill-truth.mjs';
import { mapLimit } from '../../src/core/map-limit.js';
import { waitDone } from './sessions.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const EXPERIMENT = join(HERE, 'synthetic-skill.mjs');
const RULES = ['greedy', 'significant (pass rate only)', 'paired (case lines)'] as const;
type Rule = (typeof RULES)[number];

/**
 * A stream of prompt edits as a skill author's agent proposes them: a fifth real (+5 to +15 points), two fifths neutral,
 * two fifths harmful (−3 to −20). An edit's points add to the lift of the best it was built on; every assertion's true
 * rate moves by them, within [1%, 99%], so gains flatten near the ceiling as real ones do.
 */
export function editStream(seed: number, length: number): number[] {
  const rand = mulberry32(seed * 7919 + 17);
  return Array.from({ length }, () => {
    const u = rand();
    if (u < 0.2) return 5 + Math.round(10 * rand());
    if (u < 0.6) return 0;
    return -(3 + Math.round(17 * rand()));
  });
}

interface Outcome {
  rule: Rule;
  seed: number;
  runs: number;
  tried: number;
  keeps: number;
  falseKeeps: number;
  /** Edits of +10 points or more: tried, and kept. */
  bigTried: number;
  bigKept: number;
  gain: number;
  error: string | null;
}

function makeRepo(rule: Rule, seed: number): string {
  const dir = mkdtempSync(join(tmpdir(), 'ratchet-bench-skill-'));
  const git = (...args: string[]) => execFileSync('git', ['-c', 'user.name=bench', '-c', 'user.email=bench@localhost', ...args], { cwd: dir, stdio: 'pipe' });
  git('init', '-q', '-b', 'main');
  writeFileSync(join(dir, 'skill.json'), JSON.stringify({ lift: 0, note: 'baseline' }) + '\n');
  const config = {
    editable: ['skill.json'],
    run: {
      command: `${JSON.stringify(process.execPath)} ${JSON.stringify(EXPERIMENT)}`,
      budgetSeconds: 30,
      graceSeconds: 1,
      env: { BENCH_SEED: String(seed), CASE_LINES: rule === 'paired (case lines)' ? '1' : '0' },
    },
    metric: { name: 'pass_rate', direction: 'maximize' },
    decision: { rule: rule === 'greedy' ? 'greedy' : 'significant' },
  };
  writeFileSync(join(dir, 'ratchet.json'), JSON.stringify(config, null, 2) + '\n');
  git('add', '-A');
  git('commit', '-q', '-m', 'skill baseline');
  return dir;
}

/** Edits whose true effect on the pass rate is at least this many points count as "+10-point" gains. */
const BIG = 8;

async function session(rule: Rule, seed: number, budget: number, keepRepo: boolean): Promise<Outcome> {
  const repo = makeRepo(rule, seed);
  const loop = new ResearchLoop({ repo, logger: pino({ level: 'silent' }) });
  const out: Outcome = { rule, seed, runs: 0, tried: 0, keeps: 0, falseKeeps: 0, bigTried: 0, bigKept: 0, gain: 0, error: null };
  const rates = truthRates(String(seed), 10, 4);
  const stream = editStream(seed, 400);
  let lift = 0;
  try {
    const { baseline } = await loop.startSession({ tag: 'bench' });
    await waitDone(loop, baseline.id);
    for (let i = 0; i < stream.length && (await loop.status()).runsSpent < budget; i++) {
      const next = lift + stream[i]!;
      const trueEffect = truePassRate(rates, next) - truePassRate(rates, lift);
      writeFileSync(join(repo, 'skill.json'), JSON.stringify({ lift: next, note: `edit ${i}` }) + '\n');
      const e = await loop.runExperiment({ description: `edit ${i} (true effect ${trueEffect.toFixed(1)} points)` });
      await waitDone(loop, e.id);
      const report = await loop.readMetric(e.id);
      out.tried++;
      if (trueEffect >= BIG) out.bigTried++;
      if (report.keepable) {
        await loop.keep({ id: e.id });
        lift = next;
        out.keeps++;
        if (trueEffect <= 0) out.falseKeeps++;
        if (trueEffect >= BIG) out.bigKept++;
      } else {
        await loop.revert({ id: e.id });
      }
    }
    out.runs = (await loop.status()).runsSpent;
  } catch (err) {
    out.error = (err as Error).message;
  }
  out.gain = truePassRate(rates, lift) - truePassRate(rates, 0);
  await loop.settle();
  loop.close();
  if (!keepRepo) rmSync(repo, { recursive: true, force: true });
  return out;
}

const pct = (a: number, b: number) => (b ? `${((100 * a) / b).toFixed(0)}%` : 'n/a');

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { budget: { type: 'string' }, seeds: { type: 'string' }, parallel: { type: 'string' }, json: { type: 'string' }, quick: { type: 'boolean' }, 'keep-repos': { type: 'boolean' } },
  });
  const budget = Number(values.budget ?? (values.quick ? 20 : 60));
  const seeds = Number(values.seeds ?? (values.quick ? 1 : 4));
  const parallel = Number(values.parallel ?? 2);
  const jobs = RULES.flatMap((rule) => Array.from({ length: seeds }, (_, s) => ({ rule, seed: s + 1 })));
  process.stderr.write(`pass-rate scenario: ${jobs.length} sessions of ${budget} runs, ${parallel} at a time\n`);
  const outcomes = await mapLimit(jobs, parallel, async (job) => {
    const o = await session(job.rule, job.seed, budget, values['keep-repos'] === true);
    process.stderr.write(`  ${job.rule} seed ${job.seed}: ${o.keeps} keeps (${o.falseKeeps} false), +${o.gain.toFixed(1)} true points in ${o.runs} runs${o.error ? ` ERROR ${o.error}` : ''}\n`);
    return o;
  });
  if (values.json) writeFileSync(values.json, JSON.stringify(outcomes, null, 2));
  const lines = [
    `### Pass-rate scenario (\`npx tsx bench/decisions/pass-rate.ts --budget ${budget} --seeds ${seeds}\`)`,
    '',
    `10 cases × 4 assertions × 3 trials per run; edits: 20% real (+5 to +15 points), 40% neutral, 40% harmful (−3 to −20), each moving every assertion's true rate within [1%, 99%]. Default settings (confidence 0.95, maxRepeats 5). Sums over ${seeds} seed(s) of ${budget} runs each.`,
    '',
    `| rule | runs | edits tried | keeps | false keeps (share of keeps) | edits of +${BIG} true points or more kept | true gain (points) | gain per 100 runs |`,
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const rule of RULES) {
    const mine = outcomes.filter((o) => o.rule === rule);
    const sum = (f: (o: Outcome) => number) => mine.reduce((a, o) => a + f(o), 0);
    const runs = sum((o) => o.runs);
    lines.push(
      `| ${rule} | ${runs} | ${sum((o) => o.tried)} | ${sum((o) => o.keeps)} | ${sum((o) => o.falseKeeps)} (${pct(sum((o) => o.falseKeeps), sum((o) => o.keeps))}) | ` +
        `${sum((o) => o.bigKept)} of ${sum((o) => o.bigTried)} (${pct(sum((o) => o.bigKept), sum((o) => o.bigTried))}) | ${sum((o) => o.gain).toFixed(1)} | ${runs ? ((100 * sum((o) => o.gain)) / runs).toFixed(1) : 'n/a'} |`,
    );
  }
  const errors = outcomes.filter((o) => o.error);
  if (errors.length) lines.push('', `Errors: ${errors.map((o) => `${o.rule} seed ${o.seed}: ${o.error}`).join('; ')}`);
  process.stdout.write(lines.join('\n') + '\n');
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? err}\n`);
  process.exitCode = 1;
});
