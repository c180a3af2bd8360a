// The built server over stdio with the SDK Client: a whole short session, as an agent would drive it.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeRepo, TRAIN, EVALUATE, baseConfig, setConstant, pidAlive, type TestRepo } from '../helpers/repo.js';
import { connectServer, type ServerClient } from '../helpers/server.js';

let repo: TestRepo;
let pidDir: string;
let server: ServerClient;
const call = (name: string, args: Record<string, unknown> = {}) => server.call(name, args);
const finish = (id: number) => server.finish(id);

async function run(description: string) {
  const r = await call('run_experiment', { description, wait_seconds: 1 });
  expect(r.isError, r.content[0]?.text).toBeFalsy();
  return finish(r.structuredContent!.experiment.id);
}

beforeAll(async () => {
  pidDir = mkdtempSync(join(tmpdir(), 'ratchet-pids-'));
  repo = makeRepo(
    { 'train.mjs': TRAIN, 'evaluate.mjs': EVALUATE },
    baseConfig({
      // Without a sandbox, so the hung run's pids (written to a host folder) can be checked from here; the sandboxed kill has its own tests.
      sandbox: 'off',
      run: { command: 'node train.mjs', budgetSeconds: 3, graceSeconds: 1, env: { PID_DIR: pidDir } },
      evaluate: { command: 'node evaluate.mjs', budgetSeconds: 20 },
    }),
  );
  server = await connectServer(repo.dir);
});

afterAll(async () => {
  await server.close();
  repo.cleanup();
});

describe('a session over stdio', () => {
  it('runs baseline, keep, revert, refusal, timeout and an honest metric', async () => {
    const { tools } = await server.client.listTools();
    expect(tools).toHaveLength(12);

    // Baseline.
    const started = await call('start_session', { tag: 'e2e' });
    expect(started.isError, started.content[0]?.text).toBeFalsy();
    const baseline = await finish(started.structuredContent!.baseline.id);
    expect(baseline).toMatchObject({ state: 'measured', metric: 1 });

    // Kept.
    setConstant(repo, 'SCORE', '0.8');
    const kept = await run('lower the score');
    expect(kept.metric).toBe(0.8);
    expect((await call('keep', { id: kept.id })).isError).toBeFalsy();
    expect(repo.git('rev-parse', 'ratchet/e2e')).toBe(kept.commit);

    // Reverted, with its ref still present.
    setConstant(repo, 'SCORE', '0.95');
    const worse = await run('raise the score');
    expect((await call('keep', { id: worse.id })).content[0]!.text).toContain('did not improve');
    expect((await call('revert', { id: worse.id })).isError).toBeFalsy();
    expect(repo.git('rev-parse', `refs/ratchet/e2e/${worse.id}`)).toBe(worse.commit);
    expect(repo.read('train.mjs')).toContain('const SCORE = 0.8;');

    // Refused for touching a protected file; the file stays modified.
    repo.write('evaluate.mjs', `${EVALUATE}// tampered\n`);
    setConstant(repo, 'SCORE', '0.7');
    const refused = await call('run_experiment', { description: 'soften the evaluator' });
    expect(refused.isError).toBe(true);
    expect(refused.content[0]!.text).toContain('[surface_violation]');
    expect(refused.content[0]!.text).toContain('evaluate.mjs');
    expect(repo.read('evaluate.mjs')).toContain('// tampered');
    expect(repo.read('train.mjs')).toContain('const SCORE = 0.7;');
    repo.git('checkout', '--', 'evaluate.mjs');

    // Timed out: the grandchild and the setsid daemon are gone afterwards.
    setConstant(repo, 'MODE', "'hang'");
    const hung = await run('hang with a daemon');
    expect(hung.state).toBe('timed_out');
    const grandchild = Number(readFileSync(join(pidDir, 'grandchild.pid'), 'utf8'));
    const daemon = Number(readFileSync(join(pidDir, 'daemon.pid'), 'utf8'));
    expect(grandchild).toBeGreaterThan(1);
    expect(daemon).toBeGreaterThan(1);
    expect(pidAlive(grandchild)).toBe(false);
    expect(pidAlive(daemon)).toBe(false);

    // A run that prints a fake metric: the evaluate step's real one counts.
    setConstant(repo, 'MODE', "'fake'");
    const faked = await run('print a fake score');
    expect(faked.state).toBe('measured');
    expect(faked.metric).toBe(0.7);
    const log = await call('read_log', { id: faked.id, grep: 'score' });
    expect(log.structuredContent!.lines.map((l: { text: string }) => l.text)).toContain('score: 0.0001');

    const status = await call('status');
    expect(status.structuredContent).toMatchObject({ session: { bestMetric: 0.8, baselineMetric: 1 }, awaitingDecision: faked.id });
    expect(status.structuredContent!.counts).toMatchObject({ measured: 4, refused: 1, timed_out: 1 });
    const tsv = readFileSync(join(repo.dir, '.ratchet/results.tsv'), 'utf8');
    expect(tsv.split('\n').filter(Boolean).map((l) => l.split('\t')[3])).toEqual(['status', 'keep', 'keep', 'discard', 'refused', 'timeout']);
    expect(existsSync(join(repo.dir, '.ratchet/server.log'))).toBe(true);
  });
});
