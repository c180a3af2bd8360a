// ratchet demo: a scripted proposer (a real MCP client over stdio) drives the loop on examples/tiny-lm.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { cpSync, mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFileSync } from 'node:child_process';

const EXAMPLE = fileURLToPath(new URL('../examples/tiny-lm', import.meta.url));
const CLI = fileURLToPath(new URL('./cli.js', import.meta.url));

interface Proposal {
  description: string;
  hypothesis: string;
  edits: { search: string; replace: string }[];
}

interface ToolResult {
  isError?: boolean;
  structuredContent?: Record<string, unknown>;
  content?: { type: string; text?: string }[];
}

// The demo is a CLI program: its stdout is the terminal, not an MCP channel.
const say = (line = '') => process.stdout.write(`${line}\n`);

export async function runDemo(opts: { experiments?: number; keep?: boolean } = {}): Promise<number> {
  const wanted = opts.experiments ?? Number(process.env.RATCHET_DEMO_EXPERIMENTS ?? 6);
  const repo = mkdtempSync(join(tmpdir(), 'ratchet-demo-'));
  cpSync(EXAMPLE, repo, { recursive: true, filter: (src) => !src.includes(`${EXAMPLE}/out`) });
  const git = (...args: string[]) => execFileSync('git', args, { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'] }).toString().trim();
  git('init', '-q', '-b', 'main');
  git('-c', 'user.name=demo', '-c', 'user.email=demo@localhost', 'add', '-A');
  git('-c', 'user.name=demo', '-c', 'user.email=demo@localhost', 'commit', '-q', '-m', 'tiny-lm baseline');

  say(`ratchet demo: tiny-lm in ${repo}`);
  say('The proposer below is a script standing in for the coding agent; it talks to `ratchet serve` over stdio MCP.');
  const client = new Client({ name: 'ratchet-demo-proposer', version: '1.0.0' });
  const transport = new StdioClientTransport({ command: process.execPath, args: [CLI, 'serve', '--repo', repo], stderr: 'ignore' });
  await client.connect(transport);
  const call = async (name: string, args: Record<string, unknown> = {}): Promise<ToolResult> =>
    (await client.callTool({ name, arguments: args }, undefined, { timeout: 120_000 })) as ToolResult;
  const waitFor = async (id: number): Promise<Record<string, unknown>> => {
    for (;;) {
      const r = await call('wait_experiment', { id, wait_seconds: 30 });
      const e = r.structuredContent!.experiment as Record<string, unknown>;
      if (e.state !== 'running' && e.state !== 'queued') return e;
    }
  };

  try {
    const tools = await client.listTools();
    say(`tools: ${tools.tools.map((t) => t.name).join(', ')}`);
    const started = await call('start_session', { tag: 'demo' });
    if (started.isError) throw new Error(started.content?.[0]?.text);
    const baselineId = (started.structuredContent!.baseline as { id: number }).id;
    say(`\n#${baselineId} baseline … (each run trains for about 15 s; the baseline runs three times to measure the noise)`);
    const baseline = await waitFor(baselineId);
    if (baseline.state !== 'measured') throw new Error(`the baseline ${baseline.state}: ${baseline.reason}`);
    const noise = (await call('status')).structuredContent!.noise as { samples: number; sd: number | null; minDetectableEffect: number | null } | null;
    say(
      `#${baselineId} baseline: val_bpb ${round(baseline.metric as number)} over ${noise?.samples ?? 1} runs` +
        (noise?.sd != null ? `, noise sd ${round(noise.sd)}, smallest detectable gain ${noise.minDetectableEffect != null ? round(noise.minDetectableEffect) : 'n/a'}` : ''),
    );
    say('Each experiment re-measures the best beside the candidate until the verdict is clear; only "improved" is kept.');

    await tryToCheat(call, repo, git);

    const proposals = JSON.parse(readFileSync(join(repo, 'proposals.json'), 'utf8')) as Proposal[];
    let ran = 0;
    for (const p of proposals) {
      if (ran >= wanted) break;
      const train = join(repo, 'train.mjs');
      let code = readFileSync(train, 'utf8');
      if (!p.edits.every((e) => code.includes(e.search))) continue;
      for (const e of p.edits) code = code.replace(e.search, e.replace);
      writeFileSync(train, code);
      const r = await call('run_experiment', { description: p.description, hypothesis: p.hypothesis, wait_seconds: 5 });
      if (r.isError) throw new Error(r.content?.[0]?.text);
      const id = (r.structuredContent!.experiment as { id: number }).id;
      ran++;
      const done = await waitFor(id);
      const report = (await call('read_metric', { id })).structuredContent as {
        keepable: boolean;
        comparison: { delta: number | null; bestMetric: number | null } | null;
        decision: { verdict: string; runsSpent: number; effect: number | null; effectInterval: [number, number] | null } | null;
      };
      let decision: string;
      if (done.state === 'measured' && report.keepable) {
        const k = await call('keep', { id });
        decision = k.isError ? `keep refused: ${k.content?.[0]?.text}` : 'KEEP';
      } else {
        await call('revert', { id });
        decision = done.state === 'measured' ? 'revert' : `revert (${done.state})`;
      }
      const d = report.decision;
      const evidence = d
        ? ` ${d.verdict}, ${d.runsSpent} run(s)${d.effect !== null ? `, gain ${round(d.effect)}` : ''}${d.effectInterval ? ` [${round(d.effectInterval[0])}, ${round(d.effectInterval[1])}]` : ''}`
        : '';
      say(`#${id} ${p.description.padEnd(46)} val_bpb ${done.metric === null ? '—' : round(done.metric as number)}${evidence} → ${decision}`);
    }

    const status = (await call('status')).structuredContent as {
      session: { baselineMetric: number; bestMetric: number; bestCommit: string; branch: string; bestExperimentId: number };
      ledger: string;
      resultsTsv: string;
      counts: Record<string, number>;
    };
    say('');
    say(`baseline val_bpb ${round(status.session.baselineMetric)}`);
    say(`best     val_bpb ${round(status.session.bestMetric)} (experiment ${status.session.bestExperimentId}, ${status.session.branch} at ${status.session.bestCommit.slice(0, 7)})`);
    say(`counts   ${JSON.stringify(status.counts)}`);
    say(`ledger   ${status.ledger}`);
    say(`results  ${status.resultsTsv}`);
    say('');
    if (existsSync(status.resultsTsv)) say(readFileSync(status.resultsTsv, 'utf8').trimEnd());
    say(`\nInspect it: cd ${repo} && git log --oneline ratchet/demo && git for-each-ref refs/ratchet`);
    const improved = status.session.bestMetric < status.session.baselineMetric;
    say(improved ? '\nThe demo kept at least one measured improvement.' : '\nNo improvement was kept this time (noise can do that on a busy machine).');
    return improved ? 0 : 1;
  } finally {
    await client.close();
  }
}

const round = (n: number) => Number(n.toPrecision(5));

/** Shows the enforcement: an edit to the pinned evaluator is refused and the file is left as it was. */
async function tryToCheat(call: (name: string, args?: Record<string, unknown>) => Promise<ToolResult>, repo: string, git: (...a: string[]) => string) {
  const evaluator = join(repo, 'evaluate.mjs');
  const original = readFileSync(evaluator, 'utf8');
  writeFileSync(evaluator, `${original}\n// a proposer tempted to soften the evaluator\n`);
  const r = await call('run_experiment', { description: 'tweak the evaluator', wait_seconds: 0 });
  const first = r.content?.[0]?.text?.split('\n')[0] ?? '';
  say(`refused: ${r.isError ? first : 'NOT REFUSED (this is a bug)'}`);
  git('checkout', '--', 'evaluate.mjs');
}
