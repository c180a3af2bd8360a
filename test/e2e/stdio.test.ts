// stdout carries nothing but JSON-RPC; the server exits cleanly when stdin closes or on SIGTERM.
import { describe, it, expect, afterAll } from 'vitest';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { makeRepo, TRAIN, EVALUATE, baseConfig } from '../helpers/repo.js';

const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));
const repo = makeRepo({ 'train.mjs': TRAIN, 'evaluate.mjs': EVALUATE }, baseConfig());
afterAll(() => repo.cleanup());

function startServer() {
  const child = spawn(process.execPath, [CLI, 'serve', '--repo', repo.dir], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const send = (msg: unknown) => child.stdin.write(`${JSON.stringify(msg)}\n`);
  const responses = async (n: number) => {
    for (let i = 0; i < 200 && stdout.split('\n').filter(Boolean).length < n; i++) await new Promise((r) => setTimeout(r, 50));
  };
  return { child, send, responses, exited, out: () => stdout, err: () => stderr };
}

describe('stdio server', () => {
  it('writes only JSON-RPC messages to stdout and logs to stderr; exits 0 when stdin closes', async () => {
    const s = startServer();
    s.send({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '0' } } });
    s.send({ jsonrpc: '2.0', method: 'notifications/initialized' });
    s.send({ jsonrpc: '2.0', id: 2, method: 'tools/list' });
    s.send({ jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'status', arguments: {} } });
    s.send({ jsonrpc: '2.0', id: 4, method: 'tools/call', params: { name: 'keep', arguments: { id: 1 } } });
    s.send({ jsonrpc: '2.0', id: 5, method: 'tools/call', params: { name: 'no_such_tool', arguments: {} } });
    await s.responses(5);
    s.child.stdin.end();
    expect(await s.exited).toBe(0);
    const lines = s.out().split('\n').filter(Boolean);
    expect(lines.length).toBe(5);
    const messages = lines.map((l) => JSON.parse(l) as { jsonrpc: string; id: number; result?: { isError?: boolean } });
    for (const m of messages) expect(m.jsonrpc).toBe('2.0');
    expect(messages.map((m) => m.id).sort()).toEqual([1, 2, 3, 4, 5]);
    expect(messages.find((m) => m.id === 4)!.result!.isError).toBe(true);
    // The server log lives in .ratchet/, which is excluded from git from the first start.
    expect(repo.git('status', '--porcelain')).toBe('');
    // pino's JSON lines go to stderr.
    const logs = s.err().split('\n').filter((l) => l.startsWith('{'));
    expect(logs.some((l) => (JSON.parse(l) as { msg: string }).msg === 'ratchet serving over stdio')).toBe(true);
  });

  it('names the bad key at serve start (stderr) and from the tools', async () => {
    const bad = makeRepo({ 'train.mjs': TRAIN }, { ...baseConfig(), metric: { name: 'score', direction: 'sideways' } });
    try {
      const child = spawn(process.execPath, [CLI, 'serve', '--repo', bad.dir], { stdio: ['pipe', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const send = (msg: unknown) => child.stdin.write(`${JSON.stringify(msg)}\n`);
      send({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '0' } } });
      send({ jsonrpc: '2.0', method: 'notifications/initialized' });
      send({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'start_session', arguments: {} } });
      for (let i = 0; i < 200 && stdout.split('\n').filter(Boolean).length < 2; i++) await new Promise((r) => setTimeout(r, 50));
      child.stdin.end();
      await new Promise((r) => child.on('exit', r));
      expect(stderr).toContain('metric.direction');
      const reply = JSON.parse(stdout.split('\n').filter(Boolean)[1]!) as { result: { isError: boolean; content: { text: string }[] } };
      expect(reply.result.isError).toBe(true);
      expect(reply.result.content[0]!.text).toContain('[config_invalid]');
      expect(reply.result.content[0]!.text).toContain('metric.direction');
    } finally {
      bad.cleanup();
    }
  });

  it('exits cleanly on SIGTERM', async () => {
    const s = startServer();
    s.send({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '0' } } });
    await s.responses(1);
    s.child.kill('SIGTERM');
    expect(await s.exited).toBe(0);
  });
});
