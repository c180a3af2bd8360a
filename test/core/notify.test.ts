// notify.command: real shell notifiers that record what they get, through the loop and on their own; failing and hanging ones too.
import { describe, it, expect, afterEach } from 'vitest';
import { mkdtempSync, readFileSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { ResearchLoop } from '../../src/core/loop.js';
import { runNotifyCommand, type NotifyPayload } from '../../src/core/notify.js';
import { makeRepo, TRAIN, EVALUATE, baseConfig, setConstant, pidAlive } from '../helpers/repo.js';
import { cleanedUpAfterEach, finished, startWithBaseline } from '../helpers/loop.js';

const { repos, loops } = cleanedUpAfterEach();
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'ratchet-notify-'));
  dirs.push(dir);
  return dir;
}

/** A logger whose lines the test can read. */
function recordingLogger() {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  return { logger, lines };
}

function setup(extra: Record<string, unknown>, logger = recordingLogger().logger) {
  const repo = makeRepo({ 'train.mjs': TRAIN, 'evaluate.mjs': EVALUATE }, baseConfig(extra));
  repos.push(repo);
  const loop = new ResearchLoop({ repo: repo.dir, logger });
  loops.push(loop);
  return { repo, loop };
}

async function runToEnd(loop: ResearchLoop, description: string) {
  return finished(loop, (await loop.runExperiment({ description })).id);
}

const readEvents = (file: string) => (existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as NotifyPayload) : []);
const sh = (path: string) => `'${path.replace(/'/g, "'\\''")}'`;

describe('runNotifyCommand', () => {
  const payload: NotifyPayload = { event: 'keep', tag: 't1', summary: 'ratchet t1: kept #2', experimentId: 2 };

  it('hands the event to the command as JSON on stdin, with RATCHET_EVENT and RATCHET_SUMMARY', async () => {
    const dir = tempDir();
    const outcome = await runNotifyCommand(`cat > ${sh(join(dir, 'in.json'))}; printf '%s|%s' "$RATCHET_EVENT" "$RATCHET_SUMMARY" > ${sh(join(dir, 'env'))}`, payload, { cwd: dir });
    expect(outcome).toMatchObject({ ok: true, exitCode: 0, timedOut: false, error: null });
    expect(JSON.parse(readFileSync(join(dir, 'in.json'), 'utf8'))).toEqual(payload);
    expect(readFileSync(join(dir, 'env'), 'utf8')).toBe('keep|ratchet t1: kept #2');
  });

  it('reports a failing, a missing and a stdin-ignoring notifier without throwing', async () => {
    const dir = tempDir();
    expect(await runNotifyCommand('echo boom >&2; exit 3', payload, { cwd: dir })).toMatchObject({ ok: false, exitCode: 3, stderr: 'boom\n' });
    const missing = await runNotifyCommand('/nonexistent/notifier', payload, { cwd: dir });
    expect(missing).toMatchObject({ ok: false, exitCode: 127 });
    expect(missing.stderr).toContain('not found');
    expect(await runNotifyCommand('true', payload, { cwd: dir })).toMatchObject({ ok: true });
    expect(await runNotifyCommand('true', payload, { cwd: join(dir, 'gone') })).toMatchObject({ ok: false, error: expect.stringContaining('ENOENT') });
  });

  it('kills a hanging notifier and what it started at the timeout', async () => {
    const dir = tempDir();
    const outcome = await runNotifyCommand(`echo $$ > ${sh(join(dir, 'sh.pid'))}; sleep 300 & echo $! > ${sh(join(dir, 'sleep.pid'))}; wait`, payload, { cwd: dir, timeoutMs: 500 });
    expect(outcome).toMatchObject({ ok: false, timedOut: true, signal: 'SIGKILL' });
    const pids = ['sh.pid', 'sleep.pid'].map((f) => Number(readFileSync(join(dir, f), 'utf8')));
    // SIGKILL has been sent to the group; wait for the kernel to finish the processes off.
    for (let i = 0; i < 100 && pids.some(pidAlive); i++) await new Promise((r) => setTimeout(r, 20));
    expect(pids.filter(pidAlive)).toEqual([]);
  });
});

describe('the loop tells notify.command', () => {
  it('keep, plateau, crash streak, cap reached and the stop, each once, with their details', async () => {
    const events = join(tempDir(), 'events.jsonl');
    const { repo, loop } = setup({
      notify: { command: `cat >> ${sh(events)}` },
      limits: { maxConsecutiveCrashes: 2 },
      decision: { rule: 'greedy', plateauWindow: 2 },
    });
    await startWithBaseline(loop);
    setConstant(repo, 'SCORE', '0.9');
    const kept = await runToEnd(loop, 'lower score');
    await loop.keep({ id: kept.id });
    setConstant(repo, 'SCORE', '1.5');
    const worse = await runToEnd(loop, 'worse');
    await loop.revert({ id: worse.id });
    setConstant(repo, 'MODE', "'crash'");
    await runToEnd(loop, 'crash 1'); // the second experiment in a row without a keep: the plateau window (2) fills
    setConstant(repo, 'SCORE', '1.4');
    const last = await runToEnd(loop, 'crash 2'); // two crashes in a row: the streak and the cap
    await loop.stopSession({ by: 'tool' });
    await loop.settle();

    const got = readEvents(events);
    expect(got.map((e) => e.event).sort()).toEqual(['cap_reached', 'crash_streak', 'keep', 'plateau', 'session_end']);
    const by = Object.fromEntries(got.map((e) => [e.event, e]));
    expect(by.keep).toMatchObject({ tag: 't1', branch: 'ratchet/t1', experimentId: kept.id, metric: 0.9, previousBest: 1, baseline: 1, metricName: 'score', summary: `ratchet t1: kept #${kept.id} "lower score": score 0.9 (was 1)` });
    expect(by.plateau).toMatchObject({ experimentsSinceKeep: 2, window: 2 });
    expect(by.crash_streak).toMatchObject({ crashes: 2, experimentId: last.id });
    expect(by.cap_reached).toMatchObject({ cap: 'maxConsecutiveCrashes', summary: 'ratchet t1: finished: 2 experiments in a row crashed or timed out (limits.maxConsecutiveCrashes)' });
    expect(by.session_end).toMatchObject({ reason: 'stopped by the user through the stop_session tool', cancelledExperimentId: null });
    for (const e of got) expect(Date.parse(e.at as string)).not.toBeNaN();
  });

  it('sends only the events listed, and a crash streak of 3 when no cap is set', async () => {
    const events = join(tempDir(), 'events.jsonl');
    const { repo, loop } = setup({ notify: { command: `cat >> ${sh(events)}`, events: ['crash_streak'] } });
    await startWithBaseline(loop);
    setConstant(repo, 'MODE', "'crash'");
    for (const n of [1, 2, 3, 4]) {
      setConstant(repo, 'SCORE', `1.${n}`);
      await runToEnd(loop, `crash ${n}`);
    }
    await loop.settle();
    expect(readEvents(events).map((e) => [e.event, e.crashes])).toEqual([['crash_streak', 3]]);
    expect((await loop.status()).finished).toBeNull(); // a notification, not a cap
  });

  it('a failing notifier is logged and nothing else', async () => {
    const { logger, lines } = recordingLogger();
    const { repo, loop } = setup({ notify: { command: 'echo no webhook here >&2; exit 7' } }, logger);
    await startWithBaseline(loop);
    setConstant(repo, 'SCORE', '0.8');
    const e = await runToEnd(loop, 'better');
    expect((await loop.keep({ id: e.id })).experiment.decision).toBe('kept');
    await loop.settle();
    const failure = lines.find((l) => l.msg === 'notify.command failed; the loop goes on');
    expect(failure).toMatchObject({ event: 'keep', exitCode: 7, timedOut: false, stderr: 'no webhook here\n' });
    expect((await loop.status()).session?.bestMetric).toBe(0.8);
  });

  it('a hanging notifier never holds up the loop; it is killed after 10 s and logged', async () => {
    const marks = join(tempDir(), 'marks');
    const { logger, lines } = recordingLogger();
    const { repo, loop } = setup({ notify: { command: `echo started >> ${sh(marks)}; exec sleep 300` } }, logger);
    await startWithBaseline(loop);
    setConstant(repo, 'SCORE', '0.8');
    const e = await runToEnd(loop, 'better');
    await loop.keep({ id: e.id });
    // The keep's notifier has started and still hangs; the loop goes on regardless.
    for (let i = 0; i < 250 && !existsSync(marks); i++) await new Promise((r) => setTimeout(r, 20));
    expect(readFileSync(marks, 'utf8')).toBe('started\n');
    setConstant(repo, 'SCORE', '0.7');
    const next = await runToEnd(loop, 'better still');
    expect((await loop.keep({ id: next.id })).experiment.decision).toBe('kept');
    await loop.settle();
    expect(readFileSync(marks, 'utf8')).toBe('started\nstarted\n');
    expect(lines.filter((l) => l.msg === 'notify.command failed; the loop goes on').map((l) => [l.event, l.timedOut])).toEqual([
      ['keep', true],
      ['keep', true],
    ]);
  }, 40_000);
});
