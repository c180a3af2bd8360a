// The demo's scripted proposer: a real MCP client over stdio that drives `ratchet serve` through one example's proposals.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../cli.js', import.meta.url));

/** What the shared loop needs to know about one example folder. */
export interface DemoExample {
  name: string;
  /** The example folder, copied into a fresh temporary git repo. */
  folder: string;
  /** Paths in the folder that are generated and never copied. */
  generated: string[];
  /** The one editable file the proposals change. */
  editable: string;
  /** A change to a protected file that the scripted proposer is tempted to make, to show the refusal. */
  tamper: { path: string; description: string; edit: (text: string) => string };
  direction: 'minimize' | 'maximize';
  defaultExperiments: number;
  /** Said before the baseline: what one run is and how long it takes. */
  runNote: string;
  /** The metric as printed, e.g. "val_bpb 3.4096" or "pass_rate 55.3%". */
  metric: (value: number) => string;
  /** The lines printed for one decided experiment. */
  report: (outcome: Outcome) => string[];
}

export interface Proposal {
  description: string;
  hypothesis: string;
  edits: { search: string; replace: string }[];
}

export interface ToolResult {
  isError?: boolean;
  structuredContent?: Record<string, unknown>;
  content?: { type: string; text?: string }[];
}

/** One experiment as the proposer saw it: its final view, read_metric's result, and what it did. */
export interface Outcome {
  id: number;
  proposal: Proposal;
  experiment: Record<string, unknown>;
  metricReport: ToolResult;
  action: string;
}

// The demo is a CLI program: its stdout is the terminal, not an MCP channel.
export const say = (line = '') => process.stdout.write(`${line}\n`);
export const round = (n: number) => Number(n.toPrecision(5));
export const textOf = (r: ToolResult) => r.content?.[0]?.text ?? '';

export async function runScriptedLoop(example: DemoExample, wanted: number): Promise<number> {
  // Two runs at once only where each gets a core of its own: sharing one, they would slow and disturb each other.
  const cpus = availableParallelism();
  const parallel = cpus >= 2 ? 2 : 1;
  const { repo, git } = copyExample(example, parallel);
  say(`ratchet demo: ${example.name} in ${repo}`);
  say('The proposer below is a script standing in for the coding agent; it talks to `ratchet serve` over stdio MCP.');
  const client = new Client({ name: 'ratchet-demo-proposer', version: '1.0.0' });
  await client.connect(new StdioClientTransport({ command: process.execPath, args: [CLI, 'serve', '--repo', repo], stderr: 'ignore' }));
  const call = async (name: string, args: Record<string, unknown> = {}): Promise<ToolResult> =>
    (await client.callTool({ name, arguments: args }, undefined, { timeout: 120_000 })) as ToolResult;
  const waitFor = async (id: number): Promise<Record<string, unknown>> => {
    for (;;) {
      const r = await call('wait_experiment', { id, wait_seconds: 30 });
      if (r.isError) throw new Error(textOf(r));
      const e = r.structuredContent!.experiment as Record<string, unknown>;
      if (e.state !== 'running' && e.state !== 'queued') return e;
      // wait_experiment answers a queued experiment at once; a pause keeps this from spinning until it starts.
      if (e.state === 'queued') await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  };

  /** read_metric, then keep or revert; a stale candidate's re-measurement on the new best is awaited and decided in turn. */
  const decide = async (id: number, proposal: Proposal, experiment: Record<string, unknown>): Promise<void> => {
    const metricReport = await call('read_metric', { id });
    const keepable = metricReport.structuredContent?.keepable === true;
    let action: string;
    let remeasured: number | null = null;
    if (experiment.state === 'measured' && keepable) {
      const k = await call('keep', { id });
      if (k.isError && textOf(k).startsWith('[stale_candidate]')) {
        // The error reaches an MCP client as text only: the new experiment's id is read from its message.
        remeasured = Number(/\bmeasured as experiment (\d+)\b/.exec(textOf(k))?.[1]) || null;
        action = remeasured ? `stale (another was kept meanwhile): re-measured on the new best as #${remeasured}` : 'stale, and it conflicts with the new best: reverted';
      } else action = k.isError ? `keep refused: ${textOf(k)}` : 'KEEP';
    } else {
      await call('revert', { id });
      action = experiment.state === 'measured' ? 'revert' : `revert (${experiment.state})`;
    }
    for (const line of example.report({ id, proposal, experiment, metricReport, action })) say(line);
    if (remeasured) {
      const again = await waitFor(remeasured);
      await decide(remeasured, { ...proposal, description: String(again.description) }, again);
    }
  };

  try {
    const tools = await client.listTools();
    say(`tools: ${tools.tools.map((t) => t.name).join(', ')}`);
    const started = await call('start_session', { tag: 'demo' });
    if (started.isError) throw new Error(textOf(started));
    const baselineId = (started.structuredContent!.baseline as { id: number }).id;
    say(`\n#${baselineId} baseline … (${example.runNote})`);
    const baseline = await waitFor(baselineId);
    if (baseline.state !== 'measured') throw new Error(`the baseline ${baseline.state}: ${baseline.reason}`);
    const noise = (await call('status')).structuredContent!.noise as {
      samples: number;
      sd: number | null;
      minDetectableEffect: number | null;
      basis: 'cases' | 'pooled';
      suggestions: string[];
    } | null;
    say(
      `#${baselineId} baseline: ${example.metric(baseline.metric as number)} over ${noise?.samples ?? 1} run(s)` +
        (noise?.basis === 'cases' ? ', noise from the case results (binomial, no calibration runs)' : noise?.sd != null ? `, noise sd ${round(noise.sd)}` : '') +
        (noise?.minDetectableEffect != null ? `, smallest detectable gain ${round(noise.minDetectableEffect)}` : ''),
    );
    for (const suggestion of noise?.suggestions ?? []) say(`  to detect less: ${suggestion}`);
    say('Each experiment re-measures the best beside the candidate until the verdict is clear; only "improved" is kept.');

    await tryToCheat(example, repo, call, git);

    const proposals = JSON.parse(readFileSync(join(repo, 'proposals.json'), 'utf8')) as Proposal[];
    let tried = 0;
    /** Applies the next proposal that fits the tree to the editable file; undefined when none is left or --experiments are spent. */
    const editNext = (): Proposal | undefined => {
      while (proposals.length && tried < wanted) {
        const proposal = proposals.shift()!;
        const file = join(repo, example.editable);
        let text = readFileSync(file, 'utf8');
        // An edit whose anchor a kept proposal already rewrote is skipped, as an agent would rethink it.
        if (!proposal.edits.every((e) => text.includes(e.search))) continue;
        for (const e of proposal.edits) text = text.replace(e.search, e.replace);
        writeFileSync(file, text);
        tried++;
        return proposal;
      }
      return undefined;
    };

    if (parallel === 1) {
      say(`One proposal at a time: this machine has ${cpus} CPU, and two runs sharing it would slow and disturb each other.`);
      for (let proposal = editNext(); proposal; proposal = editNext()) {
        const r = await call('run_experiment', { description: proposal.description, hypothesis: proposal.hypothesis, wait_seconds: 5 });
        if (r.isError) throw new Error(textOf(r));
        const id = (r.structuredContent!.experiment as { id: number }).id;
        await decide(id, proposal, await waitFor(id));
      }
    } else {
      say(`Two proposals at a time ("parallel": 2 in ratchet.json; this machine has ${cpus} CPUs), each decided as it finishes.`);
      say('Before each idea the proposer calls revert {}: the tree goes back to the best (the candidate just submitted is already committed under its ref), so each candidate is one idea alone on the best.');
      for (;;) {
        const pair = new Map<number, Proposal>();
        while (pair.size < 2) {
          const reset = await call('revert', {});
          if (reset.isError) throw new Error(textOf(reset));
          const proposal = editNext();
          if (!proposal) break;
          const r = await call('run_experiment', { description: proposal.description, hypothesis: proposal.hypothesis, wait_seconds: 0 });
          if (r.isError) throw new Error(textOf(r));
          pair.set((r.structuredContent!.experiment as { id: number }).id, proposal);
        }
        if (!pair.size) break;
        if (pair.size === 2) say(`\n${inFlightLine((await call('status')).structuredContent!.parallel as ParallelStatus)}`);
        while (pair.size) {
          const r = await call('wait_experiment', { next: true, wait_seconds: 30 });
          // Nothing in flight yet some undecided: they ended without a measurement (crashed, timed out), so next: true skips them.
          const experiment = r.isError ? await waitFor(pair.keys().next().value!) : (r.structuredContent!.experiment as Record<string, unknown>);
          if (experiment.state === 'running' || experiment.state === 'queued') continue;
          const id = experiment.id as number;
          const proposal = pair.get(id);
          if (!proposal) throw new Error(`wait_experiment {next: true} returned #${id}, which the demo did not submit in this pair`);
          pair.delete(id);
          await decide(id, proposal, experiment);
        }
      }
    }
    return await summarize(example, repo, call, git);
  } finally {
    await client.close();
  }
}

interface ParallelStatus {
  inFlight: { id: number; phase: string }[];
  queued: number[];
  awaitingDecision: number[];
}

/** The pair as status sees it right after the second was submitted, e.g. "in flight: #5 (running), #6 (running)". */
function inFlightLine(p: ParallelStatus): string {
  const parts = [...p.inFlight.map((e) => `#${e.id} (running)`), ...p.queued.map((id) => `#${id} (queued)`), ...p.awaitingDecision.map((id) => `#${id} (measured, awaiting a decision)`)];
  return `in flight: ${parts.join(', ')}`;
}

/** The example in a fresh temporary git repo, committed as the baseline on main. */
function copyExample(example: DemoExample, parallel: number): { repo: string; git: (...args: string[]) => string } {
  const repo = mkdtempSync(join(tmpdir(), `ratchet-demo-${example.name}-`));
  const skipped = (src: string) => example.generated.some((g) => relative(join(example.folder, g), src).split('/')[0] !== '..');
  cpSync(example.folder, repo, { recursive: true, filter: (src) => !skipped(src) });
  if (parallel > 1) {
    const configFile = join(repo, 'ratchet.json');
    writeFileSync(configFile, `${JSON.stringify({ ...JSON.parse(readFileSync(configFile, 'utf8')), parallel }, null, 2)}\n`);
  }
  const git = (...args: string[]) =>
    execFileSync('git', ['-c', 'user.name=demo', '-c', 'user.email=demo@localhost', ...args], { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'] }).toString().trim();
  git('init', '-q', '-b', 'main');
  git('add', '-A');
  git('commit', '-q', '-m', `${example.name} baseline`);
  return { repo, git };
}

/** Shows the enforcement: an edit to a pinned file is refused and the file is left as it was. */
async function tryToCheat(example: DemoExample, repo: string, call: (name: string, args?: Record<string, unknown>) => Promise<ToolResult>, git: (...a: string[]) => string) {
  const { path, description, edit } = example.tamper;
  writeFileSync(join(repo, path), edit(readFileSync(join(repo, path), 'utf8')));
  const r = await call('run_experiment', { description, wait_seconds: 0 });
  say(`refused: ${r.isError ? textOf(r).split('\n')[0] : 'NOT REFUSED (this is a bug)'}`);
  git('checkout', '--', path);
}

async function summarize(example: DemoExample, repo: string, call: (name: string) => Promise<ToolResult>, git: (...a: string[]) => string): Promise<number> {
  const status = (await call('status')).structuredContent as {
    session: { baselineMetric: number; bestMetric: number; bestCommit: string; branch: string; bestExperimentId: number };
    ledger: string;
    resultsTsv: string;
    counts: Record<string, number>;
  };
  const { session } = status;
  say('');
  say(`baseline ${example.metric(session.baselineMetric)}`);
  say(`best     ${example.metric(session.bestMetric)} (experiment ${session.bestExperimentId}, ${session.branch} at ${session.bestCommit.slice(0, 7)})`);
  say(`counts   ${JSON.stringify(status.counts)}`);
  say(`ledger   ${status.ledger}`);
  say(`results  ${status.resultsTsv}`);
  say('');
  if (existsSync(status.resultsTsv)) say(readFileSync(status.resultsTsv, 'utf8').trimEnd());
  const diff = git('diff', 'main', session.branch, '--', example.editable);
  if (diff) say(`\nWhat was kept (${example.editable}):\n${diff.split('\n').filter((l) => /^[+-][^+-]/.test(l)).join('\n')}`);
  say(`\nInspect it: cd ${repo} && git log --oneline ${session.branch} && git for-each-ref refs/ratchet`);
  const improved = example.direction === 'minimize' ? session.bestMetric < session.baselineMetric : session.bestMetric > session.baselineMetric;
  say(improved ? '\nThe demo kept at least one measured improvement.' : '\nNo improvement was kept this time (noise can do that on a busy machine).');
  return improved ? 0 : 1;
}
