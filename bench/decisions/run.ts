// Decision benchmark: Karpathy's greedy keep rule against the statistical one, through the real loop.
// Each session is a fresh git repo driven by the real ResearchLoop exactly as an agent would drive it;
// the experiment is a real child process (synthetic-experiment.mjs) that prints a noisy measurement of
// a known true metric, and the candidates' true effects are resampled from a real auto-research log.
//
//   npx tsx bench/decisions/run.ts [--budget 48] [--seeds 3] [--ratios 0.5,1,2] [--parallel 2]
//       [--rules greedy,significant] [--prune-budget 24] [--prune-seeds 2] [--curve-steps 20] [--step-ms 150]
//       [--no-prune] [--prune-only] [--legacy] [--quick] [--json out.json] [--data file] [--keep-repos]
//
// Progress goes to stderr; the Markdown report to stdout. `npm run build` first: runs are supervised by dist/.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { ResearchLoop } from '../../src/core/loop.js';
import { parseConfig } from '../../src/core/config.js';
import { deriveEffects, makeStream, parseResults, typicalEffect } from './stream.js';
import { mapLimit } from '../../src/core/map-limit.js';
import { waitDone } from './sessions.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = resolve(HERE, '..', '..');
const DEFAULT_DATA = resolve(REPO_ROOT, '..', 'shared', 'data', 'karpathy-mar8-results.tsv');
const EXPERIMENT = join(HERE, 'synthetic-experiment.mjs');
const BASELINE_TRUTH = 0.9979;
/**
 * Sized so the default benchmark takes about 15 minutes on a 2-core machine (see README.md): a run
 * costs about 1.2 s through the loop, and the loop checks a run for pruning about once a second, so
 * the curve runs last 3 s (20 steps of 150 ms) to leave pruning something to save.
 */
const DEFAULTS = { budget: 48, seeds: 3, pruneBudget: 24, pruneSeeds: 2, curveSteps: 20, stepMs: 150 };

type Rule = 'greedy' | 'significant' | 'greedy-legacy';

interface Options {
  budget: number;
  seeds: number;
  ratios: number[];
  parallel: number;
  rules: Rule[];
  prune: boolean;
  /** Run the pruning scenario alone, without the rule grid. */
  pruneOnly: boolean;
  pruneBudget: number;
  pruneSeeds: number;
  curveSteps: number;
  stepMs: number;
  maxRepeats: number;
  confidence: number;
  data: string;
  json: string | null;
  keepRepos: boolean;
}

interface SessionSpec {
  label: string;
  rule: Rule;
  ratio: number;
  sigma: number;
  seed: number;
  budget: number;
  stream: number[];
  prune: boolean;
  curveSteps: number;
  stepMs: number;
  scenario: 'grid' | 'prune';
}

interface CandidateRecord {
  index: number;
  id: number;
  effect: number;
  truth: number;
  state: string;
  metric: number | null;
  kept: boolean;
  /** From read_metric's decision report, when this checkout's loop has one. */
  verdict: string | null;
  why: string | null;
  runs: number | null;
}

/** The parts of read_metric's report that only the statistical loop has; read loosely so the greedy-only loop also works. */
interface LooseReport {
  decision?: { verdict?: string; why?: string; runsSpent?: number } | null;
  noise?: { pooledSd?: number | null; df?: number; minDetectableEffect?: number | null } | null;
}

interface SessionResult {
  spec: Omit<SessionSpec, 'stream'>;
  candidates: CandidateRecord[];
  runs: number;
  runMs: number;
  baselineRuns: number;
  wallMs: number;
  finalTruth: number;
  improvement: number;
  /** The session's noise estimate after its last candidate (significant rule). */
  noise: LooseReport['noise'] | null;
  repo: string | null;
  error: string | null;
}

// ---------------------------------------------------------------- options

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      budget: { type: 'string' },
      seeds: { type: 'string' },
      ratios: { type: 'string' },
      parallel: { type: 'string' },
      rules: { type: 'string' },
      'prune-budget': { type: 'string' },
      'prune-seeds': { type: 'string' },
      'no-prune': { type: 'boolean', default: false },
      'prune-only': { type: 'boolean', default: false },
      'curve-steps': { type: 'string' },
      'step-ms': { type: 'string' },
      'max-repeats': { type: 'string' },
      confidence: { type: 'string' },
      legacy: { type: 'boolean', default: false },
      quick: { type: 'boolean', default: false },
      json: { type: 'string' },
      data: { type: 'string' },
      'keep-repos': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n').slice(0, 9).join('\n') + '\n');
    process.exit(0);
  }
  const num = (v: string | undefined, fallback: number, name: string, min = 0): number => {
    if (v === undefined) return fallback;
    const n = Number(v);
    if (!Number.isFinite(n) || n < min) throw new Error(`--${name} must be a number ≥ ${min}, got "${v}"`);
    return n;
  };
  const quick = values.quick;
  const budget = Math.floor(num(values.budget, quick ? 12 : DEFAULTS.budget, 'budget', 2));
  const rules = (values.rules ?? (values.legacy ? 'greedy-legacy' : 'greedy,significant')).split(',').map((r) => r.trim());
  for (const r of rules) if (r !== 'greedy' && r !== 'significant' && r !== 'greedy-legacy') throw new Error(`--rules: unknown rule "${r}"`);
  const ratios = (values.ratios ?? (quick ? '1' : '0.5,1,2')).split(',').map((r) => num(r, 1, 'ratios'));
  return {
    budget,
    seeds: Math.floor(num(values.seeds, quick ? 1 : DEFAULTS.seeds, 'seeds', 1)),
    ratios,
    parallel: Math.floor(num(values.parallel, 2, 'parallel', 1)),
    rules: rules as Rule[],
    prune: !values['no-prune'],
    pruneOnly: values['prune-only'] === true,
    pruneBudget: Math.floor(num(values['prune-budget'], quick ? 8 : DEFAULTS.pruneBudget, 'prune-budget', 2)),
    pruneSeeds: Math.floor(num(values['prune-seeds'], quick ? 1 : DEFAULTS.pruneSeeds, 'prune-seeds', 1)),
    curveSteps: Math.floor(num(values['curve-steps'], DEFAULTS.curveSteps, 'curve-steps', 1)),
    stepMs: num(values['step-ms'], DEFAULTS.stepMs, 'step-ms'),
    maxRepeats: Math.floor(num(values['max-repeats'], 5, 'max-repeats', 2)),
    confidence: num(values.confidence, 0.95, 'confidence'),
    data: values.data ? resolve(values.data) : DEFAULT_DATA,
    json: values.json ? resolve(values.json) : null,
    keepRepos: values['keep-repos'],
  };
}

/** Whether this checkout's config schema accepts a `decision` block (the significant rule). */
function schemaHasDecision(): boolean {
  try {
    parseConfig({
      editable: ['candidate.json'],
      run: { command: 'true', budgetSeconds: 1 },
      metric: { name: 'val_bpb', direction: 'minimize' },
      decision: { rule: 'greedy', prune: false },
    });
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------- one session

function ratchetConfig(spec: SessionSpec, opts: Options): Record<string, unknown> {
  const config: Record<string, unknown> = {
    editable: ['candidate.json'],
    run: {
      command: `${JSON.stringify(process.execPath)} ${JSON.stringify(EXPERIMENT)}`,
      budgetSeconds: 30,
      graceSeconds: 1,
      env: {
        SIGMA: String(spec.sigma),
        BENCH_SEED: `${spec.seed}-${spec.ratio}`,
        CURVE_STEPS: String(spec.scenario === 'prune' ? spec.curveSteps : 0),
        STEP_MS: String(spec.stepMs),
      },
    },
    metric: { name: 'val_bpb', direction: 'minimize' },
  };
  if (spec.rule !== 'greedy-legacy') {
    config.decision = { rule: spec.rule, confidence: opts.confidence, maxRepeats: opts.maxRepeats, prune: spec.prune };
  }
  return config;
}

function makeRepo(spec: SessionSpec, opts: Options): string {
  const dir = mkdtempSync(join(tmpdir(), 'ratchet-bench-'));
  const git = (...args: string[]) => execFileSync('git', ['-c', 'user.name=bench', '-c', 'user.email=bench@localhost', ...args], { cwd: dir, stdio: 'pipe' });
  git('init', '-q', '-b', 'main');
  git('config', 'user.name', 'bench');
  git('config', 'user.email', 'bench@localhost');
  writeFileSync(join(dir, 'candidate.json'), candidateJson(BASELINE_TRUTH, 'baseline'));
  writeFileSync(join(dir, 'ratchet.json'), JSON.stringify(ratchetConfig(spec, opts), null, 2) + '\n');
  git('add', '-A');
  git('commit', '-q', '-m', 'benchmark baseline');
  return dir;
}

function candidateJson(truth: number, note: string): string {
  return JSON.stringify({ truth, note }, null, 2) + '\n';
}

const FINISHED = "state NOT IN ('refused','queued','running')";


async function runSession(spec: SessionSpec, opts: Options): Promise<SessionResult> {
  const started = Date.now();
  const repo = makeRepo(spec, opts);
  const loop = new ResearchLoop({ repo, logger: pino({ level: 'silent' }) });
  const candidates: CandidateRecord[] = [];
  let bestTruth = BASELINE_TRUTH;
  let error: string | null = null;
  let sessionId = -1;
  const spent = (): { n: number; ms: number } =>
    loop.ledger.db.prepare(`SELECT COUNT(*) AS n, COALESCE(SUM(duration_ms),0) AS ms FROM experiments WHERE session_id = ? AND ${FINISHED}`).get(sessionId) as {
      n: number;
      ms: number;
    };
  let baselineRuns = 0;
  let noise: LooseReport['noise'] | null = null;
  try {
    const holder = await loop.claim();
    if (holder) throw new Error(`repo ${repo} is held by pid ${holder.pid}`);
    const { baseline } = await loop.startSession({ tag: 'bench' });
    sessionId = loop.ledger.sessionByTag('bench')!.id;
    const baselineState = await waitDone(loop, baseline.id);
    if (baselineState !== 'measured') throw new Error(`the baseline ended ${baselineState}: ${(await loop.readMetric(baseline.id)).logTail?.join('\n') ?? ''}`);
    baselineRuns = spent().n;
    for (let i = 0; i < spec.stream.length && spent().n < spec.budget; i++) {
      const effect = spec.stream[i]!;
      const truth = bestTruth + effect;
      writeFileSync(join(repo, 'candidate.json'), candidateJson(truth, `candidate ${i}`));
      const launched = await loop.runExperiment({ description: `candidate ${i} (true effect ${effect >= 0 ? '+' : ''}${effect.toFixed(6)})` });
      const state = await waitDone(loop, launched.id);
      const report = await loop.readMetric(launched.id);
      const loose = report as unknown as LooseReport;
      noise = loose.noise ?? null;
      const kept = report.keepable;
      if (kept) {
        await loop.keep({ id: launched.id });
        bestTruth = truth;
      } else {
        await loop.revert({ id: launched.id });
      }
      candidates.push({
        index: i,
        id: launched.id,
        effect,
        truth,
        state,
        metric: report.experiment.metric,
        kept,
        verdict: loose.decision?.verdict ?? null,
        why: loose.decision?.why ?? null,
        runs: loose.decision?.runsSpent ?? null,
      });
    }
    if (spent().n < spec.budget) error = `the stream (${spec.stream.length} candidates) ran out before the budget`;
  } catch (err) {
    error = (err as Error).message;
  }
  const { n, ms } = sessionId >= 0 ? spent() : { n: 0, ms: 0 };
  await loop.settle();
  loop.close();
  if (!opts.keepRepos) rmSync(repo, { recursive: true, force: true });
  const { stream: _stream, ...rest } = spec;
  return {
    spec: rest,
    candidates,
    runs: n,
    runMs: ms,
    baselineRuns,
    wallMs: Date.now() - started,
    finalTruth: bestTruth,
    improvement: BASELINE_TRUTH - bestTruth,
    noise,
    repo: opts.keepRepos ? repo : null,
    error,
  };
}


// ---------------------------------------------------------------- report

interface Summary {
  rule: Rule;
  ratio: number;
  sigma: number;
  sessions: number;
  candidates: number;
  runs: number;
  /** Runs spent on candidates (their repeats and the best's re-measurements), baseline calibration excluded. */
  candidateRuns: number;
  improvement: number;
  improvementSd: number;
  improvementX: number;
  perRun: number;
  keeps: number;
  falseKeeps: number;
  falseShare: number | null;
  helpfulTried: number;
  missed: number;
  runSeconds: number;
  repeatsSeen: boolean;
  errors: string[];
}

const mean = (xs: number[]): number => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);
const sd = (xs: number[]): number => {
  if (xs.length < 2) return 0;
  const m = mean(xs);
  return Math.sqrt(xs.reduce((a, x) => a + (x - m) ** 2, 0) / (xs.length - 1));
};

function summarize(results: SessionResult[], typical: number): Summary {
  const first = results[0]!.spec;
  const all = results.flatMap((r) => r.candidates);
  const keeps = all.filter((c) => c.kept);
  const falseKeeps = keeps.filter((c) => c.effect >= 0);
  const helpful = all.filter((c) => c.effect < 0);
  const improvement = mean(results.map((r) => r.improvement));
  const runs = mean(results.map((r) => r.runs));
  return {
    rule: first.rule,
    ratio: first.ratio,
    sigma: first.sigma,
    sessions: results.length,
    candidates: mean(results.map((r) => r.candidates.length)),
    runs,
    candidateRuns: mean(results.map((r) => r.runs - r.baselineRuns)),
    improvement,
    improvementSd: sd(results.map((r) => r.improvement)),
    improvementX: improvement / typical,
    perRun: improvement / runs,
    keeps: keeps.length / results.length,
    falseKeeps: falseKeeps.length / results.length,
    falseShare: keeps.length ? falseKeeps.length / keeps.length : null,
    helpfulTried: helpful.length / results.length,
    missed: helpful.filter((c) => !c.kept).length / results.length,
    runSeconds: mean(results.map((r) => r.runMs / 1000)),
    // One run per candidate plus one baseline run means the loop ran no repeats (greedy semantics).
    repeatsSeen: results.some((r) => r.runs > r.candidates.length + 1),
    errors: results.flatMap((r) => (r.error ? [`${r.spec.label}: ${r.error}`] : [])),
  };
}

const f = (x: number, digits = 1): string => (Number.isFinite(x) ? x.toFixed(digits) : '–');
const bpb = (x: number): string => (Number.isFinite(x) ? x.toFixed(5) : '–');
const pct = (x: number | null): string => (x === null || !Number.isFinite(x) ? '–' : `${Math.round(x * 100)}%`);

function gridTable(summaries: Summary[]): string {
  const lines = [
    '| noise σ/typical | rule | candidates | runs | true improvement (val_bpb) | × typical | per 100 runs (× typical) | keeps | false keeps (share) | missed / helpful tried |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const s of summaries) {
    lines.push(
      `| ${s.ratio} (σ=${s.sigma.toFixed(6)}) | ${s.rule}${s.rule === 'significant' && !s.repeatsSeen ? ' ⚠ no repeats' : ''} | ${f(s.candidates)} | ${f(s.runs)} | ${bpb(s.improvement)} ± ${bpb(s.improvementSd)} | ${f(s.improvementX, 2)} | ${f((s.improvementX / s.runs) * 100, 2)} | ${f(s.keeps)} | ${f(s.falseKeeps)} (${pct(s.falseShare)}) | ${f(s.missed)} / ${f(s.helpfulTried)} |`,
    );
  }
  return lines.join('\n');
}

function sideBySide(summaries: Summary[]): string {
  const lines: string[] = [];
  const ratios = [...new Set(summaries.map((s) => s.ratio))];
  for (const ratio of ratios) {
    const g = summaries.find((s) => s.ratio === ratio && s.rule !== 'significant');
    const sig = summaries.find((s) => s.ratio === ratio && s.rule === 'significant');
    if (!g || !sig) continue;
    const r = (a: number, b: number): string => (b !== 0 && Number.isFinite(a / b) ? `${(a / b).toFixed(2)}×` : '–');
    lines.push(
      `- σ = ${ratio} × typical: significant/greedy improvement per run ${r(sig.perRun, g.perRun)}, improvement reached ${r(sig.improvement, g.improvement)}, ` +
        `runs per candidate (baseline excluded) ${f(sig.candidateRuns / sig.candidates, 2)} vs ${f(g.candidateRuns / g.candidates, 2)}, false-keep share ${pct(sig.falseShare)} vs ${pct(g.falseShare)}, ` +
        `missed improvements ${f(sig.missed)} vs ${f(g.missed)} per session.`,
    );
  }
  return lines.join('\n');
}

function pruneTable(off: SessionResult[], on: SessionResult[], typical: number): string {
  const lost = off.map((r, i) => {
    const other = on[i]!;
    const keptOn = new Set(other.candidates.filter((c) => c.kept).map((c) => c.index));
    const triedOn = new Set(other.candidates.map((c) => c.index));
    const lostHere = r.candidates.filter((c) => c.kept && c.effect < 0 && triedOn.has(c.index) && !keptOn.has(c.index));
    return lostHere.length;
  });
  const row = (name: string, rs: SessionResult[], lostPerSession: number | null, savedPct: number | null): string => {
    const improvement = mean(rs.map((r) => r.improvement));
    const pruned = mean(rs.map((r) => r.candidates.filter((c) => c.state === 'pruned').length));
    return `| ${name} | ${f(mean(rs.map((r) => r.candidates.length)))} | ${f(mean(rs.map((r) => r.runs)))} | ${f(mean(rs.map((r) => r.runMs / 1000)))} | ${savedPct === null ? '–' : pct(savedPct)} | ${bpb(improvement)} (${f(improvement / typical, 2)} × typical) | ${f(pruned)} | ${lostPerSession === null ? '–' : f(lostPerSession)} |`;
  };
  const secOff = off.reduce((a, r) => a + r.runMs, 0);
  const secOn = on.reduce((a, r) => a + r.runMs, 0);
  return [
    '| prune | candidates | runs | run seconds | time saved | true improvement | pruned | true improvements lost |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
    row('false', off, null, null),
    row('true', on, mean(lost), secOff ? 1 - secOn / secOff : null),
  ].join('\n');
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  const commandLine = `npx tsx bench/decisions/run.ts${process.argv.length > 2 ? ` ${process.argv.slice(2).join(' ')}` : ''}`;
  if (!existsSync(join(REPO_ROOT, 'dist', 'core', 'runner', 'supervise.js'))) {
    throw new Error('dist/ is missing: run `npm run build` first (runs are supervised by dist/core/runner/supervise.js).');
  }
  if (!existsSync(opts.data)) throw new Error(`no data file at ${opts.data}; pass --data <results.tsv>`);
  const effects = deriveEffects(parseResults(readFileSync(opts.data, 'utf8'))).map((e) => e.effect);
  const typical = typicalEffect(effects);
  const helpfulShare = effects.filter((e) => e < 0).length / effects.length;

  // Without a `decision` block in the schema, greedy is the only rule (and must be written without the block).
  const hasDecision = schemaHasDecision();
  const notes: string[] = [];
  let rules = opts.rules;
  if (!hasDecision) {
    if (rules.includes('significant')) notes.push('The config schema in this checkout has no `decision` block: the significant arm and the pruning scenario were skipped.');
    rules = [...new Set(rules.filter((r) => r !== 'significant').map((r) => (r === 'greedy' ? 'greedy-legacy' : r)))] as Rule[];
  }
  if (hasDecision && rules.includes('greedy-legacy')) {
    // Omitting the block now means the schema's default rule (significant), not greedy.
    notes.push('The config schema in this checkout has a `decision` block, so greedy-legacy ran as `decision.rule: "greedy"`.');
    rules = [...new Set(rules.map((r) => (r === 'greedy-legacy' ? 'greedy' : r)))] as Rule[];
  }
  const runPrune = opts.prune && hasDecision && rules.includes('significant');

  // The stream depends only on the seed: every rule and noise level sees the same candidates in the same order.
  // Long enough that the run budget, not the stream, ends every session.
  const streamFor = (seed: number, budget: number) => makeStream({ effects, length: budget, seed: 1000 + seed });
  // The longest sessions (the curve runs) first: the pool then finishes closer together.
  const specs: SessionSpec[] = [];
  if (runPrune) {
    for (let seed = 1; seed <= opts.pruneSeeds; seed++) {
      for (const prune of [false, true]) {
        specs.push({
          label: `prune=${prune} significant σ=1×typical curve seed ${seed}`,
          rule: 'significant',
          ratio: 1,
          sigma: typical,
          seed,
          budget: opts.pruneBudget,
          stream: streamFor(seed, opts.pruneBudget),
          prune,
          curveSteps: opts.curveSteps,
          stepMs: opts.stepMs,
          scenario: 'prune',
        });
      }
    }
  }
  for (const ratio of opts.pruneOnly ? [] : opts.ratios) {
    for (const rule of rules) {
      for (let seed = 1; seed <= opts.seeds; seed++) {
        specs.push({
          label: `${rule} σ=${ratio}×typical seed ${seed}`,
          rule,
          ratio,
          sigma: ratio * typical,
          seed,
          budget: opts.budget,
          stream: streamFor(seed, opts.budget),
          prune: false,
          curveSteps: opts.curveSteps,
          stepMs: opts.stepMs,
          scenario: 'grid',
        });
      }
    }
  }

  process.stderr.write(
    `decision benchmark: ${effects.length} real effects from ${opts.data} (typical |effect| ${typical.toFixed(6)} val_bpb, ${pct(helpfulShare)} helpful); ` +
      `${specs.length} sessions, budget ${opts.budget} runs${runPrune ? ` (prune scenario ${opts.pruneBudget})` : ''}, parallel ${opts.parallel}\n`,
  );
  const t0 = Date.now();
  let done = 0;
  const results = await mapLimit(specs, opts.parallel, async (spec) => {
    const r = await runSession(spec, opts);
    done++;
    process.stderr.write(
      `[${done}/${specs.length}] ${spec.label}: ${r.candidates.length} candidates, ${r.runs} runs, ${r.candidates.filter((c) => c.kept).length} keeps, ` +
        `improvement ${bpb(r.improvement)}, ${(r.wallMs / 1000).toFixed(1)} s wall (${(r.wallMs / Math.max(1, r.runs)).toFixed(0)} ms/run, child ${(r.runMs / Math.max(1, r.runs)).toFixed(0)} ms/run)` +
        `${r.noise?.df ? `, noise sd ${r.noise.pooledSd?.toFixed(6)} (df ${r.noise.df}), MDE ${r.noise.minDetectableEffect?.toFixed(6) ?? '–'}` : ''}` +
        `${r.repo ? `, repo kept at ${r.repo}` : ''}${r.error ? ` ERROR ${r.error}` : ''}\n`,
    );
    return r;
  });
  const wallSeconds = (Date.now() - t0) / 1000;

  const grid = results.filter((r) => r.spec.scenario === 'grid');
  const summaries: Summary[] = [];
  for (const ratio of opts.ratios) {
    for (const rule of rules) {
      const group = grid.filter((r) => r.spec.ratio === ratio && r.spec.rule === rule);
      if (group.length) summaries.push(summarize(group, typical));
    }
  }
  for (const s of summaries) {
    if (s.rule === 'significant' && !s.repeatsSeen) {
      notes.push(`σ=${s.ratio}: the significant arm ran no repeats (one run per candidate): src/core/loop.ts does not implement the rule yet, so that arm measured greedy behaviour.`);
    }
  }
  const gridRuns = grid.reduce((a, r) => a + r.runs, 0);
  const gridWall = grid.reduce((a, r) => a + r.wallMs, 0);
  const gridChild = grid.reduce((a, r) => a + r.runMs, 0);

  const out: string[] = [];
  out.push('## Decision benchmark: greedy vs significant keep rule');
  out.push('');
  out.push(`Command: \`${commandLine}\``);
  out.push('');
  out.push(
    `Data: ${effects.length} real effects (val_bpb minus the running best) from \`${opts.data.startsWith(REPO_ROOT) ? opts.data.slice(REPO_ROOT.length + 1) : opts.data}\`; ` +
      `typical |effect| ${typical.toFixed(6)} val_bpb; ${pct(helpfulShare)} helpful. Budget ${opts.budget} runs per session (every run counts: baseline calibration and repeats included); ` +
      `${opts.seeds} seed(s) per cell, means per session (± sd over seeds). Baseline truth ${BASELINE_TRUTH}.`,
  );
  out.push('');
  out.push(gridTable(summaries));
  const sbs = sideBySide(summaries);
  if (sbs) out.push('', sbs);
  if (runPrune) {
    const pr = results.filter((r) => r.spec.scenario === 'prune');
    out.push('');
    out.push(
      `### Pruning (significant rule, σ = 1 × typical, learning curve of ${opts.curveSteps} steps × ${opts.stepMs} ms, budget ${opts.pruneBudget} runs, ${opts.pruneSeeds} seed(s); prune off and on see the same stream and seed)`,
    );
    out.push('');
    out.push(pruneTable(pr.filter((r) => !r.spec.prune), pr.filter((r) => r.spec.prune), typical));
  }
  out.push('');
  out.push(
    `Timing: ${results.length} sessions in ${wallSeconds.toFixed(0)} s wall (parallel ${opts.parallel}); grid: ${gridRuns} runs, ` +
      `${(gridWall / Math.max(1, gridRuns)).toFixed(0)} ms per run through the loop (session wall / runs), of which ${(gridChild / Math.max(1, gridRuns)).toFixed(0)} ms in the child.`,
  );
  const errors = [...summaries.flatMap((s) => s.errors), ...results.filter((r) => r.spec.scenario === 'prune' && r.error).map((r) => `${r.spec.label}: ${r.error}`)];
  for (const n of [...notes, ...errors.map((e) => `Error: ${e}`)]) out.push('', `> ${n}`);
  process.stdout.write(out.join('\n') + '\n');

  if (opts.json) {
    writeFileSync(opts.json, JSON.stringify({ command: commandLine, options: opts, typicalEffect: typical, effects: effects.length, wallSeconds, summaries, sessions: results }, null, 2) + '\n');
    process.stderr.write(`wrote ${opts.json}\n`);
  }
  if (errors.length) process.exitCode = 1;
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
