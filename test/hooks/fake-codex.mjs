// A stand-in for `codex exec` (no model API here): records its arguments, then acts as Codex would through ratchet's MCP tools.
// FAKE_CODEX_MODE: work (one experiment per turn, or start the session), idle (does nothing), fail (exits 1).
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const args = process.argv.slice(2);
appendFileSync(process.env.FAKE_CODEX_LOG, `${JSON.stringify(args)}\n`);
const mode = process.env.FAKE_CODEX_MODE ?? 'work';
if (mode === 'fail') process.exit(1);
if (mode === 'idle') process.exit(0);

const repo = args[args.indexOf('--cd') + 1];
const client = new Client({ name: 'fake-codex', version: '0.0.0' });
await client.connect(new StdioClientTransport({ command: process.execPath, args: [process.env.FAKE_CODEX_RATCHET, 'serve', '--repo', repo], stderr: 'ignore' }));
const call = async (name, a = {}) => {
  const r = await client.callTool({ name, arguments: a }, undefined, { timeout: 60_000 });
  if (r.isError) throw new Error(`${name}: ${r.content[0]?.text}`);
  return r.structuredContent;
};
const finish = async (id) => {
  for (;;) {
    const { experiment } = await call('wait_experiment', { id, wait_seconds: 10 });
    if (experiment.state !== 'running') return experiment;
  }
};
const status = await call('status');
if (!status.session) {
  await finish((await call('start_session', { tag: 'codex' })).baseline.id);
} else {
  const file = join(repo, 'train.mjs');
  const code = readFileSync(file, 'utf8');
  const score = Number(/const SCORE = ([0-9.]+);/.exec(code)[1]);
  writeFileSync(file, code.replace(/const SCORE = [0-9.]+;/, `const SCORE = ${(score * 0.9).toFixed(4)};`));
  const { experiment } = await call('run_experiment', { description: `score ${score} → ${(score * 0.9).toFixed(4)}`, wait_seconds: 0 });
  await finish(experiment.id);
  const metric = await call('read_metric', { id: experiment.id });
  await call(metric.keepable ? 'keep' : 'revert', { id: experiment.id });
}
await client.close();
