// SIGKILL the server mid-run: a restarted server re-attaches, or sweeps and marks the run crashed; ledger and git agree.
import { describe, it, expect, afterEach } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import Database from 'better-sqlite3';
import { mkdtempSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeRepo, TRAIN, EVALUATE, baseConfig, setConstant, pidAlive, type TestRepo } from '../helpers/repo.js';

const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));
type Result = { isError?: boolean; structuredContent?: Record<string, any>; content: { type: string; text: string }[] };

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function connect(repo: TestRepo) {
  const transport = new StdioClientTransport({ command: process.execPath, args: [CLI, 'serve', '--repo', repo.dir], stderr: 'ignore' });
  const client = new Client({ name: 'restart', version: '1.0.0' });
  await client.connect(transport);
  cleanups.push(() => client.close());
  const call = async (name: string, args: Record<string, unknown> = {}) => (await client.callTool({ name, arguments: args }, undefined, { timeout: 60_000 })) as Result;
  const finish = async (id: number) => {
    for (;;) {
      const r = await call('wait_experiment', { id, wait_seconds: 10 });
      if (r.structuredContent!.experiment.state !== 'running') return r.structuredContent!.experiment;
    }
  };
  return { client, call, finish, pid: transport.pid! };
}

async function waitForFile(path: string) {
  for (let i = 0; i < 200 && !existsSync(path); i++) await new Promise((r) => setTimeout(r, 50));
  return readFileSync(path, 'utf8');
}

function setup(budgetSeconds: number) {
  const pidDir = mkdtempSync(join(tmpdir(), 'ratchet-pids-'));
  const repo = makeRepo(
    { 'train.mjs': TRAIN, 'evaluate.mjs': EVALUATE },
    // Without a sandbox, so the run's pids (written to a host folder) can be checked from here; the sandbox's own kill has its tests.
    baseConfig({ sandbox: 'off', run: { command: 'node train.mjs', budgetSeconds, graceSeconds: 1, env: { PID_DIR: pidDir } } }),
  );
  cleanups.push(() => repo.cleanup());
  return { repo, pidDir };
}

describe('restart after SIGKILL', () => {
  it('re-attaches to a run whose supervisor is still alive and records its result', async () => {
    const { repo } = setup(30);
    const first = await connect(repo);
    const started = await first.call('start_session', { tag: 'r1' });
    await first.finish(started.structuredContent!.baseline.id);
    setConstant(repo, 'SLEEP_MS', '3000');
    setConstant(repo, 'SCORE', '0.6');
    const run = await first.call('run_experiment', { description: 'long run', wait_seconds: 0 });
    const id = run.structuredContent!.experiment.id;
    process.kill(first.pid, 'SIGKILL');

    const second = await connect(repo);
    const e = await second.finish(id);
    expect(e).toMatchObject({ state: 'measured', metric: 0.6 });
    const kept = await second.call('keep', { id });
    expect(kept.isError, kept.content[0]?.text).toBeFalsy();
    expect(repo.git('rev-parse', 'ratchet/r1')).toBe(e.commit);
  });

  it('marks the run crashed and leaves no process when the supervisor died too', async () => {
    const { repo, pidDir } = setup(60);
    const first = await connect(repo);
    const started = await first.call('start_session', { tag: 'r2' });
    await first.finish(started.structuredContent!.baseline.id);
    setConstant(repo, 'MODE', "'hang'");
    const run = await first.call('run_experiment', { description: 'hangs', wait_seconds: 0 });
    const id = run.structuredContent!.experiment.id;
    const daemon = Number(await waitForFile(join(pidDir, 'daemon.pid')));
    const grandchild = Number(await waitForFile(join(pidDir, 'grandchild.pid')));
    const db = new Database(join(repo.dir, '.ratchet/ratchet.db'), { readonly: true });
    const { supervisor_pid: supervisor } = db.prepare('SELECT supervisor_pid FROM experiments WHERE id = ?').get(id) as { supervisor_pid: number };
    db.close();
    process.kill(first.pid, 'SIGKILL');
    process.kill(supervisor, 'SIGKILL');
    expect(pidAlive(daemon)).toBe(true); // orphaned, until the new server sweeps

    const second = await connect(repo);
    const e = await second.finish(id);
    expect(e.state).toBe('crashed');
    expect(e.reason).toContain('supervisor died');
    expect(pidAlive(daemon)).toBe(false);
    expect(pidAlive(grandchild)).toBe(false);
    // Ledger and git agree: the branch is still at the baseline, the candidate's ref exists.
    const status = await second.call('status');
    expect(status.structuredContent).toMatchObject({ running: null, awaitingDecision: null });
    expect(repo.git('rev-parse', 'ratchet/r2')).toBe(status.structuredContent!.session.bestCommit);
    expect(repo.git('rev-parse', `refs/ratchet/r2/${id}`)).toBe(e.commit);
  });

  it('picks up an experiment in the middle of its repeats and finishes the decision', async () => {
    const repo = makeRepo(
      { 'train.mjs': TRAIN.replace('const SLEEP_MS = 0;', 'const SLEEP_MS = 1500;'), 'evaluate.mjs': EVALUATE },
      baseConfig({ decision: { rule: 'significant', baselineRepeats: 2 } }),
    );
    cleanups.push(() => repo.cleanup());
    const first = await connect(repo);
    const started = await first.call('start_session', { tag: 'r3' });
    await first.finish(started.structuredContent!.baseline.id);
    setConstant(repo, 'SCORE', '0.6');
    const run = await first.call('run_experiment', { description: 'better, measured twice', wait_seconds: 0 });
    const id = run.structuredContent!.experiment.id;
    const db = new Database(join(repo.dir, '.ratchet/ratchet.db'), { readonly: true });
    for (let i = 0; i < 400; i++) {
      const row = db.prepare('SELECT phase FROM experiments WHERE id = ?').get(id) as { phase: string };
      if (row.phase === 'repeats') break;
      await new Promise((r) => setTimeout(r, 25));
    }
    db.close();
    process.kill(first.pid, 'SIGKILL');

    const second = await connect(repo);
    const e = await second.finish(id);
    expect(e.state).toBe('measured');
    const report = await second.call('read_metric', { id });
    expect(report.structuredContent!.decision).toMatchObject({ verdict: 'improved', candidate: { mean: 0.6 }, best: { mean: 1 } });
    expect(repo.read('train.mjs')).toContain('const SCORE = 0.6;');
    const kept = await second.call('keep', { id });
    expect(kept.isError, kept.content[0]?.text).toBeFalsy();
    expect(repo.git('status', '--porcelain')).toBe('');
  });
});
