// The demo's scripted proposer: a real MCP client over stdio that drives `ratchet serve` through one example's proposals.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
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
  const { repo, git } = copyExample(example);
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
    let ran = 0;
    for (const proposal of proposals) {
      if (ran >= wanted) break;
      const file = join(repo, example.editable);
      let text = readFileSync(file, 'utf8');
      // An edit whose anchor a kept proposal already rewrote is skipped, as an agent would rethink it.
      if (!proposal.edits.every((e) => text.includes(e.search))) continue;
      for (const e of proposal.edits) text = text.replace(e.search, e.replace);
      writeFileSync(file, text);
      const r = await call('run_experiment', { description: proposal.description, hypothesis: proposal.hypothesis, wait_seconds: 5 });
      if (r.isError) throw new Error(textOf(r));
      const id = (r.structuredContent!.experiment as { id: number }).id;
      ran++;
      const experiment = await waitFor(id);
      const metricReport = await call('read_metric', { id });
      const keepable = metricReport.structuredContent?.keepable === true;
      let action: string;
      if (experiment.state === 'measured' && keepable) {
        const k = await call('keep', { id });
        action = k.isError ? `keep refused: ${textOf(k)}` : 'KEEP';
      } else {
        await call('revert', { id });
        action = experiment.state === 'measured' ? 'revert' : `revert (${experiment.state})`;
      }
      for (const line of example.report({ id, proposal, experiment, metricReport, action })) say(line);
    }
    return await summarize(example, repo, call, git);
  } finally {
    await client.close();
  }
}

/** The example in a fresh temporary git repo, committed as the baseline on main. */
function copyExample(example: DemoExample): { repo: string; git: (...args: string[]) => string } {
  const repo = mkdtempSync(join(tmpdir(), `ratchet-demo-${example.name}-`));
  const skipped = (src: string) => example.generated.some((g) => relative(join(example.folder, g), src).split('/')[0] !== '..');
  cpSync(example.folder, repo, { recursive: true, filter: (src) => !skipped(src) });
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
