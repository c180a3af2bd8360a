// npm run bench:pool — the real server over stdio, driven by a scripted agent that keeps the queue full, on a fake
// nvidia-smi narrowed to 1, 2, 4 and 8 devices: runs per minute, each device's busy fraction, the lease hand-off gap,
// and the speed-up against 1 device, all measured side by side in one run.
//
//   npx tsx bench/pool/run.ts [--sleep 3] [--runs 10] [--devices 1,2,4,8] [--agents 1,2] [--sandbox auto|required|off] [--json out.json] [--keep-repos]
//
// With --agents 2, a second agent works from its own worktree (`ratchet worktree add`) with its own server, both on one
// ledger and one pool, each keeping half the queue.
//
// Progress goes to stderr; the Markdown report to stdout. `npm run build` first: the server is dist/cli.js.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { median, quantile, splitByCalls, summarize, type Handoff, type Interval, type PoolSummary, type RunTimes } from './measure.js';
import { readRuns } from './read.js';
import { CLI, connect, countQueries, FIXTURE, makeBenchRepo, type Call, type CallTimes } from './server.js';

const TARGETS = { busy: 0.95, gapMs: 200, speedup: { devices: 4, atLeast: 3.6 } };

interface Options {
  sleep: number;
  runs: number;
  devices: number[];
  agents: number[];
  sandbox: 'auto' | 'required' | 'off';
  keepRepos: boolean;
  json: string | undefined;
}

interface Outcome {
  devices: number;
  agents: number;
  sandbox: string;
  summary: PoolSummary | null;
  runs: RunTimes[];
  calls: CallTimes;
  /** Calls the server made to the fake nvidia-smi, by query: --query-gpu, -L, --query-compute-apps. */
  smi: { gpu: number; list: number; apps: number };
  /** Candidates that ended other than measured before the agent stopped (crashed, timed out). */
  failed: string[];
  error: string | null;
  repo: string;
}

/** The command each run executes: its own timestamps around a fixed sleep, then the metric. */
function runCommand(sleep: number): string {
  return `echo "bench-work-start $(date +%s%3N)"; sleep ${sleep}; echo "bench-work-end $(date +%s%3N)"; echo "score: $(cat value.txt)"`;
}

function makeRepo(root: string, opts: Options): string {
  return makeBenchRepo(root, '0', {
    protected: [],
    run: { command: runCommand(opts.sleep), budgetSeconds: Math.ceil(opts.sleep) + 60, graceSeconds: 1 },
    metric: { name: 'score', direction: 'minimize' },
    decision: { rule: 'greedy' },
    parallel: 8,
    gpu: { required: true, perRun: 1 },
    sandbox: opts.sandbox,
  });
}

const settled = (state: string) => state !== 'running' && state !== 'queued';

/**
 * The scripted agent: fills the pool and a queue twice as deep, then for each run that finishes reverts it and submits
 * the next edit, until `target` candidates are measured; what is still in flight then is cancelled.
 */
async function startSession(call: Call): Promise<string> {
  const started = await call('start_session', { tag: 'bench' });
  for (let e = started.baseline; !settled(e.state); ) e = (await call('wait_experiment', { id: e.id, wait_seconds: 50 })).experiment;
  return (started.sandbox as { kind: string }).kind;
}

/** One agent's loop: its share of the queue (`depth`) kept full until it has `target` candidates measured. */
async function drive(call: Call, repo: string, devices: number, target: number, depth: number, agent: string): Promise<{ failed: string[] }> {
  const inFlight = new Set<number>();
  const failed: string[] = [];
  let edits = 0;
  let measured = 0;
  let shown = 0;
  const submit = async () => {
    edits++;
    writeFileSync(join(repo, 'value.txt'), `${edits}\n`);
    inFlight.add((await call('run_experiment', { description: `edit ${edits}`, wait_seconds: 0 })).experiment.id);
  };
  while (inFlight.size < depth) await submit();
  while (measured < target) {
    // wait_experiment {next: true} watches what is in flight when it is called: a run that ended since the last look
    // is found in the status instead, so the agent looks there first and waits only when nothing has ended.
    const parallel = (await call('status', { agent })).parallel as { inFlight: { id: number }[]; queued: number[] };
    const still = new Set([...parallel.inFlight.map((e) => e.id), ...parallel.queued]);
    const ended = [...inFlight].filter((id) => !still.has(id));
    if (!ended.length) {
      await call('wait_experiment', { next: true, wait_seconds: 50 });
      continue;
    }
    for (const id of ended) {
      inFlight.delete(id);
      const e = (await call('revert', { id })).experiment;
      if (e?.state === 'measured') measured++;
      else failed.push(`#${id} ${e?.state}: ${e?.reason ?? ''}`);
    }
    if (failed.length > 2 * devices) throw new Error(`runs keep failing, so the pool cannot be measured: ${failed.slice(0, 3).join('; ')}`);
    if (measured < target) while (inFlight.size < depth) await submit();
    if (measured >= shown + devices * 2 || measured >= target) {
      shown = measured;
      process.stderr.write(`  ${devices} device(s), agent ${agent}: ${measured}/${target} measured, ${inFlight.size} in flight\n`);
    }
  }
  // Queued ones first, newest first, so cancelling a running one does not start another.
  const parallel = (await call('status', { agent })).parallel as { inFlight: { id: number }[]; queued: number[] };
  for (const id of [...parallel.queued].reverse()) await call('cancel_experiment', { id });
  for (const { id } of parallel.inFlight) await call('cancel_experiment', { id });
  for (let i = 0; i < 100 && ((await call('status', { agent })).parallel as { inFlight: unknown[] }).inFlight.length; i++) await new Promise((r) => setTimeout(r, 100));
  return { failed };
}

async function measure(devices: number, agents: number, opts: Options): Promise<Outcome> {
  const root = mkdtempSync(join(tmpdir(), 'ratchet-bench-pool-'));
  const repo = makeRepo(root, opts);
  const target = devices * opts.runs;
  const out: Outcome = { devices, agents, sandbox: '?', summary: null, runs: [], calls: {}, smi: { gpu: 0, list: 0, apps: 0 }, failed: [], error: null, repo: root };
  const servers: Awaited<ReturnType<typeof connect>>[] = [];
  try {
    servers.push(await connect(repo, root, devices));
    out.sandbox = await startSession(servers[0]!.call);
    const trees = [repo];
    for (let a = 1; a < agents; a++) {
      const tree = join(root, `agent-${a}`);
      execFileSync(process.execPath, [CLI, 'worktree', 'add', `agent-${a}`, '--repo', repo, '--path', tree], { stdio: 'pipe' });
      trees.push(tree);
      servers.push(await connect(tree, root, devices));
    }
    // Runs that end together empty the queue together, and an agent refills it one call at a time: three times the
    // devices, shared among the agents, keeps a queue through such a burst.
    const depth = Math.ceil((3 * devices) / agents);
    const share = (a: number) => Math.floor(target / agents) + (a < target % agents ? 1 : 0);
    const driven = await Promise.all(servers.map((s, a) => drive(s.call, trees[a]!, devices, share(a), depth, a === 0 ? 'main' : `agent-${a}`)));
    out.failed = driven.flatMap((d) => d.failed);
  } catch (err) {
    out.error = (err as Error).message;
  } finally {
    out.calls = mergeCalls(servers.map((s) => s.times));
    for (const s of servers) await s.close();
    out.smi = countQueries(root);
  }
  try {
    if (!out.error) {
      out.runs = readRuns(repo);
      out.summary = summarize(out.runs, target, Array.from({ length: devices }, (_, i) => i));
    }
  } catch (err) {
    out.error = (err as Error).message;
  }
  if (!opts.keepRepos) rmSync(root, { recursive: true, force: true });
  return out;
}

function mergeCalls(all: CallTimes[]): CallTimes {
  const merged: CallTimes = {};
  for (const times of all) for (const [name, calls] of Object.entries(times)) (merged[name] ??= []).push(...calls);
  return merged;
}

/** A row's devices, and its agents when more than one shared them. */
const label = (o: Outcome) => `${o.devices}${o.agents > 1 ? ` (${o.agents} agents)` : ''}`;
const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
const msText = (x: number) => (Number.isFinite(x) ? `${Math.round(x)}` : 'n/a');
const met = (ok: boolean) => (ok ? 'met' : '**missed**');
const durations = (calls: Interval[] | undefined) => (calls ?? []).map((c) => c.end - c.start);
const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : Number.NaN);
/** The agent's calls that change git or the ledger: the server serves them one at a time, and a hand-off waits its turn behind them. */
const EXCLUSIVE = ['run_experiment', 'revert', 'cancel_experiment'];

function report(outcomes: Outcome[], opts: Options, command: string): string {
  // The speed-up is against one device driven by one agent.
  const one = outcomes.find((o) => o.devices === 1 && o.agents === 1)?.summary;
  const measured = outcomes.filter((o): o is Outcome & { summary: PoolSummary } => o.summary !== null);
  const lines = [
    `### Device pool (\`${command}\`)`,
    '',
    `The built server (\`node dist/cli.js serve\`) over stdio, driven by a scripted agent that keeps 3 × devices candidates in flight ` +
      `(run_experiment {wait_seconds: 0}, status, wait_experiment {next: true}, revert {id}); greedy, parallel 8, gpu {required, perRun 1}; ` +
      `the fake nvidia-smi replaying ${FIXTURE}, narrowed by the server's CUDA_VISIBLE_DEVICES. Sandbox: ${[...new Set(outcomes.map((o) => o.sandbox))].join(', ')}. ` +
      `Each run sleeps ${opts.sleep} s between two timestamps it prints (ms); the window runs from the first run's work to the end of the (devices × ${opts.runs})-th.`,
    '',
    '| devices | agents | runs | window (s) | runs/min | speed-up vs 1 | busy: lowest device | busy: mean | leased: mean | hand-off gap median (ms) | gap p95 (ms) | idle between runs median (ms) | dry hand-offs | runs started out of order | ramp-up (ms) |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const o of outcomes) {
    const s = o.summary;
    if (!s) {
      lines.push(`| ${o.devices} | ${o.agents} | error: ${o.error} |`);
      continue;
    }
    const busy = s.devices.map((d) => d.fraction);
    const gaps = s.handoffs.map((h) => h.gapMs);
    lines.push(
      `| ${o.devices} | ${o.agents} | ${s.runs} | ${((s.window.end - s.window.start) / 1000).toFixed(1)} | ${s.runsPerMinute.toFixed(1)} | ${one ? `${(s.runsPerMinute / one.runsPerMinute).toFixed(2)}×` : 'n/a'} | ` +
        `${pct(Math.min(...busy))} | ${pct(mean(busy))} | ${pct(mean(s.devices.map((d) => d.leasedFraction)))} | ${msText(median(gaps))} | ${msText(quantile(gaps, 0.95))} | ` +
        `${msText(median(s.handoffs.map((h) => h.idleMs)))} | ${s.handoffs.filter((h) => h.dry).length} of ${s.handoffs.length} | ${s.outOfOrder.length} | ${msText(s.rampMs)} |`,
    );
  }
  lines.push('', 'Busy fraction of each device in the pool (its work over its span in the window; runs in brackets):', '', `| devices | ${Array.from({ length: 8 }, (_, i) => `GPU ${i}`).join(' | ')} |`, `|---|${'---|'.repeat(8)}`);
  for (const o of measured) {
    const cells = Array.from({ length: 8 }, (_, i) => o.summary.devices.find((d) => d.device === i));
    lines.push(`| ${label(o)} | ${cells.map((d) => (d ? `${pct(d.fraction)} (${d.runs})` : '')).join(' | ')} |`);
  }
  lines.push(
    '',
    'Where the idle time between two runs on one device goes (medians, ms): the work ends → its lease is given back (result heard, recorded, measured); ' +
      '→ the next lease is taken (the scheduler: its turn behind other calls, nvidia-smi); → the next command is spawned (workspace, supervisor); → its work begins (cgroup, sandbox, shell). ' +
      "The last two columns split the scheduler's part by whether one of the agent's run_experiment, revert or cancel calls was being served when the lease came back.",
    '',
    '| devices | work end → lease back | lease back → next lease | lease → spawn | spawn → work | lease back → next lease, agent call in flight | same, none in flight |',
    '|---|---|---|---|---|---|---|',
  );
  for (const o of measured) {
    const h = o.summary.handoffs;
    const m = (xs: Handoff[], f: (x: Handoff) => number) => `${msText(median(xs.map(f)))}`;
    const split = splitByCalls(h, EXCLUSIVE.flatMap((name) => o.calls[name] ?? []));
    lines.push(
      `| ${label(o)} | ${m(h, (x) => x.recordMs)} | ${m(h, (x) => x.scheduleMs)} | ${m(h, (x) => x.launchMs)} | ${m(h, (x) => x.sandboxMs)} | ` +
        `${m(split.during, (x) => x.scheduleMs)} (${split.during.length}) | ${m(split.clear, (x) => x.scheduleMs)} (${split.clear.length}) |`,
    );
  }
  lines.push(
    '',
    "The agent's side: its calls as it saw them (median ms), its time per candidate (run_experiment + revert + status, summed over the session, per candidate submitted), " +
      'the most runs a minute it can feed at that pace, and the fake nvidia-smi calls the server made per run started.',
    '',
    '| devices | run_experiment | revert | status | wait_experiment | agent ms per candidate | most runs/min it can feed | nvidia-smi calls per run (query-gpu, -L, compute-apps) |',
    '|---|---|---|---|---|---|---|---|',
  );
  for (const o of outcomes) {
    const c = o.calls;
    const sum = (name: string) => durations(c[name]).reduce((a, b) => a + b, 0);
    const perCandidate = c.run_experiment?.length ? (sum('run_experiment') + sum('revert') + sum('status')) / c.run_experiment.length : Number.NaN;
    const started = o.runs.length + 1; // the baseline too
    const per = (n: number) => (n / started).toFixed(1);
    lines.push(
      `| ${label(o)} | ${msText(median(durations(c.run_experiment)))} | ${msText(median(durations(c.revert)))} | ${msText(median(durations(c.status)))} | ${msText(median(durations(c.wait_experiment)))} | ` +
        `${msText(perCandidate)} | ${msText(60_000 / perCandidate)} | ${per(o.smi.gpu + o.smi.list + o.smi.apps)} (${per(o.smi.gpu)}, ${per(o.smi.list)}, ${per(o.smi.apps)}) |`,
    );
  }
  const busyOk = measured.length > 0 && measured.every((o) => o.summary.devices.every((d) => d.fraction >= TARGETS.busy) && o.summary.handoffs.every((h) => !h.dry));
  const gapOk = measured.length > 0 && measured.every((o) => !o.summary.handoffs.length || median(o.summary.handoffs.map((h) => h.gapMs)) < TARGETS.gapMs);
  const fours = measured.filter((o) => o.devices === TARGETS.speedup.devices);
  const speedups = one ? fours.map((o) => ({ agents: o.agents, x: o.summary.runsPerMinute / one.runsPerMinute })) : [];
  const speedup = speedups.length ? Math.min(...speedups.map((s) => s.x)) : null;
  lines.push(
    '',
    'Targets:',
    '',
    `- busy fraction ≥ ${pct(TARGETS.busy)} on every device, the queue never dry: ${met(busyOk)}`,
    `- hand-off gap (lease given back → the next run's work begins) median < ${TARGETS.gapMs} ms: ${met(gapOk)}`,
    `- speed-up with ${TARGETS.speedup.devices} devices ≥ ${TARGETS.speedup.atLeast}×: ${speedup === null ? `not measured (needs --devices with 1 and ${TARGETS.speedup.devices})` : `${met(speedup >= TARGETS.speedup.atLeast)} (${speedups.map((x) => `${x.x.toFixed(2)}× with ${x.agents} agent(s)`).join(', ')})`}`,
  );
  const overlaps = measured.flatMap((o) => o.summary.devices.filter((d) => d.overlaps).map((d) => `${label(o)} devices, GPU ${d.device}: ${d.overlaps}`));
  if (overlaps.length) lines.push('', `Runs that overlapped on one device (a double lease): ${overlaps.join('; ')}`);
  const problems = outcomes.flatMap((o) => [...(o.error ? [`${label(o)} devices: ${o.error}`] : []), ...o.failed.map((f) => `${label(o)} devices: ${f}`)]);
  if (problems.length) lines.push('', `Errors: ${problems.join('; ')}`);
  return lines.join('\n') + '\n';
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { sleep: { type: 'string' }, runs: { type: 'string' }, devices: { type: 'string' }, agents: { type: 'string' }, sandbox: { type: 'string' }, json: { type: 'string' }, 'keep-repos': { type: 'boolean' } },
  });
  const opts: Options = {
    sleep: Number(values.sleep ?? 3),
    runs: Number(values.runs ?? 10),
    devices: (values.devices ?? '1,2,4,8').split(',').map(Number),
    agents: (values.agents ?? '1').split(',').map(Number),
    sandbox: (values.sandbox ?? 'auto') as Options['sandbox'],
    keepRepos: values['keep-repos'] === true,
    json: values.json,
  };
  if (!(opts.sleep > 0) || !Number.isInteger(opts.runs) || opts.runs < 2 || opts.devices.some((d) => !Number.isInteger(d) || d < 1 || d > 8) || opts.agents.some((a) => !Number.isInteger(a) || a < 1 || a > 4) || !['auto', 'required', 'off'].includes(opts.sandbox)) {
    throw new Error('usage: bench/pool/run.ts [--sleep seconds > 0] [--runs n ≥ 2] [--devices 1,2,4,8 (each 1 to 8)] [--agents 1,2 (each 1 to 4)] [--sandbox auto|required|off] [--json out.json] [--keep-repos]');
  }
  if (!existsSync(CLI)) throw new Error('dist/cli.js is missing: run `npm run build` first (npm run bench:pool does).');
  const command = `npx tsx bench/pool/run.ts --sleep ${opts.sleep} --runs ${opts.runs} --devices ${opts.devices.join(',')}${opts.agents.join(',') === '1' ? '' : ` --agents ${opts.agents.join(',')}`} --sandbox ${opts.sandbox}`;
  process.stderr.write(`device pool: ${opts.devices.join(', ')} device(s), ${opts.runs} runs of ${opts.sleep} s per device\n`);
  const outcomes: Outcome[] = [];
  for (const agents of opts.agents) {
    for (const devices of opts.devices) {
      const o = await measure(devices, agents, opts);
      if (o.error) process.stderr.write(`  ${devices} device(s), ${agents} agent(s): ERROR ${o.error}\n`);
      if (opts.keepRepos) process.stderr.write(`  kept ${o.repo}\n`);
      outcomes.push(o);
    }
  }
  if (opts.json) writeFileSync(opts.json, JSON.stringify(outcomes, null, 2));
  process.stdout.write(report(outcomes, opts, command));
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? err}\n`);
  process.exitCode = 1;
});
