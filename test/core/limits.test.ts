// Caps on the night and the user's stop: real repos, real ledgers, real supervised runs, and the built CLI for `ratchet stop`.
import { describe, it, expect } from 'vitest';
import Database from 'better-sqlite3';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { ResearchLoop } from '../../src/core/loop.js';
import { LoopContext } from '../../src/core/context.js';
import { parseConfig } from '../../src/core/config.js';
import { capReached, limitsReport, sessionFinished } from '../../src/core/limits.js';
import { silentLogger } from '../../src/log.js';
import { makeRepo, TRAIN, EVALUATE, baseConfig, setConstant } from '../helpers/repo.js';
import { readmeSection } from '../helpers/readme.js';
import { cleanedUpAfterEach, finished, rejection, startWithBaseline } from '../helpers/loop.js';

const { repos, loops } = cleanedUpAfterEach();
const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));

function setup(limits: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  const repo = makeRepo({ 'train.mjs': TRAIN, 'evaluate.mjs': EVALUATE }, baseConfig({ limits, ...extra }));
  repos.push(repo);
  const loop = new ResearchLoop({ repo: repo.dir, logger: silentLogger() });
  loops.push(loop);
  return { repo, loop };
}

async function runToEnd(loop: ResearchLoop, description: string) {
  return finished(loop, (await loop.runExperiment({ description })).id);
}

describe('limits in ratchet.json', () => {
  const valid = (limits: unknown) => parseConfig(baseConfig({ limits }));
  const problems = (limits: unknown, extra: Record<string, unknown> = {}) => {
    try {
      parseConfig(baseConfig({ limits, ...extra }));
    } catch (err) {
      return (err as { details: { problems: string[] } }).details.problems;
    }
    throw new Error('expected the config to be refused');
  };

  it('accepts every cap and a notifier', () => {
    const config = parseConfig(
      baseConfig({
        limits: { maxExperiments: 100, maxRuns: 400, deadline: '1h30m', maxConsecutiveCrashes: 5, maxCost: { amount: 40, source: 'gpu-hours', pricePerGpuHour: 2.5 } },
        notify: { command: 'notify-send ratchet', events: ['keep', 'session_end'] },
      }),
    );
    expect(config.limits?.deadline).toBe('1h30m');
    expect(config.notify?.events).toEqual(['keep', 'session_end']);
    expect(valid({ deadline: '2026-12-02T07:00:00+01:00' }).limits?.deadline).toBe('2026-12-02T07:00:00+01:00');
    expect(parseConfig(baseConfig()).limits).toBeUndefined();
  });

  it('names the key and the fix for each bad cap', () => {
    expect(problems({ maxExperiments: 0 })[0]).toMatch(/^limits\.maxExperiments: /);
    expect(problems({ maxRuns: 2.5 })[0]).toMatch(/^limits\.maxRuns: /);
    expect(problems({ deadline: '8 hours' })[0]).toContain('neither a duration from the session start ("8h", "90m", "1h30m") nor an ISO date-time');
    expect(problems({ deadline: '2026-12-02T07:00:00' })[0]).toContain('ISO date-time with a zone');
    expect(problems({ deadline: '40d' })[0]).toContain('at most 30 days');
    expect(problems({ maxCost: { amount: 5, source: 'metric', metric: 'cost_usd' } })).toEqual([
      'limits.maxCost.metric: "cost_usd" is not recorded; add it to metric.secondary so each run\'s value is kept',
    ]);
    expect(problems({ maxCost: { amount: 5, source: 'gpu-hours' } })[0]).toMatch(/^limits\.maxCost\.pricePerGpuHour: /);
    expect(problems({ maxExperiment: 5 })).toEqual(['limits: unknown key(s) "maxExperiment"']);
    expect(problems(undefined, { notify: { command: ' ' } })[0]).toMatch(/^notify\.command: /);
    expect(problems(undefined, { notify: { command: 'x', events: ['kept'] } })[0]).toMatch(/^notify\.events\.0: /);
  });
});

describe('the README section "Caps and notifications"', () => {
  it('shows configs that parse', () => {
    const section = readmeSection('Caps and notifications');
    const blocks = [...section.matchAll(/```json\n([\s\S]*?)```/g)].map((m) => m[1]!);
    expect(blocks).toHaveLength(2);
    const example = parseConfig({ ...baseConfig(), ...JSON.parse(blocks[0]!) });
    expect(example.limits?.maxCost).toEqual({ amount: 40, source: 'gpu-hours', pricePerGpuHour: 2.5 });
    const notifiers = blocks[1]!.trim().split('\n').map((line) => parseConfig({ ...baseConfig(), ...JSON.parse(`{${line}}`) }).notify?.command);
    expect(notifiers[0]).toContain('notify-send');
    expect(notifiers[1]).toContain('curl');
    expect(section).toContain('ratchet stop --cancel');
  });
});

describe('each cap refuses at the right moment', () => {
  it('maxExperiments: the last allowed candidate runs and can be decided; the next is refused', async () => {
    const { repo, loop } = setup({ maxExperiments: 2 });
    await startWithBaseline(loop);
    setConstant(repo, 'SCORE', '0.9');
    const first = await runToEnd(loop, 'first');
    await loop.keep({ id: first.id });
    expect((await loop.status()).finished).toBeNull();
    setConstant(repo, 'SCORE', '0.8');
    const second = await runToEnd(loop, 'second');
    const status = await loop.status();
    expect(status.limits?.experiments).toEqual({ used: 2, limit: 2, reached: true });
    expect(status.finished).toMatchObject({ stopped: false, cap: 'maxExperiments', reason: '2 of 2 experiments ran (limits.maxExperiments)' });
    // Recorded by the loop when the last experiment ended, with the moment.
    expect(status.finished?.at).toMatch(/^\d{4}-/);
    expect(status.next).toContain('Session t1 is finished: 2 of 2 experiments ran');
    expect(status.next).toContain(`Experiment ${second.id} awaits a decision`);
    setConstant(repo, 'SCORE', '0.7');
    const err = await rejection(loop.runExperiment({ description: 'third' }));
    expect(err.code).toBe('session_finished');
    expect(err.message).toBe('Session t1 is finished: 2 of 2 experiments ran (limits.maxExperiments). No more experiments run in it.');
    // Decisions on what ran stay allowed.
    expect((await loop.keep({ id: second.id })).experiment.decision).toBe('kept');
    expect((await loop.status()).next).toContain('No more experiments run: summarise the session for the user and stop.');
  });

  it('maxRuns counts every run, the baseline included', async () => {
    const { repo, loop } = setup({ maxRuns: 2 });
    await startWithBaseline(loop);
    setConstant(repo, 'SCORE', '1.5');
    const e = await runToEnd(loop, 'worse');
    await loop.revert({ id: e.id });
    setConstant(repo, 'SCORE', '0.5');
    const err = await rejection(loop.runExperiment({ description: 'one more' }));
    expect(err.code).toBe('session_finished');
    expect(err.message).toContain('2 of 2 runs were spent (limits.maxRuns)');
    expect((await loop.status()).limits?.runs).toEqual({ used: 2, limit: 2, reached: true });
  });

  it('maxConsecutiveCrashes: crashes in a row end the session; a measured run breaks the streak', async () => {
    const { repo, loop } = setup({ maxConsecutiveCrashes: 2 });
    await startWithBaseline(loop);
    setConstant(repo, 'MODE', "'crash'");
    expect((await runToEnd(loop, 'crash 1')).state).toBe('crashed');
    setConstant(repo, 'MODE', "'normal'");
    setConstant(repo, 'SCORE', '1.5');
    const measured = await runToEnd(loop, 'measured');
    await loop.revert({ id: measured.id });
    setConstant(repo, 'MODE', "'crash'");
    expect((await runToEnd(loop, 'crash 2')).state).toBe('crashed');
    expect((await loop.status()).limits?.consecutiveCrashes).toEqual({ used: 1, limit: 2, reached: false });
    setConstant(repo, 'SCORE', '1.4');
    expect((await runToEnd(loop, 'crash 3')).state).toBe('crashed');
    const err = await rejection(loop.runExperiment({ description: 'again' }));
    expect(err.code).toBe('session_finished');
    expect(err.message).toContain('2 experiments in a row crashed or timed out (limits.maxConsecutiveCrashes)');
  });

  it('maxCost from a metric the runs print: the sum over every run', async () => {
    // peak_vram_mb is SCORE x 1000 in the synthetic run: 1000 for the baseline, 900 for the candidate.
    const { repo, loop } = setup({ maxCost: { amount: 1900, source: 'metric', metric: 'peak_vram_mb' } });
    await startWithBaseline(loop);
    expect((await loop.status()).limits?.cost).toEqual({ used: 1000, limit: 1900, reached: false, unit: '(sum of peak_vram_mb)' });
    setConstant(repo, 'SCORE', '0.9');
    const e = await runToEnd(loop, 'cheaper');
    await loop.keep({ id: e.id });
    setConstant(repo, 'SCORE', '0.8');
    const err = await rejection(loop.runExperiment({ description: 'over budget' }));
    expect(err.code).toBe('session_finished');
    expect(err.message).toContain('it cost 1900 of 1900 (sum of peak_vram_mb) (limits.maxCost)');
  });

  it('maxCost in GPU-hours from recorded run durations (a run without GPUs counts as one)', async () => {
    const { repo, loop } = setup({ maxCost: { amount: 1e-9, source: 'gpu-hours', pricePerGpuHour: 1 } });
    await startWithBaseline(loop);
    const cost = (await loop.status()).limits?.cost;
    expect(cost?.used).toBeGreaterThan(0);
    expect(cost?.reached).toBe(true);
    setConstant(repo, 'SCORE', '0.8');
    expect((await rejection(loop.runExperiment({ description: 'x' }))).message).toContain('(limits.maxCost)');
  });

  it('deadline as an absolute date-time already past: refused, with the deadline as the moment', async () => {
    const { repo, loop } = setup({ deadline: '2000-01-01T00:00:00Z' });
    await startWithBaseline(loop);
    setConstant(repo, 'SCORE', '0.8');
    const err = await rejection(loop.runExperiment({ description: 'too late' }));
    expect(err.message).toContain('its deadline 2000-01-01T00:00:00.000Z passed (limits.deadline "2000-01-01T00:00:00Z")');
    const status = await loop.status();
    expect(status.finished).toMatchObject({ cap: 'deadline', stopped: false });
    expect(status.limits?.deadline.at).toBe('2000-01-01T00:00:00.000Z');
  });

  it('deadline as a duration counts from the session start', async () => {
    const { repo } = setup({ deadline: '1h30m' });
    const loop = new ResearchLoop({ repo: repo.dir, logger: silentLogger() });
    loops.push(loop);
    await startWithBaseline(loop);
    const ctx = new LoopContext({ repo: repo.dir, logger: silentLogger() });
    try {
      const session = ctx.ledger.activeSession()!;
      const config = ctx.configOf(session);
      const start = Date.parse(session.createdAt);
      expect(capReached(ctx, session, config, start + 89 * 60_000)).toBeNull();
      expect(capReached(ctx, session, config, start + 90 * 60_000)?.cap).toBe('deadline');
      expect(limitsReport(ctx, session, config, start + 60_000).deadline).toMatchObject({ used: 60, limit: 5400, reached: false });
      expect(sessionFinished(ctx, session, config)).toBeNull();
    } finally {
      ctx.closeLedger();
      ctx.git.close();
    }
  });
});

describe('stopping a session', () => {
  it('without cancel: the running experiment finishes and can be kept; nothing new runs', async () => {
    const { repo, loop } = setup({});
    await startWithBaseline(loop);
    setConstant(repo, 'SCORE', '0.8');
    setConstant(repo, 'SLEEP_MS', '1500');
    const started = await loop.runExperiment({ description: 'slow but good' });
    const stopped = await loop.stopSession({ by: 'tool' });
    expect(stopped).toMatchObject({ alreadyStopped: false, cancelled: null, finished: { stopped: true, cap: null, reason: 'stopped by the user through the stop_session tool' } });
    expect(stopped.running?.id).toBe(started.id);
    expect((await loop.status()).next).toContain(`Session t1 was stopped by the user through the stop_session tool. Experiment ${started.id} still runs`);
    const e = await finished(loop, started.id);
    expect(e.state).toBe('measured');
    await loop.keep({ id: e.id });
    setConstant(repo, 'SCORE', '0.7');
    const err = await rejection(loop.runExperiment({ description: 'after the stop' }));
    expect(err.code).toBe('session_finished');
    expect(err.message).toContain('stopped by the user');
    expect((await loop.stopSession({ by: 'tool' })).alreadyStopped).toBe(true);
  });

  it('a finished session cannot be replaced by the agent (its caps would reset); after the user\'s `ratchet close` a new one starts', async () => {
    const { repo, loop } = setup({ maxExperiments: 1 });
    await startWithBaseline(loop);
    setConstant(repo, 'SCORE', '0.8');
    setConstant(repo, 'SLEEP_MS', '1500');
    const only = await loop.runExperiment({ description: 'the only one' });
    // Closing now would orphan the running experiment.
    const early = await promisify(execFile)(process.execPath, [CLI, 'close', '--repo', repo.dir]).catch((e: { code: number; stderr: string }) => e);
    expect(early).toMatchObject({ code: 1 });
    expect((early as { stderr: string }).stderr).toContain(`experiment ${only.id} is still running`);
    await loop.revert({ id: (await finished(loop, only.id)).id });
    const replaced = await rejection(loop.startSession({ tag: 'again', replace: true }));
    expect(replaced.code).toBe('session_finished');
    expect(replaced.hint).toContain('ratchet close');
    const { stdout } = await promisify(execFile)(process.execPath, [CLI, 'close', '--repo', repo.dir]);
    expect(stdout).toContain('Closed session t1');
    expect(loop.ledger.activeSession()).toBeUndefined();
    const next = await loop.startSession({ tag: 'again' });
    expect(next.session.tag).toBe('again');
    await finished(loop, next.baseline.id);
    expect((await loop.status()).finished).toBeNull();
    expect(loop.ledger.verifyChain()).toEqual([]);
  });

  it('with cancel: the running experiment is cancelled', async () => {
    const { repo, loop } = setup({});
    await startWithBaseline(loop);
    setConstant(repo, 'SLEEP_MS', '60000');
    const started = await loop.runExperiment({ description: 'long' });
    const stopped = await loop.stopSession({ cancel: true, by: 'tool' });
    expect(stopped.cancelled).toMatchObject({ id: started.id, state: 'cancelled' });
    expect(stopped.running).toBeNull();
    expect(stopped.finished.reason).toBe(`stopped by the user through the stop_session tool, cancelling experiment ${started.id}`);
    expect((await loop.status()).running).toBeNull();
    expect(loop.ledger.sessionStop(loop.ledger.activeSession()!.id)?.cancelledExperimentId).toBe(started.id);
    // The stop is chained like every write: editing it outside ratchet shows.
    expect(loop.ledger.verifyChain()).toEqual([]);
    const raw = new Database(loop.ledger.path);
    raw.prepare("UPDATE session_ends SET reason = 'a cap, honestly'").run();
    raw.close();
    expect(loop.ledger.verifyChain().map((f) => f.what)).toEqual([expect.stringContaining('session_ends row 1 differs from what ratchet last wrote')]);
  });

  it('`ratchet stop --cancel` from another process, with no server following the run: it cancels the run itself, and a restarted server sees it', async () => {
    const { repo, loop: first } = setup({});
    await startWithBaseline(first);
    setConstant(repo, 'SLEEP_MS', '60000');
    const started = await first.runExperiment({ description: 'long' });
    // The server goes away; the run lives on under its supervisor, followed by nobody.
    first.close();
    const loop = new ResearchLoop({ repo: repo.dir, logger: silentLogger() });
    loops.push(loop);
    const { stdout } = await promisify(execFile)(process.execPath, [CLI, 'stop', '--cancel', '--repo', repo.dir]);
    expect(stdout).toContain('Stopped: stopped by the user with `ratchet stop`');
    expect(stdout).toContain(`Experiment ${started.id} was cancelled.`);
    expect((await finished(loop, started.id)).state).toBe('cancelled');
    setConstant(repo, 'SCORE', '0.5');
    expect((await rejection(loop.runExperiment({ description: 'x' }))).message).toContain('was stopped by the user with `ratchet stop`');
    const status = await loop.status();
    expect(status.integrity).toEqual({ ok: true, findings: [] });
    expect(loop.ledger.verifyChain()).toEqual([]);
    const again = await promisify(execFile)(process.execPath, [CLI, 'stop', '--repo', repo.dir]);
    expect(again.stdout).toContain('Already stopped');
  });

  it('`ratchet stop --cancel` beside a live server only asks the run to end; the server records it, once', async () => {
    const { repo, loop } = setup({});
    expect(await loop.claim()).toBeNull(); // this loop is the server that drives the repo
    await startWithBaseline(loop);
    setConstant(repo, 'SLEEP_MS', '60000');
    const started = await loop.runExperiment({ description: 'long' });
    const headBefore = loop.ledger.chainHead().seq;
    const { stdout } = await promisify(execFile)(process.execPath, [CLI, 'stop', '--cancel', '--repo', repo.dir]);
    expect(stdout).toContain(`Experiment ${started.id} was asked to stop; the running server records it as cancelled.`);
    const ended = await finished(loop, started.id);
    expect(ended.state).toBe('cancelled');
    // The CLI wrote the stop only: the run's facts and its end were written by this server.
    const db = new Database(loop.ledger.path, { readonly: true });
    const writers = db.prepare("SELECT COUNT(*) FROM chain WHERE seq > ? AND tbl = 'session_ends'").pluck().get(headBefore) as number;
    db.close();
    expect(writers).toBe(1);
    expect(loop.ledger.verifyChain()).toEqual([]);
    expect((await loop.status()).integrity.ok).toBe(true);
  });

  it('`ratchet stop` without a session says what to do', async () => {
    const repo = makeRepo({ 'train.mjs': TRAIN }, baseConfig());
    repos.push(repo);
    const err = await promisify(execFile)(process.execPath, [CLI, 'stop', '--repo', repo.dir]).catch((e: { code: number; stderr: string }) => e);
    expect(err).toMatchObject({ code: 1 });
    expect((err as { stderr: string }).stderr).toContain('No ratchet session is active');
  });
});
