// The MCP layer through the SDK Client over InMemoryTransport: listing, annotations, schemas, errors, prompt, resource.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import { createServer, type CreatedServer } from '../../src/server.js';
import { silentLogger } from '../../src/log.js';
import { makeRepo, TRAIN, EVALUATE, baseConfig, type TestRepo } from '../helpers/repo.js';
import { rmSync } from 'node:fs';
import { join } from 'node:path';

const EXPECTED_TOOLS = [
  'start_session',
  'run_experiment',
  'wait_experiment',
  'read_metric',
  'keep',
  'revert',
  'sync',
  'status',
  'list_experiments',
  'read_log',
  'cancel_experiment',
  'stop_session',
];

let repo: TestRepo;
let created: CreatedServer;
let client: Client;

type Result = { isError?: boolean; structuredContent?: Record<string, unknown>; content: { type: string; text: string }[] };
const call = async (name: string, args: Record<string, unknown> = {}) => (await client.callTool({ name, arguments: args })) as Result;

beforeAll(async () => {
  repo = makeRepo({ 'train.mjs': TRAIN, 'evaluate.mjs': EVALUATE }, baseConfig());
  created = createServer({ repo: repo.dir, logger: silentLogger() });
  const [a, b] = InMemoryTransport.createLinkedPair();
  client = new Client({ name: 'test', version: '1.0.0' });
  await Promise.all([created.server.connect(a), client.connect(b)]);
});

afterAll(async () => {
  await client.close();
  await created.loop.settle();
  await created.close();
  repo.cleanup();
});

describe('tool listing', () => {
  it('lists every tool with all four annotations, an input and an output schema', async () => {
    const { tools } = await client.listTools();
    expect(tools.map((t) => t.name)).toEqual(EXPECTED_TOOLS);
    for (const t of tools) {
      expect(t.name).toMatch(/^[a-z]+(_[a-z]+)*$/);
      const a = t.annotations!;
      for (const key of ['readOnlyHint', 'destructiveHint', 'idempotentHint', 'openWorldHint'] as const) expect(typeof a[key], `${t.name}.${key}`).toBe('boolean');
      expect(t.inputSchema.type).toBe('object');
      expect(t.outputSchema?.properties).toHaveProperty('summary');
      expect(t.description!.length).toBeGreaterThan(60);
    }
    const byName = Object.fromEntries(tools.map((t) => [t.name, t.annotations!]));
    expect(byName.status).toMatchObject({ readOnlyHint: true, destructiveHint: false });
    expect(byName.revert).toMatchObject({ readOnlyHint: false, destructiveHint: true });
    expect(byName.cancel_experiment).toMatchObject({ destructiveHint: true });
    expect(byName.stop_session).toMatchObject({ readOnlyHint: false, destructiveHint: true, idempotentHint: true });
    expect(byName.run_experiment).toMatchObject({ readOnlyHint: false, destructiveHint: false, idempotentHint: false });
  });

  it('matches the checked-in tool snapshot (interface changes are deliberate diffs)', async () => {
    const { tools } = await client.listTools();
    await expect(JSON.stringify(tools, null, 2) + '\n').toMatchFileSnapshot('./__snapshots__/tools.json');
  });
});

describe('errors are results, never exceptions', () => {
  it('no session yet', async () => {
    for (const name of ['run_experiment', 'read_metric', 'keep', 'revert', 'list_experiments']) {
      const r = await call(name, name === 'run_experiment' ? { description: 'x' } : name === 'keep' ? { id: 1 } : {});
      expect(r.isError, name).toBe(true);
      expect(r.content[0]!.text, name).toContain('[no_session]');
      expect(r.content[0]!.text, name).toContain('Next: Call start_session');
    }
  });

  it('invalid arguments name the field', async () => {
    const r = await call('keep', { id: 'seven' });
    expect(r.isError).toBe(true);
    expect(r.content[0]!.text).toContain('id must be an experiment id');
    const w = await call('wait_experiment', { id: 1, wait_seconds: 500 });
    expect(w.isError).toBe(true);
    expect(w.content[0]!.text).toMatch(/wait_seconds/);
    const d = await call('run_experiment', {});
    expect(d.isError).toBe(true);
    expect(d.content[0]!.text).toContain('description is required');
  });

  it('status works without a session and says what to do', async () => {
    const r = await call('status');
    expect(r.isError).toBeFalsy();
    expect(r.structuredContent).toMatchObject({ session: null, config: { valid: true, error: null } });
    expect(r.structuredContent!.summary).toContain('start_session');
    // The text is the summary and a few compact lines, not a second copy of the structured content.
    expect(r.content[0]!.text.split('\n')[0]).toBe(r.structuredContent!.summary);
    expect(r.content[0]!.text).toContain('Integrity: ok');
  });
});

describe('a short session over the protocol', () => {
  it('runs the baseline, reports results that validate against the output schemas', async () => {
    const started = await call('start_session', { tag: 'proto' });
    expect(started.isError).toBeFalsy();
    const id = (started.structuredContent!.baseline as { id: number }).id;
    let state = 'running';
    while (state === 'running') {
      const w = await call('wait_experiment', { id, wait_seconds: 10 });
      state = (w.structuredContent!.experiment as { state: string }).state;
    }
    expect(state).toBe('measured');
    const m = await call('read_metric', { id });
    expect(m.structuredContent).toMatchObject({ metricName: 'score', experiment: { metric: 1 } });
    expect((await call('read_metric', { id: 4242 })).content[0]!.text).toContain('[unknown_experiment]');
    const again = await call('start_session', { tag: 'proto' });
    expect(again.content[0]!.text).toContain('[session_exists]');
    const log = await call('read_log', { id, grep: '^score' });
    expect((log.structuredContent!.lines as { text: string }[]).map((l) => l.text)).toEqual(['score:          1.000000']);
    const bad = await call('read_log', { id, grep: '(' });
    expect(bad.content[0]!.text).toContain('[invalid_argument]');
    const list = await call('list_experiments', { state: 'measured' });
    expect(list.structuredContent!.total).toBe(1);
    const cancel = await call('cancel_experiment', { id });
    expect(cancel.content[0]!.text).toContain('only a running experiment can be cancelled');
  });
});

describe('progress', () => {
  it('wait_experiment sends progress notifications with elapsed time, budget and the last log line', async () => {
    const { setConstant } = await import('../helpers/repo.js');
    setConstant(repo, 'SLEEP_MS', '4000');
    setConstant(repo, 'SCORE', '0.5');
    const started = await call('run_experiment', { description: 'slow enough to report progress', wait_seconds: 0 });
    expect(started.isError, started.content[0]?.text).toBeFalsy();
    const id = (started.structuredContent!.experiment as { id: number }).id;
    const messages: string[] = [];
    const r = (await client.callTool({ name: 'wait_experiment', arguments: { id, wait_seconds: 30 } }, undefined, {
      onprogress: (p) => messages.push(p.message ?? ''),
      timeout: 60_000,
    })) as Result;
    expect((r.structuredContent!.experiment as { state: string }).state).toBe('measured');
    expect(messages.length).toBeGreaterThanOrEqual(1);
    expect(messages[0]).toMatch(/^run: \d+s of 20s/);
    await call('revert', { id });
  });
});

describe('prompt and resource', () => {
  it('serves program.md as the `loop` prompt with the config filled in, and as a resource', async () => {
    const { prompts } = await client.listPrompts();
    expect(prompts.map((p) => p.name)).toContain('loop');
    const p = await client.getPrompt({ name: 'loop' });
    const text = (p.messages[0]!.content as { text: string }).text;
    expect(text).toContain('`train.mjs`');
    expect(text).toContain('`score` (lower is better)');
    expect(text).not.toMatch(/\{\{\w+\}\}/);
    const r = await client.readResource({ uri: 'ratchet://program.md' });
    expect((r.contents[0] as { text: string }).text).toContain('## The loop');
  });

  it("serves the repo's own program.md (a preset's) in place of the package's, placeholders filled", async () => {
    repo.write('program.md', '# Improve the skill\nEdit {{editable}} only; the metric is {{metric}}.\n');
    try {
      const p = await client.getPrompt({ name: 'loop' });
      expect((p.messages[0]!.content as { text: string }).text).toBe('# Improve the skill\nEdit `train.mjs`, `notes/**` only; the metric is score.\n');
    } finally {
      rmSync(join(repo.dir, 'program.md'));
    }
  });
});

describe('generated docs', () => {
  it('the README tool reference is the one generated from the registry', async () => {
    const { toolReference } = await import('../../src/tools/reference.js');
    const { readFileSync } = await import('node:fs');
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const block = readme.split('<!-- tools:start (generated by `npm run docs`) -->\n')[1]?.split('\n<!-- tools:end -->')[0];
    expect(block, 'run `npm run docs` after changing a tool').toBe(toolReference());
  });
});
