// The built server over stdio as the pool benchmarks drive it: on the fake nvidia-smi, narrowed to n devices.
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import type { Interval } from './measure.js';

export const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));
/** The fake replays the h100x8 recording; the server's CUDA_VISIBLE_DEVICES narrows it to the first n devices. */
const FAKE_SMI_DIR = fileURLToPath(new URL('../../test/fixtures/nvidia-smi/', import.meta.url));
export const FIXTURE = 'h100x8';

export type Call = (name: string, args?: Record<string, unknown>) => Promise<Record<string, any>>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** When each tool call was sent and answered as the agent saw it (ms since the epoch, the ledger's clock), by tool name. */
export type CallTimes = Record<string, Interval[]>;

export async function connect(repo: string, root: string, devices: number): Promise<{ call: Call; times: CallTimes; close: () => Promise<void> }> {
  const env: Record<string, string> = {
    ...(process.env as Record<string, string>),
    // The server finds nvidia-smi on its PATH: the fake goes first.
    PATH: `${FAKE_SMI_DIR}${delimiter}${process.env.PATH ?? ''}`,
    FAKE_NVIDIA_SMI_FIXTURE: FIXTURE,
    // The fake appends each call's arguments to <state>/queries: how often the server asks, counted without timing it.
    FAKE_NVIDIA_SMI_STATE: smiState(root),
    CUDA_VISIBLE_DEVICES: Array.from({ length: devices }, (_, i) => i).join(','),
    // The runs' cache folder stays inside the benchmark's temporary folder.
    XDG_CACHE_HOME: join(root, 'cache'),
  };
  const stderr = openSync(join(root, 'server.stderr'), 'w');
  const client = new Client({ name: 'bench-pool', version: '0' });
  await client.connect(new StdioClientTransport({ command: process.execPath, args: [CLI, 'serve', '--repo', repo], env, stderr }));
  closeSync(stderr);
  const times: CallTimes = {};
  const call: Call = async (name, args = {}) => {
    const start = Date.now();
    const r = (await client.callTool({ name, arguments: args }, undefined, { timeout: 120_000 })) as { isError?: boolean; structuredContent?: Record<string, unknown>; content: { text: string }[] };
    (times[name] ??= []).push({ start, end: Date.now() });
    if (r.isError) throw new Error(`${name}: ${r.content[0]?.text}`);
    return r.structuredContent as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  };
  return { call, times, close: () => client.close() };
}

function smiState(root: string): string {
  const dir = join(root, 'nvidia-smi');
  mkdirSync(dir, { recursive: true });
  return dir;
}

export function countQueries(root: string): { gpu: number; list: number; apps: number } {
  const path = join(smiState(root), 'queries');
  const lines = existsSync(path) ? readFileSync(path, 'utf8').split('\n') : [];
  return { gpu: lines.filter((l) => l.startsWith('--query-gpu')).length, list: lines.filter((l) => l === '-L').length, apps: lines.filter((l) => l.startsWith('--query-compute-apps')).length };
}


/** A fresh git repo at <root>/repo whose one editable file, value.txt, starts at `value`, committed with `config`. */
export function makeBenchRepo(root: string, value: string, config: Record<string, unknown>): string {
  const dir = join(root, 'repo');
  mkdirSync(dir);
  const git = (...args: string[]) => execFileSync('git', ['-c', 'user.name=bench', '-c', 'user.email=bench@localhost', ...args], { cwd: dir, stdio: 'pipe' });
  git('init', '-q', '-b', 'main');
  writeFileSync(join(dir, 'value.txt'), `${value}\n`);
  writeFileSync(join(dir, 'ratchet.json'), JSON.stringify({ editable: ['value.txt'], ...config }, null, 2) + '\n');
  git('add', '-A');
  git('commit', '-q', '-m', 'bench baseline');
  return dir;
}
