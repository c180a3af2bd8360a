// Test harness for executor steps: a fake agent repo (hidden), a workspace inside its state, a cache, run files outside it.
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { StepRequest } from '../../../src/core/executor/executor.js';
import { newToken } from './harness.js';

const roots: string[] = [];

export interface StepLayout {
  root: string;
  repo: string;
  workspace: string;
  cacheDir: string;
  runDir: string;
}

/**
 * Under /var/tmp, not /tmp: the sandbox's private /tmp would hide these paths for free and prove nothing.
 * repo/ plays the agent's tree (.git, .ratchet, a source file); the workspace lives in repo/.ratchet like ratchet's own.
 */
export function stepLayout(): StepLayout {
  const root = mkdtempSync('/var/tmp/ratchet-step-');
  roots.push(root);
  const repo = join(root, 'repo');
  const workspace = join(repo, '.ratchet', 'ws', newToken());
  const cacheDir = join(root, 'cache');
  const runDir = join(root, 'runs');
  for (const dir of [join(repo, '.git'), join(repo, 'src'), workspace, cacheDir, runDir]) mkdirSync(dir, { recursive: true });
  writeFileSync(join(repo, '.git', 'config'), '[core]\n');
  writeFileSync(join(repo, '.ratchet', 'ratchet.db'), 'ledger');
  writeFileSync(join(repo, 'src', 'train.py'), 'print(1)\n');
  return { root, repo, workspace, cacheDir, runDir };
}

/** A fresh workspace of the same layout, for a second step. */
export function nextWorkspace(layout: StepLayout): string {
  const workspace = join(layout.repo, '.ratchet', 'ws', newToken());
  mkdirSync(workspace, { recursive: true });
  return workspace;
}

export function stepIn(layout: StepLayout, over: Partial<StepRequest> & Pick<StepRequest, 'command'>): StepRequest {
  const token = over.token ?? newToken();
  return {
    token,
    workspace: layout.workspace,
    env: {},
    budgetSeconds: 30,
    graceSeconds: 1,
    logPath: join(layout.runDir, `${token}.log`),
    resultPath: join(layout.runDir, `${token}.result.json`),
    maxLogBytes: 10 * 1024 * 1024,
    inputs: [],
    network: false,
    gpuDevices: [],
    cacheDir: layout.cacheDir,
    hidden: [layout.repo],
    ...over,
  };
}

export function removeStepLayouts(): void {
  for (const root of roots.splice(0)) rmSync(root, { recursive: true, force: true });
}

export function writeExecutable(path: string, text: string): void {
  writeFileSync(path, text);
  chmodSync(path, 0o755);
}

export function readText(path: string): string {
  return existsSync(path) ? readFileSync(path, 'utf8') : '';
}

/** Host pids whose argv is exactly argv (a marker argument makes it unique to one test). */
export function hostPidsWithArgv(argv: string[]): number[] {
  const want = `${argv.join('\0')}\0`;
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readFileSync(`/proc/${name}/cmdline`, 'utf8') === want) pids.push(Number(name));
    } catch {
      // gone
    }
  }
  return pids;
}

/** A unique sleep: GNU sleep adds its arguments, so `sleep 300 0.<digits>` is a 300 s sleep we can find by argv. */
export function markedSleep(): string[] {
  return ['sleep', '300', `0.${String(Date.now()).slice(-6)}${String(Math.floor(Math.random() * 1e6)).padStart(6, '0')}`];
}

/** Files and folders under dir, as relative paths, for before/after comparisons. */
export function listTree(dir: string, skip: string[] = []): string[] {
  const out: string[] = [];
  const walk = (rel: string): void => {
    for (const entry of readdirSync(join(dir, rel), { withFileTypes: true })) {
      const path = rel ? `${rel}/${entry.name}` : entry.name;
      if (skip.includes(path)) continue;
      out.push(path);
      if (entry.isDirectory()) walk(path);
    }
  };
  walk('');
  return out.sort();
}
