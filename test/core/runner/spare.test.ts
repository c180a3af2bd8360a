// A spare supervisor, started ahead of need, supervises a run exactly like a fresh one: found by its token, cancelled, swept.
import { afterAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { messageReader, type SupervisorMessage } from '../../../src/core/runner/channel.js';
import { cancelRun, isSupervisorAlive, startRun, supervisorScriptPath, sweepRun } from '../../../src/core/runner/runner.js';
import { TOKEN_ENV } from '../../../src/core/runner/run-spec.js';
import { removeTempDirs, specIn, tempDir, waitFor } from './harness.js';

afterAll(removeTempDirs);

describe('spare supervisors', () => {
  it('a run handed to a spare carries its token in the title: alive, cancellable, and its result is the real one', async () => {
    // The first start leaves a spare behind; the second is handed to it.
    const first = await startRun(specIn(tempDir(), { command: 'true' }));
    await first.done;
    await new Promise((r) => setTimeout(r, 1500)); // the spare is started beside the first run
    const spec = specIn(tempDir(), { command: 'sleep 30' });
    const run = await startRun(spec);
    const cmdline = readFileSync(`/proc/${run.supervisorPid}/cmdline`, 'latin1');
    expect(cmdline).toContain(`${TOKEN_ENV}=${spec.token}`);
    expect(isSupervisorAlive(run.supervisorPid, spec.token)).toBe(true);
    expect(isSupervisorAlive(run.supervisorPid, `${spec.token}x`)).toBe(false);
    expect(cancelRun(run.supervisorPid, spec.token)).toBe(true);
    const result = await run.done;
    expect(result?.cancelled).toBe(true);
    expect(result?.supervisorPid).toBe(run.supervisorPid);
    expect(await sweepRun(spec.token)).toBe(0);
  });
});

describe('supervisors serve runs one after another', () => {
  it('the next run goes to the supervisor that finished the last one; the old token no longer reaches it', async () => {
    const first = specIn(tempDir(), { command: 'echo "token=$RATCHET_RUN_TOKEN"' });
    const a = await startRun(first);
    const aResult = await a.done;
    await new Promise((r) => setTimeout(r, 200)); // its "done" is heard before it is idle again
    const second = specIn(tempDir(), { command: 'echo "token=$RATCHET_RUN_TOKEN"; sleep 30' });
    const b = await startRun(second);
    // One of the two idle supervisors (the one that ran `first`, or the spare started beside it) takes the run.
    expect(aResult?.exitCode).toBe(0);
    expect(readFileSync(first.logPath, 'utf8')).toContain(`token=${first.token}`);
    const cmdline = readFileSync(`/proc/${b.supervisorPid}/cmdline`, 'latin1');
    expect(cmdline).toContain(`${TOKEN_ENV}=${second.token}`);
    expect(cmdline).not.toContain(first.token);
    // The second run's command has started (it prints its token) before any cancel is tried.
    await waitFor(() => existsSync(second.logPath) && readFileSync(second.logPath, 'utf8').includes(`token=${second.token}`), 20_000, 'the second run to print its token');
    // A late cancel of the first run must not stop the second, even when one process served both.
    expect(cancelRun(a.supervisorPid, first.token)).toBe(false);
    expect(isSupervisorAlive(b.supervisorPid, second.token)).toBe(true);
    expect(cancelRun(b.supervisorPid, second.token)).toBe(true);
    const bResult = await b.done;
    expect(bResult?.cancelled).toBe(true);
    expect(bResult?.token).toBe(second.token);
    expect(readFileSync(second.logPath, 'utf8')).toContain(`token=${second.token}`);
  });

  it('a supervisor takes spec paths on stdin, announces each run, and exits when its stdin closes', async () => {
    const specs = [specIn(tempDir(), { command: 'echo one' }), specIn(tempDir(), { command: 'exit 3' })];
    for (const spec of specs) writeFileSync(`${spec.resultPath}.spec.json`, JSON.stringify(spec));
    const child = spawn(process.execPath, [supervisorScriptPath(), '--spare', 'x'.repeat(320)], { stdio: ['pipe', 'pipe', 'inherit'], detached: true });
    const messages: SupervisorMessage[] = [];
    child.stdout.on('data', messageReader((m) => messages.push(m)));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.stdin.write(`${specs[0]!.resultPath}.spec.json\n${specs[1]!.resultPath}.spec.json\n`);
    for (let i = 0; i < 300 && messages.filter((m) => m.type === 'done').length < 2; i++) await new Promise((r) => setTimeout(r, 50));
    const done = messages.filter((m): m is Extract<SupervisorMessage, { type: 'done' }> => m.type === 'done').map((m) => m.result);
    expect(done.map((r) => [r.token, r.exitCode])).toEqual([
      [specs[0]!.token, 0],
      [specs[1]!.token, 3],
    ]);
    expect(done[0]!.supervisorPid).toBe(child.pid);
    expect(done[1]!.supervisorPid).toBe(child.pid);
    expect(readFileSync(`/proc/${child.pid}/cmdline`, 'latin1')).not.toContain(TOKEN_ENV);
    child.stdin.end();
    expect(await exited).toBe(0);
  });
});
