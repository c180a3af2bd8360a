// Caps, stop_session and notify.command through the built server over stdio, as an agent meets them.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeRepo, TRAIN, EVALUATE, baseConfig, setConstant, type TestRepo } from '../helpers/repo.js';
import { connectServer, type ServerClient } from '../helpers/server.js';

let repo: TestRepo;
let outDir: string;
let server: ServerClient;
const call = (name: string, args: Record<string, unknown> = {}) => server.call(name, args);
const finish = (id: number) => server.finish(id);

const events = () => (existsSync(join(outDir, 'events.jsonl')) ? readFileSync(join(outDir, 'events.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).event as string) : []);

beforeAll(async () => {
  outDir = mkdtempSync(join(tmpdir(), 'ratchet-caps-'));
  repo = makeRepo(
    { 'train.mjs': TRAIN, 'evaluate.mjs': EVALUATE },
    // The notifier also prints to its stdout, which must never reach the MCP stream.
    baseConfig({ limits: { maxExperiments: 1 }, notify: { command: `echo not-json-rpc; cat >> '${join(outDir, 'events.jsonl')}'` } }),
  );
  server = await connectServer(repo.dir);
});

afterAll(async () => {
  await server.close();
  repo.cleanup();
  rmSync(outDir, { recursive: true, force: true });
});

describe('caps over stdio', () => {
  it('refuses past maxExperiments, still allows the keep, stops on request and tells the notifier', async () => {
    const started = await call('start_session', { tag: 'caps' });
    expect(started.isError, started.content[0]?.text).toBeFalsy();
    await finish(started.structuredContent!.baseline.id);

    setConstant(repo, 'SCORE', '0.8');
    const run = await call('run_experiment', { description: 'the one allowed', wait_seconds: 1 });
    const e = await finish(run.structuredContent!.experiment.id);
    expect(e.state).toBe('measured');

    const status = (await call('status')).structuredContent!;
    expect(status.limits.experiments).toEqual({ used: 1, limit: 1, reached: true });
    expect(status.finished).toMatchObject({ cap: 'maxExperiments', stopped: false });
    expect(status.next).toContain('Session caps is finished: 1 of 1 experiments ran (limits.maxExperiments).');

    setConstant(repo, 'SCORE', '0.7');
    const refused = await call('run_experiment', { description: 'one too many' });
    expect(refused.isError).toBe(true);
    expect(refused.content[0]!.text).toContain('[session_finished] Session caps is finished');
    expect(refused.content[0]!.text).toContain('Next: Stop here');

    expect((await call('keep', { id: e.id })).isError).toBeFalsy();

    const stopped = await call('stop_session', {});
    expect(stopped.isError, stopped.content[0]?.text).toBeFalsy();
    expect(stopped.structuredContent).toMatchObject({ alreadyStopped: false, cancelled: null, running: null, finished: { stopped: true, reason: 'stopped by the user through the stop_session tool' } });
    expect((await call('stop_session', {})).structuredContent!.alreadyStopped).toBe(true);

    // Notifications run beside the loop; wait for the three of them to land.
    for (let i = 0; i < 200 && events().length < 3; i++) await new Promise((r) => setTimeout(r, 50));
    expect(events().sort()).toEqual(['cap_reached', 'keep', 'session_end']);
  });
});
