// The plugin's hooks inside the real Claude Code CLI: a fake Messages API (no model API here) replays the streaming format,
// and records what Claude Code sends: the SessionStart context, the Stop hook's block, and the stop it lets through.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ResearchLoop } from '../../src/core/loop.js';
import { silentLogger } from '../../src/log.js';
import { finished } from '../helpers/loop.js';
import { makeRepo, TRAIN, EVALUATE, baseConfig, type TestRepo } from '../helpers/repo.js';
import { installClients } from './clients.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const REPLY = 'Done for now.';

let clients: ReturnType<typeof installClients>;
let repo: TestRepo;
let home: string;
let api: Server;
/** The Messages API requests of the current `claude -p`, parsed. */
let requests: { messages: unknown[] }[] = [];

/** One streamed assistant message that ends the turn, event by event as the Messages API sends it. */
function streamReply(res: import('node:http').ServerResponse, model: string): void {
  res.writeHead(200, { 'content-type': 'text/event-stream' });
  const event = (type: string, data: Record<string, unknown>) => res.write(`event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`);
  event('message_start', { message: { id: 'msg_fake', type: 'message', role: 'assistant', model, content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: 10, output_tokens: 1 } } });
  event('content_block_start', { index: 0, content_block: { type: 'text', text: '' } });
  event('content_block_delta', { index: 0, delta: { type: 'text_delta', text: REPLY } });
  event('content_block_stop', { index: 0 });
  event('message_delta', { delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: 3 } });
  event('message_stop', {});
  res.end();
}

beforeAll(async () => {
  clients = installClients();
  if (!clients) return;
  repo = makeRepo({ 'train.mjs': TRAIN, 'evaluate.mjs': EVALUATE }, baseConfig({ sandbox: 'off' }));
  const loop = new ResearchLoop({ repo: repo.dir, logger: silentLogger() });
  const { baseline } = await loop.startSession({ tag: 'night' });
  await finished(loop, baseline.id);
  await loop.settle();
  loop.close();
  api = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      if (req.method === 'POST' && req.url?.startsWith('/v1/messages') && !req.url.includes('count_tokens')) {
        const parsed = JSON.parse(body) as { model: string; messages: unknown[] };
        requests.push(parsed);
        return streamReply(res, parsed.model);
      }
      res.writeHead(404, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => api.listen(0, '127.0.0.1', resolve));
  home = mkdtempSync(join(tmpdir(), 'ratchet-claude-home-'));
  await claude(['plugin', 'marketplace', 'add', ROOT]);
  await claude(['plugin', 'install', 'ratchet@ratchet', '--scope', 'project']);
}, 300_000);

afterAll(async () => {
  if (!clients) return;
  await new Promise((resolve) => api.close(resolve));
  rmSync(home, { recursive: true, force: true });
  repo.cleanup();
});

/** Asynchronous, so the fake API in this process can answer while Claude Code runs. */
function claude(args: string[]): Promise<string> {
  const port = (api.address() as AddressInfo).port;
  mkdirSync(home, { recursive: true });
  const env = { ...process.env, HOME: home, CLAUDE_PROJECT_DIR: '', ANTHROPIC_BASE_URL: `http://127.0.0.1:${port}`, ANTHROPIC_API_KEY: 'sk-ant-test-fake', CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1', DISABLE_TELEMETRY: '1' };
  return new Promise((resolve, reject) => {
    execFile(clients!.claude, args, { cwd: repo.dir, env, timeout: 200_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => (err ? reject(new Error(`claude ${args.join(' ')}: ${err.message}\n${stderr}`)) : resolve(stdout)));
  });
}

/** `claude -p` with the plugin on: the number of turns it took, and the messages of each request the model got. */
async function prompt(text: string): Promise<{ turns: number; sent: string[] }> {
  requests = [];
  const result = JSON.parse(await claude(['-p', text, '--output-format', 'json'])) as { num_turns: number; result: string };
  expect(result.result).toBe(REPLY);
  return { turns: result.num_turns, sent: requests.map((r) => JSON.stringify(r.messages)) };
}

describe('the plugin in Claude Code', () => {
  it('gives the session to a new Claude, blocks its first stop with the next step, and lets it stop when it did nothing about it', async (ctx) => {
    if (!clients) return ctx.skip();
    const { turns, sent } = await prompt('Go on with the ratchet session.');
    expect(turns).toBe(2);
    expect(sent).toHaveLength(2);
    expect(sent[0]).toContain('SessionStart hook additional context: ratchet session \\"night\\" on branch ratchet/night: active.');
    expect(sent[0]).toContain('Next: Edit the editable files with one idea, then call run_experiment.');
    expect(sent[1]).toContain('Stop hook feedback:\\nThe ratchet session \\"night\\" is still open and not finished');
  }, 240_000);

  it('lets Claude stop at once after the user stopped the session', async (ctx) => {
    if (!clients) return ctx.skip();
    const loop = new ResearchLoop({ repo: repo.dir, logger: silentLogger() });
    await loop.stopSession({ cancel: false, by: 'cli' });
    loop.close();
    const { turns, sent } = await prompt('Go on with the ratchet session.');
    expect(turns).toBe(1);
    expect(sent).toHaveLength(1);
    expect(sent[0]).toContain('on branch ratchet/night: finished');
  }, 240_000);
});
