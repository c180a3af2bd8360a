// The built `ratchet serve` behind the SDK's real Client over stdio, with the few calls every end-to-end test makes.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';

export const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type ToolResult = { isError?: boolean; structuredContent?: Record<string, any>; content: { type: string; text: string }[] };

export interface ServerClient {
  client: Client;
  /** The raw result, errors included. */
  call: (name: string, args?: Record<string, unknown>) => Promise<ToolResult>;
  /** The structured content of a call that must succeed. */
  ok: (name: string, args?: Record<string, unknown>) => Promise<Record<string, any>>; // eslint-disable-line @typescript-eslint/no-explicit-any
  /** Waits until the experiment has left queued and running; returns its view. */
  finish: (id: number) => Promise<Record<string, any>>; // eslint-disable-line @typescript-eslint/no-explicit-any
  close: () => Promise<void>;
}

export async function connectServer(repo: string, opts: { env?: Record<string, string> } = {}): Promise<ServerClient> {
  const client = new Client({ name: 'ratchet-test', version: '0' });
  const env = opts.env ? { ...(process.env as Record<string, string>), ...opts.env } : undefined;
  await client.connect(new StdioClientTransport({ command: process.execPath, args: [CLI, 'serve', '--repo', repo], stderr: 'ignore', ...(env ? { env } : {}) }));
  const call = async (name: string, args: Record<string, unknown> = {}) => (await client.callTool({ name, arguments: args }, undefined, { timeout: 60_000 })) as ToolResult;
  const ok = async (name: string, args: Record<string, unknown> = {}) => {
    const r = await call(name, args);
    expect(r.isError, r.content[0]?.text).toBeFalsy();
    return r.structuredContent!;
  };
  const finish = async (id: number) => {
    for (;;) {
      const e = (await ok('wait_experiment', { id, wait_seconds: 10 })).experiment;
      if (e.state !== 'running' && e.state !== 'queued') return e;
    }
  };
  return { client, call, ok, finish, close: () => client.close() };
}
