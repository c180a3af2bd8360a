// How the server hears a run: the supervisor's pipe (started, done), the result file after a restart, stdout split, a light entry.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { messageReader, type SupervisorMessage } from '../../../src/core/runner/channel.js';
import { sandboxExit } from '../../../src/core/runner/child-command.js';
import { readRunResult, readRunStarted, startRun, watchRunResult } from '../../../src/core/runner/runner.js';
import { ensureSupervisorBuilt } from './built.js';
import { isDead, pidFrom, removeTempDirs, specIn, tempDir } from './harness.js';

beforeAll(() => ensureSupervisorBuilt(), 120_000);
afterAll(() => removeTempDirs());

describe.concurrent('completion over the pipe', () => {
  it('startRun returns once the child runs; done settles with the result on file, without any polling by the caller', async () => {
    const dir = tempDir();
    const spec = specIn(dir, { command: 'while [ ! -e go ]; do sleep 0.02; done; exit 6' });
    const { supervisorPid, done } = await startRun(spec);
    expect(readRunStarted(spec.resultPath)?.supervisorPid).toBe(supervisorPid);
    let settled = false;
    void done.then(() => (settled = true));
    await new Promise((r) => setTimeout(r, 100));
    expect(settled, 'done settled before the run ended').toBe(false);
    writeFileSync(join(dir, 'go'), '');
    const result = await done;
    expect(result).toMatchObject({ exitCode: 6, supervisorPid });
    expect(readRunResult(spec.resultPath)).toEqual(result);
  });

  it('done settles for a command that could not start, with its spawn error', async () => {
    const dir = tempDir();
    const { done } = await startRun(specIn(dir, { command: ['ratchet-no-such-command-x2'] }));
    expect((await done)?.spawnError).toMatch(/command not found/);
  });

  it('done is null when the supervisor is SIGKILLed before writing a result', async () => {
    const dir = tempDir();
    const spec = specIn(dir, { command: 'sleep 600 & echo $! > child.pid; wait', containment: 'proc' });
    const { supervisorPid, done } = await startRun(spec);
    const child = await pidFrom(dir, 'child.pid');
    process.kill(supervisorPid, 'SIGKILL');
    expect(await done).toBeNull();
    process.kill(child, 'SIGKILL');
  });

  it('stdoutPath receives stdout only, the log both', async () => {
    const dir = tempDir();
    const spec = specIn(dir, { command: 'echo a; echo b >&2; echo c', stdoutPath: join(dir, 'out') });
    const { done } = await startRun(spec);
    expect((await done)?.exitCode).toBe(0);
    expect(readFileSync(join(dir, 'out'), 'utf8')).toBe('a\nc\n');
    expect(readFileSync(spec.logPath, 'utf8').split('\n').sort()).toEqual(['', 'a', 'b', 'c']);
  });

  it('caps stdoutPath like the log and stops a flood', async () => {
    const dir = tempDir();
    const spec = specIn(dir, { command: ['yes', 'flood'], stdoutPath: join(dir, 'out'), maxLogBytes: 64 * 1024 });
    const { done } = await startRun(spec);
    expect(await done).toMatchObject({ logLimitExceeded: true });
    expect(readFileSync(join(dir, 'out')).length).toBeLessThanOrEqual(64 * 1024);
  });
});

describe.concurrent('watchRunResult (after a restart)', () => {
  it('settles when the result file appears, and null when the supervisor dies without one', async () => {
    const dir = tempDir();
    const spec = specIn(dir, { command: 'while [ ! -e go ]; do sleep 0.02; done; exit 2' });
    const { supervisorPid } = await startRun(spec);
    const watched = watchRunResult(spec.resultPath, { supervisorPid, token: spec.token }, 60_000);
    writeFileSync(join(dir, 'go'), '');
    // The liveness timer is a minute here, so only the file watch can settle this in time.
    expect((await watched)?.exitCode).toBe(2);

    const dir2 = tempDir();
    const spec2 = specIn(dir2, { command: 'sleep 600 & echo $! > child.pid; wait', containment: 'proc' });
    const second = await startRun(spec2);
    const child = await pidFrom(dir2, 'child.pid');
    process.kill(second.supervisorPid, 'SIGKILL');
    expect(await watchRunResult(spec2.resultPath, { supervisorPid: second.supervisorPid, token: spec2.token }, 100)).toBeNull();
    process.kill(child, 'SIGKILL');
    expect(isDead(second.supervisorPid)).toBe(true);
  });
});

describe('channel and exit units', () => {
  it('reads messages split across chunks and ignores other lines', () => {
    const got: SupervisorMessage[] = [];
    const feed = messageReader((m) => got.push(m));
    const line = JSON.stringify({ type: 'started', started: { token: 't' } });
    feed(`noise\n${line.slice(0, 10)}`);
    feed(`${line.slice(10)}\n{"type":"other"}\n`);
    expect(got.map((m) => m.type)).toEqual(['started']);
  });

  it('reads bwrap exit codes above 128 as the signal that killed the command', () => {
    expect(sandboxExit(143, null)).toEqual({ code: null, signal: 'SIGTERM' });
    expect(sandboxExit(3, null)).toEqual({ code: 3, signal: null });
    expect(sandboxExit(null, 'SIGKILL')).toEqual({ code: null, signal: 'SIGKILL' });
  });

  it('the supervisor entry imports only node builtins and its own light modules (no zod, no errors.js)', () => {
    const runnerDir = resolve(dirname(fileURLToPath(import.meta.url)), '../../../src/core/runner');
    const seen = new Set<string>();
    const visit = (file: string): void => {
      if (seen.has(file)) return;
      seen.add(file);
      for (const [, spec] of readFileSync(file, 'utf8').matchAll(/^import [^;]*? from '([^']+)';/gms)) {
        if (spec!.startsWith('node:')) continue;
        expect(spec, `${file} imports ${spec}`).toMatch(/^\.\/[\w-]+\.js$/);
        visit(join(runnerDir, spec!.replace(/\.js$/, '.ts')));
      }
    };
    visit(join(runnerDir, 'supervise.ts'));
    expect([...seen].map((f) => f.slice(runnerDir.length + 1)).sort()).not.toContain('run-schema.ts');
    expect(seen.size).toBeGreaterThan(5);
  });
});
