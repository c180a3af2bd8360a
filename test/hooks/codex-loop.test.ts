// `ratchet codex-loop` with a fake `codex` on PATH that records its arguments and drives the real server as Codex would.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeRepo, TRAIN, EVALUATE, baseConfig, type TestRepo } from '../helpers/repo.js';

const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));
const FAKE = fileURLToPath(new URL('./fake-codex.mjs', import.meta.url));

let bin: string;
let repo: TestRepo;

beforeAll(() => {
  bin = mkdtempSync(join(tmpdir(), 'ratchet-fake-codex-'));
  writeFileSync(join(bin, 'codex'), `#!/bin/sh\nexec "${process.execPath}" "${FAKE}" "$@"\n`);
  chmodSync(join(bin, 'codex'), 0o755);
  repo = makeRepo({ 'train.mjs': TRAIN, 'evaluate.mjs': EVALUATE }, baseConfig({ sandbox: 'off', limits: { maxExperiments: 2 } }));
});

afterAll(() => {
  rmSync(bin, { recursive: true, force: true });
  repo.cleanup();
});

function codexLoop(args: string[], mode: 'work' | 'idle' | 'fail', dir = repo.dir) {
  const log = join(bin, `calls-${Math.random().toString(36).slice(2)}.jsonl`);
  const r = spawnSync(process.execPath, [CLI, 'codex-loop', '--repo', dir, ...args], {
    encoding: 'utf8',
    timeout: 240_000,
    env: { ...process.env, PATH: `${bin}:${process.env.PATH}`, CLAUDE_PROJECT_DIR: '', FAKE_CODEX_LOG: log, FAKE_CODEX_MODE: mode, FAKE_CODEX_RATCHET: CLI },
  });
  const calls = existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as string[]) : [];
  return { code: r.status, stderr: r.stderr, calls };
}

describe('ratchet codex-loop', () => {
  it('--max-turns 1: one `codex exec` in the repo, allowed to edit, told to start the session', () => {
    const r = codexLoop(['--max-turns', '1'], 'work');
    expect(r.code, r.stderr).toBe(0);
    expect(r.calls).toHaveLength(1);
    expect(r.calls[0]!.slice(0, 5)).toEqual(['exec', '--cd', repo.dir, '--sandbox', 'workspace-write']);
    expect(r.calls[0]![5]).toContain('No ratchet session is active: call status, then start_session');
    expect(r.stderr).toContain('stopped after 1 turn(s) (--max-turns)');
  }, 240_000);

  it('gives up after three turns that changed nothing, passing the options after -- to codex', () => {
    const r = codexLoop(['--', '-m', 'gpt-5-codex', '--sandbox', 'danger-full-access'], 'idle');
    expect(r.code).toBe(1);
    expect(r.calls).toHaveLength(3);
    expect(r.calls[0]!.slice(0, 7)).toEqual(['exec', '--cd', repo.dir, '-m', 'gpt-5-codex', '--sandbox', 'danger-full-access']);
    expect(r.calls[0]![7]).toContain('ratchet session "codex" on branch ratchet/codex: active.');
    expect(r.stderr).toContain('3 turns in a row changed nothing in the ledger');
  }, 240_000);

  it('stops after three failed turns in a row, pointing at their output', () => {
    const r = codexLoop([], 'fail');
    expect(r.code).toBe(1);
    expect(r.calls).toHaveLength(3);
    expect(r.stderr).toContain('`codex exec` failed 3 times in a row (last exit status 1)');
  }, 240_000);

  it('feeds each turn the state and the next step, and ends when the session is finished (limits.maxExperiments)', () => {
    const r = codexLoop([], 'work');
    expect(r.code, r.stderr).toBe(0);
    expect(r.calls).toHaveLength(2);
    expect(r.calls[0]![5]).toContain('Next: Edit the editable files with one idea, then call run_experiment.');
    expect(r.calls[1]![5]).toMatch(/Latest: #\d+ "score 1 → 0\.9000" 0\.9 → kept/);
    expect(r.stderr).toContain('the session is finished: 2 of 2 experiments ran (limits.maxExperiments)');
    // Finished: a later start runs no turn at all.
    const again = codexLoop([], 'work');
    expect(again).toMatchObject({ code: 0, calls: [] });
  }, 240_000);

  it('says how to install Codex when it cannot be started', () => {
    const fresh = makeRepo({ 'train.mjs': TRAIN }, baseConfig());
    try {
      const r = codexLoop(['--codex', join(bin, 'no-such-codex')], 'work', fresh.dir);
      expect(r.code).toBe(127);
      expect(r.stderr).toContain('could not start');
      expect(r.stderr).toContain('npm i -g @openai/codex');
    } finally {
      fresh.cleanup();
    }
  });
});
