// The local executor's contract: start and hear the result at once, reattach after a restart, cancel, sweep, refuse "required".
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LocalExecutor, requireSandbox } from '../../src/core/executor/local.js';
import { RatchetError } from '../../src/core/errors.js';
import { readRunResult } from '../../src/core/runner/runner.js';
import { probeSandbox } from '../../src/core/sandbox.js';
import { ensureSupervisorBuilt } from './runner/built.js';
import { isDead, pidFrom, waitFor } from './runner/harness.js';
import { readText, removeStepLayouts, stepIn, stepLayout } from './runner/step-harness.js';

const available = probeSandbox('auto').kind === 'bwrap';
const modes = [
  { mode: 'off' as const, skip: false, label: 'no sandbox' },
  { mode: 'auto' as const, skip: !available, label: available ? 'bwrap' : 'bwrap (SKIPPED: no working sandbox here)' },
];

beforeAll(() => ensureSupervisorBuilt(), 120_000);
afterAll(() => removeStepLayouts());

for (const { mode, skip, label } of modes) {
  describe.skipIf(skip)(`LocalExecutor, ${label}`, () => {
    const executor = new LocalExecutor({ mode });

    it('start: done settles with the result the supervisor wrote, stdout split to stdoutPath', async () => {
      const layout = stepLayout();
      const step = stepIn(layout, { command: 'echo out; echo err >&2; exit 4', stdoutPath: join(layout.runDir, 'x.stdout') });
      const running = await executor.start(step);
      expect(running.token).toBe(step.token);
      const result = await running.done;
      expect(result).toMatchObject({ exitCode: 4, token: step.token, supervisorPid: running.supervisorPid, sandboxed: mode !== 'off' });
      expect(readRunResult(step.resultPath)).toEqual(result);
      expect(readText(step.stdoutPath!)).toBe('out\n');
      expect(readText(step.logPath).split('\n').sort()).toEqual(['', 'err', 'out']);
    });

    it('reattach: a new executor follows a live step to its result, and a step whose supervisor died to null', async () => {
      const layout = stepLayout();
      const step = stepIn(layout, { command: 'while [ ! -e go ]; do sleep 0.02; done; exit 5' });
      const first = await executor.start(step);
      const after = new LocalExecutor({ mode }).reattach({ token: step.token, supervisorPid: first.supervisorPid, resultPath: step.resultPath });
      writeFileSync(join(layout.workspace, 'go'), '');
      expect((await after.done)?.exitCode).toBe(5);

      const orphanStep = stepIn(layout, { command: `sleep 600 & echo $! > child.pid; wait` });
      const orphan = await executor.start(orphanStep);
      const childPid = mode === 'off' ? await pidFrom(layout.workspace, 'child.pid') : null;
      process.kill(orphan.supervisorPid, 'SIGKILL');
      const lost = new LocalExecutor({ mode }).reattach({ token: orphanStep.token, supervisorPid: orphan.supervisorPid, resultPath: orphanStep.resultPath });
      expect(await lost.done).toBeNull();
      await executor.sweep(orphanStep.token);
      if (childPid !== null) expect(isDead(childPid)).toBe(true);
      await waitFor(() => isDead(orphan.supervisorPid), 10_000, 'the supervisor to be gone');
    });

    it('cancel stops the step; done reports it cancelled', async () => {
      const layout = stepLayout();
      const running = await executor.start(stepIn(layout, { command: 'sleep 600' }));
      expect(running.cancel()).toBe(true);
      expect(await running.done).toMatchObject({ cancelled: true, timedOut: false });
    });
  });
}

describe.skipIf(!available)(`LocalExecutor: the same environment with and without the sandbox${available ? '' : ' (SKIPPED: no working sandbox here)'}`, () => {
  it('gives the step the same variables either way, and none of the server environment outside the allow-list', async () => {
    process.env.RATCHET_TEST_LEAK = 'leaked';
    try {
      const envOf = async (mode: 'off' | 'auto'): Promise<string> => {
        const layout = stepLayout();
        const step = stepIn(layout, { command: ['/usr/bin/env'], token: 'same-token', cacheDir: layout.cacheDir, env: { FROM_CONFIG: '1' } });
        const result = await (await new LocalExecutor({ mode }).start(step)).done;
        expect(result?.exitCode).toBe(0);
        return readText(step.logPath).split('\n').filter(Boolean).map((line) => line.replaceAll(layout.workspace, '<ws>').replaceAll(layout.root, '<root>')).sort().join('\n');
      };
      const plain = await envOf('off');
      expect(await envOf('auto')).toBe(plain);
      expect(plain).not.toContain('RATCHET_TEST_LEAK');
      expect(plain).toContain('FROM_CONFIG=1');
      expect(plain).toContain('HOME=<root>/cache/home');
      expect(plain).toContain('RATCHET_RUN_TOKEN=same-token');
    } finally {
      delete process.env.RATCHET_TEST_LEAK;
    }
  });
});

describe('requireSandbox', () => {
  it('refuses a "required" sandbox that does not work, with the install command; passes otherwise', () => {
    const none = { kind: 'none' as const, mode: 'required' as const, why: 'bubblewrap (bwrap) is not installed', install: 'apt-get install bubblewrap' };
    expect(() => requireSandbox(none)).toThrow(RatchetError);
    try {
      requireSandbox(none);
    } catch (err) {
      expect((err as RatchetError).code).toBe('sandbox_unavailable');
      expect((err as RatchetError).hint).toContain('apt-get install bubblewrap');
    }
    expect(() => requireSandbox({ ...none, mode: 'auto' })).not.toThrow();
    expect(() => requireSandbox({ ...none, kind: 'bwrap', install: null })).not.toThrow();
  });
});
