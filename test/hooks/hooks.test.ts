// The Claude Code hooks on real repos and ledgers, beside a running server: recorded hook inputs in, the documented JSON out.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import Database from 'better-sqlite3';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeRepo, TRAIN, EVALUATE, baseConfig, setConstant, type TestRepo } from '../helpers/repo.js';
import { CLI, connectServer, type ServerClient } from '../helpers/server.js';
import { stopVerdict } from '../../src/hooks/stop.js';
import type { SessionState } from '../../src/hooks/state.js';

const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));


/** A recorded hook input with this test's repo as its cwd. */
function fixture(name: string, repo: string): string {
  const input = JSON.parse(readFileSync(join(FIXTURES, name), 'utf8')) as Record<string, unknown>;
  return JSON.stringify({ ...input, cwd: repo });
}

function hook(event: string, input: string, env: NodeJS.ProcessEnv = {}) {
  // The repo comes from the input's cwd, as when Claude Code runs the hook without CLAUDE_PROJECT_DIR.
  const r = spawnSync(process.execPath, [CLI, 'hook', event], { input, encoding: 'utf8', env: { ...process.env, CLAUDE_PROJECT_DIR: '', ...env } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, json: r.stdout.trim() ? (JSON.parse(r.stdout) as Record<string, any>) : null };
}

/** The ledger's chain head, read on a read-only connection: it moves on every write. */
function chainHead(repo: string): number {
  const db = new Database(join(repo, '.ratchet', 'ratchet.db'), { readonly: true });
  try {
    return db.prepare('SELECT COALESCE(MAX(seq), 0) FROM chain').pluck().get() as number;
  } finally {
    db.close();
  }
}

describe('where ratchet never ran', () => {
  it('lets every stop through, says nothing at session start, and creates nothing', () => {
    const repo = makeRepo({ 'train.mjs': TRAIN });
    try {
      const stop = hook('stop', fixture('stop.json', repo.dir));
      expect(stop).toMatchObject({ code: 0, stdout: '' });
      expect(hook('session-start', fixture('session-start-resume.json', repo.dir))).toMatchObject({ code: 0, stdout: '' });
      expect(existsSync(join(repo.dir, '.ratchet'))).toBe(false);
    } finally {
      repo.cleanup();
    }
  });
});

describe('the stop verdict on states a live test cannot stage', () => {
  const state = (over: Partial<SessionState['status']>, serverAlive: boolean): SessionState =>
    ({ status: { session: { tag: 'night' }, running: null, awaitingDecision: null, finished: null, integrity: { ok: true, findings: [] }, next: 'Call wait_experiment {id: 3}.', ...over }, recent: [], head: 7, serverAlive }) as unknown as SessionState;
  it('does not hold the agent forever on a run that no live server follows', () => {
    const running = { running: { id: 3 } } as unknown as Partial<SessionState['status']>;
    expect(stopVerdict(state(running, true), { stop_hook_active: true }, 7)).toMatchObject({ block: true });
    expect(stopVerdict(state(running, false), { stop_hook_active: true }, 7)).toMatchObject({ block: false });
    // The first stop is still blocked: the agent is told once.
    expect(stopVerdict(state(running, false), { stop_hook_active: false }, null)).toMatchObject({ block: true });
  });

  it('holds a finished session only for the run it still owes', () => {
    const finished = { reason: 'maxExperiments reached (3 of 3)', at: null };
    expect(stopVerdict(state({ finished, running: { id: 3 } } as never, true), {}, null)).toMatchObject({ block: true });
    expect(stopVerdict(state({ finished, awaitingDecision: 3 } as never, true), {}, null)).toMatchObject({ block: true });
    expect(stopVerdict(state({ finished } as never, true), {}, null)).toMatchObject({ block: false });
  });
});

describe('a session driven by a running server', () => {
  let repo: TestRepo;
  let server: ServerClient;
  const call = (name: string, args: Record<string, unknown> = {}) => server.ok(name, args);
  const finish = (id: number) => server.finish(id);


  beforeAll(async () => {
    repo = makeRepo({ 'train.mjs': TRAIN, 'evaluate.mjs': EVALUATE }, baseConfig({ sandbox: 'off' }));
    server = await connectServer(repo.dir);
    const started = await call('start_session', { tag: 'night' });
    await finish(started.baseline.id);
  });

  afterAll(async () => {
    await server.close();
    repo.cleanup();
  });

  it('blocks the stop with the next step, reading the ledger without writing it or taking the server\'s lock', async () => {
    const before = chainHead(repo.dir);
    const r = hook('stop', fixture('stop.json', repo.dir));
    expect(r.code).toBe(0);
    expect(r.json).toMatchObject({ decision: 'block' });
    expect(r.json!.reason).toContain('"night" is still open');
    expect(r.json!.reason).toContain('Next: Edit the editable files with one idea, then call run_experiment.');
    expect(chainHead(repo.dir)).toBe(before);
    // The server still drives the repo: a read-only server would say so, and would refuse the run below.
    expect((await call('status')).next).not.toContain('read-only');
  });

  it('lets the agent stop when it was told to go on and changed nothing; blocks again once the loop moved', async () => {
    const idle = hook('stop', fixture('stop-after-block.json', repo.dir));
    expect(idle).toMatchObject({ code: 0, stdout: '' });
    expect(idle.stderr).toContain('without any change to the ledger');

    setConstant(repo, 'SCORE', '0.5');
    const run = await call('run_experiment', { description: 'halve the score', wait_seconds: 0 });
    await finish(run.experiment.id);
    const moved = hook('stop', fixture('stop-after-block.json', repo.dir));
    expect(moved.json).toMatchObject({ decision: 'block' });
    expect(moved.json!.reason).toContain(`Experiment ${run.experiment.id} awaits a decision`);
    await call('keep', { id: run.experiment.id });
  });

  it('keeps blocking while an experiment runs, even after an earlier block, since waiting is progress', async () => {
    setConstant(repo, 'SLEEP_MS', '15000');
    const run = await call('run_experiment', { description: 'a slow run', wait_seconds: 0 });
    try {
      hook('stop', fixture('stop.json', repo.dir));
      const again = hook('stop', fixture('stop-after-block.json', repo.dir));
      expect(again.json).toMatchObject({ decision: 'block' });
      expect(again.json!.reason).toContain(`wait_experiment {id: ${run.experiment.id}}`);
    } finally {
      await call('cancel_experiment', { id: run.experiment.id });
      await call('revert', {});
    }
  });

  it('gives a compacted or resumed agent the state in a few lines, in the documented SessionStart output', () => {
    for (const name of ['session-start-compact.json', 'session-start-resume.json']) {
      const r = hook('session-start', fixture(name, repo.dir));
      expect(r.code).toBe(0);
      expect(r.json!.hookSpecificOutput.hookEventName).toBe('SessionStart');
      const context = r.json!.hookSpecificOutput.additionalContext as string;
      expect(context).toContain('ratchet session "night" on branch ratchet/night: active.');
      expect(context).toMatch(/score \(minimize\): best 0\.5 \(#\d+\) against baseline 1, 0\.5 better\./);
      expect(context).toContain('"halve the score" 0.5 → kept');
      expect(context).toContain('"a slow run" → cancelled');
      expect(context).toContain('Next: ');
      expect(context.split('\n').length).toBeLessThanOrEqual(8);
    }
  });

  it('takes the repo from CLAUDE_PROJECT_DIR before the input\'s cwd', () => {
    const elsewhere = JSON.stringify({ ...JSON.parse(fixture('stop.json', repo.dir)), cwd: FIXTURES });
    expect(hook('stop', elsewhere).stdout).toBe('');
    expect(hook('stop', elsewhere, { CLAUDE_PROJECT_DIR: repo.dir }).json).toMatchObject({ decision: 'block' });
  });

  it('never traps the agent on bad input: exit 0, the reason on stderr, no decision', () => {
    for (const input of ['not json', '[1, 2]']) {
      const r = hook('stop', input, { CLAUDE_PROJECT_DIR: repo.dir });
      expect(r).toMatchObject({ code: 0, stdout: '' });
      expect(r.stderr).toContain('the agent is not held back');
    }
    const unknown = hook('pre-tool-use', fixture('stop.json', repo.dir));
    expect(unknown).toMatchObject({ code: 0, stdout: '' });
    expect(unknown.stderr).toContain('unknown event');
  });

  it('lets the agent stop once the user stopped the session, after it decided the experiment it had measured', async () => {
    setConstant(repo, 'SCORE', '0.45');
    const measured = await finish((await call('run_experiment', { description: 'a last idea', wait_seconds: 1 })).experiment.id);
    expect(measured.state).toBe('measured');
    await call('stop_session', {});
    // Finished, but the measured experiment still needs keep or revert: the agent is held for that, and only that.
    const owed = hook('stop', fixture('stop-after-block.json', repo.dir));
    expect(owed.json).toMatchObject({ decision: 'block' });
    expect(owed.json!.reason).toContain(`experiment ${measured.id} is measured and waits for keep or revert`);
    await call('revert', { id: measured.id });
    const r = hook('stop', fixture('stop.json', repo.dir));
    expect(r).toMatchObject({ code: 0, stdout: '' });
    expect(r.stderr).toContain('the session is finished');
    const context = hook('session-start', fixture('session-start-resume.json', repo.dir)).json!.hookSpecificOutput.additionalContext as string;
    expect(context).toContain('"night" on branch ratchet/night: finished');
  });
});
