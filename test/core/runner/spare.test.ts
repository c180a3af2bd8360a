// A spare supervisor, started ahead of need, supervises a run exactly like a fresh one: found by its token, cancelled, swept.
import { afterAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { cancelRun, isSupervisorAlive, startRun, sweepRun } from '../../../src/core/runner/runner.js';
import { TOKEN_ENV } from '../../../src/core/runner/run-spec.js';
import { removeTempDirs, specIn, tempDir } from './harness.js';

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
