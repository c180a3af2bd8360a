// The supervised runner end to end with real process trees: exit status, log, budget, escapees, memory, flood, cancel, recovery.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync, readlinkSync, realpathSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  cancelRun,
  isSupervisorAlive,
  readRunResult,
  readRunStarted,
  startRun,
  supervisorScriptPath,
  sweepRun,
  waitForRunResult,
} from '../../../src/core/runner/runner.js';
import { createRunCgroup, cgroupDirs } from '../../../src/core/runner/cgroup.js';
import { RatchetError } from '../../../src/core/errors.js';
import { ensureSupervisorBuilt } from './built.js';
import {
  AWAIT_PIDFILES,
  DAEMON,
  GRANDCHILD,
  HIDDEN_DAEMON,
  isDead,
  pidFrom,
  removeTempDirs,
  runToResult,
  specIn,
  tempDir,
  waitFor,
} from './harness.js';

// Decided once, before the tests are collected: cgroup tests run only where this machine lets us create one.
const cgroupProbe = (() => {
  const outcome = createRunCgroup(`probe-${process.pid}`);
  if (!outcome.ok) return { ok: false as const, reason: outcome.reason };
  for (const dir of cgroupDirs(outcome.cgroup)) execFileSync('rmdir', [dir]);
  return { ok: true as const, reason: '' };
})();
if (!cgroupProbe.ok) process.stderr.write(`runner tests: cgroup containment tests skipped: ${cgroupProbe.reason}\n`);

beforeAll(() => ensureSupervisorBuilt(), 120_000);
afterAll(() => removeTempDirs());

describe.concurrent('runner: exit status, log, env', () => {
  it('records exit 3 from an argv command, with stdout and stderr in the log, env and cwd passed', async () => {
    const dir = tempDir();
    const spec = specIn(dir, {
      command: ['/bin/sh', '-c', 'echo to-stdout; echo to-stderr >&2; echo "foo=$FOO token=$RATCHET_RUN_TOKEN"; pwd; exit 3'],
      env: { FOO: 'bar baz' },
    });
    const { result, log } = await runToResult(spec);
    expect(result).toMatchObject({ exitCode: 3, signal: null, timedOut: false, cancelled: false, spawnError: null, token: spec.token });
    expect(log).toContain('to-stdout\n');
    expect(log).toContain('to-stderr\n');
    expect(log).toContain(`foo=bar baz token=${spec.token}\n`);
    expect(log).toContain(`${realpathSync(dir)}\n`);
    expect(result.childPid).toBeGreaterThan(0);
    expect(result.supervisorPid).not.toBe(process.pid);
    expect(Date.parse(result.endedAt)).toBeGreaterThanOrEqual(Date.parse(result.startedAt));
  });

  it('runs an argv array without a shell and a string through /bin/sh -c', async () => {
    const dir = tempDir();
    const argv = await runToResult(
      specIn(dir, { command: [process.execPath, '-e', 'console.log(process.argv.slice(1).join("|"))', 'a b', '$HOME;*'] }),
    );
    expect(argv.result.exitCode).toBe(0);
    expect(argv.log).toBe('a b|$HOME;*\n');
    const dir2 = tempDir();
    const shell = await runToResult(specIn(dir2, { command: 'X=$((2+3)); echo "sum=$X" | tr a-z A-Z' }));
    expect(shell.result.exitCode).toBe(0);
    expect(shell.log).toBe('SUM=5\n');
  });

  it('appends to an existing log rather than replacing it', async () => {
    const dir = tempDir();
    const spec = specIn(dir, { command: 'echo second' });
    writeFileSync(spec.logPath, 'first\n');
    const { log } = await runToResult(spec);
    expect(log).toBe('first\nsecond\n');
  });

  it('reports a missing program as a spawn error, a missing shell command as exit 127, a missing cwd as a spawn error', async () => {
    const missing = await runToResult(specIn(tempDir(), { command: ['ratchet-no-such-command-x1'] }));
    expect(missing.result.spawnError).toMatch(/command not found: ratchet-no-such-command-x1/);
    expect(missing.result).toMatchObject({ exitCode: null, childPid: null, peakMemoryBytes: null });

    const shell = await runToResult(specIn(tempDir(), { command: 'ratchet-no-such-command-x1 --flag' }));
    expect(shell.result).toMatchObject({ exitCode: 127, spawnError: null });
    expect(shell.log).toMatch(/ratchet-no-such-command-x1.*not found/);

    const dir = tempDir();
    const noCwd = await runToResult(specIn(dir, { command: 'true', cwd: join(dir, 'nope') }));
    expect(noCwd.result.spawnError).toMatch(/working directory does not exist/);
  });

  it('rejects an invalid spec before starting anything', async () => {
    const dir = tempDir();
    await expect(startRun(specIn(dir, { command: 'true', token: 'bad token/../x' }))).rejects.toBeInstanceOf(RatchetError);
    await expect(startRun(specIn(dir, { command: 'true', budgetSeconds: 0 }))).rejects.toThrow(/budgetSeconds/);
    expect(existsSync(join(dir, 'result.json.spec.json'))).toBe(false);
  });

  it('resolves the supervisor script to the built copy', () => {
    expect(supervisorScriptPath()).toMatch(/dist\/core\/runner\/supervise\.js$/);
    expect(existsSync(supervisorScriptPath())).toBe(true);
  });
});

describe.concurrent('runner: budget and grace', () => {
  it('stops a sleep at the budget and leaves nothing behind', async () => {
    const dir = tempDir();
    const { result, wallMs } = await runToResult(specIn(dir, { command: `${GRANDCHILD} exec sleep 600`, budgetSeconds: 1, graceSeconds: 1 }));
    expect(result).toMatchObject({ timedOut: true, exitCode: null, signal: 'SIGTERM', cancelled: false });
    expect(result.durationMs).toBeGreaterThanOrEqual(1000);
    expect(wallMs).toBeLessThan(15_000);
    expect(isDead(result.childPid!)).toBe(true);
    expect(isDead(await pidFrom(dir, 'grandchild.pid'))).toBe(true);
  });

  it('marks a run that hit the budget as timed out even when it then exits 0', async () => {
    const dir = tempDir();
    const { result } = await runToResult(
      specIn(dir, { command: "trap 'exit 0' TERM; sleep 600 & wait", budgetSeconds: 1, graceSeconds: 5 }),
    );
    expect(result).toMatchObject({ timedOut: true, exitCode: 0, signal: null });
  });

  it('SIGKILLs a process that ignores SIGTERM once the grace period is over', async () => {
    const dir = tempDir();
    const { result, wallMs } = await runToResult(
      specIn(dir, { command: "trap '' TERM; while :; do sleep 0.1; done", budgetSeconds: 1, graceSeconds: 1 }),
    );
    expect(result).toMatchObject({ timedOut: true, exitCode: null, signal: 'SIGKILL' });
    // TERM at 1 s was ignored, so the KILL cannot have come before budget + grace.
    expect(result.durationMs).toBeGreaterThanOrEqual(1900);
    expect(wallMs).toBeLessThan(15_000);
    expect(isDead(result.childPid!)).toBe(true);
  });
});

const containments = [
  { mode: 'proc' as const, skip: false, why: '' },
  { mode: 'cgroup' as const, skip: !cgroupProbe.ok, why: cgroupProbe.ok ? '' : ` (skipped: ${cgroupProbe.reason})` },
];

for (const { mode, skip, why } of containments) {
  describe.concurrent.skipIf(skip)(`runner: no process outlives the run, ${mode} containment${why}`, () => {
    it('kills a grandchild and a setsid double-forked daemon at the budget', async () => {
      const dir = tempDir();
      const command = `${GRANDCHILD} ${DAEMON} ${AWAIT_PIDFILES(['daemon.pid'])} sleep 600`;
      const { result } = await runToResult(specIn(dir, { command, containment: mode, budgetSeconds: 1, graceSeconds: 1 }));
      expect(result.timedOut).toBe(true);
      expect(result.containment).toEqual(mode === 'proc' ? 'proc' : expect.stringMatching(/^cgroup-v[12]$/));
      for (const name of ['grandchild.pid', 'daemon.pid']) expect(isDead(await pidFrom(dir, name)), name).toBe(true);
    });

    it('sweeps and counts a daemon left behind by a run that exits 0', async () => {
      const dir = tempDir();
      const command = `${DAEMON} ${AWAIT_PIDFILES(['daemon.pid'])} echo done`;
      const { result, log } = await runToResult(specIn(dir, { command, containment: mode }));
      expect(result).toMatchObject({ exitCode: 0, timedOut: false });
      expect(log).toBe('done\n');
      expect(result.sweptProcesses).toBeGreaterThanOrEqual(1);
      expect(isDead(await pidFrom(dir, 'daemon.pid'))).toBe(true);
    });

    it('kills a daemon that was started in its own session after the parent that forked it exited', async () => {
      // The middle shell lives a while, so even /proc tracking sees the parent chain before the daemon is orphaned.
      const dir = tempDir();
      const command = `setsid env -i sh -c 'sleep 300 & echo $! > hidden.pid; sleep 0.5' & ${AWAIT_PIDFILES(['hidden.pid'])} sleep 1.5; exit 0`;
      const { result } = await runToResult(specIn(dir, { command, containment: mode }));
      expect(result).toMatchObject({ exitCode: 0, timedOut: false });
      expect(result.sweptProcesses).toBeGreaterThanOrEqual(1);
      expect(isDead(await pidFrom(dir, 'hidden.pid'))).toBe(true);
    });

    it('measures the peak memory of the tree (a 200 MB buffer held for 1 s)', async () => {
      const dir = tempDir();
      const hold = 'const b = Buffer.alloc(200 * 1024 * 1024, 1); setTimeout(() => console.log(b[b.length - 1]), 1000);';
      const { result, log } = await runToResult(specIn(dir, { command: [process.execPath, '-e', hold], containment: mode }));
      expect(result.exitCode).toBe(0);
      expect(log).toBe('1\n');
      expect(result.peakMemoryBytes).toBeGreaterThanOrEqual(150 * 1024 * 1024);
      expect(result.peakMemoryBytes).toBeLessThan(8 * 1024 * 1024 * 1024);
      expect(result.memoryMethod).toMatch(mode === 'proc' ? /^proc VmRSS/ : /^(cgroup-v[12] memory|proc VmRSS)/);
    });
  });
}

describe.concurrent.skipIf(!cgroupProbe.ok)(`runner: cgroup-only guarantees${cgroupProbe.ok ? '' : ` (skipped: ${cgroupProbe.reason})`}`, () => {
  it('kills a daemon that scrubbed its environment and was orphaned at once, and removes the cgroup', async () => {
    const dir = tempDir();
    const command = `${HIDDEN_DAEMON} ${AWAIT_PIDFILES(['hidden.pid'])} exit 0`;
    const spec = specIn(dir, { command, containment: 'cgroup' });
    const { result } = await runToResult(spec);
    expect(result.exitCode).toBe(0);
    expect(result.containment).toMatch(/^cgroup-v[12]$/);
    expect(isDead(await pidFrom(dir, 'hidden.pid'))).toBe(true);
    const started = readRunStarted(spec.resultPath)!;
    expect(started.cgroupDirs.length).toBeGreaterThan(0);
    for (const cg of started.cgroupDirs) expect(existsSync(cg), cg).toBe(false);
  });
});

describe.concurrent('runner: log flood', () => {
  it('stops a run whose output passes maxLogBytes and caps the file', async () => {
    const dir = tempDir();
    const spec = specIn(dir, { command: ['yes', 'ratchet-flood-line'], maxLogBytes: 1024 * 1024, budgetSeconds: 30 });
    const { result, wallMs } = await runToResult(spec);
    expect(result).toMatchObject({ logLimitExceeded: true, timedOut: false, cancelled: false });
    expect(result).toMatchObject({ exitCode: null, signal: 'SIGTERM' });
    expect(wallMs).toBeLessThan(15_000);
    const size = statSync(spec.logPath).size;
    expect(size).toBeGreaterThanOrEqual(1024 * 1024);
    expect(size).toBeLessThan(50 * 1024 * 1024);
    expect(readFileSync(spec.logPath, 'utf8')).toMatch(/\[ratchet\] output exceeded maxLogBytes \(1048576 bytes\).*\n$/);
    expect(isDead(result.childPid!)).toBe(true);
  });
});

describe.concurrent('runner: cancel and liveness', () => {
  it('cancels a running tree through its supervisor; the child has its own group and writes to the log by fd', async () => {
    const dir = tempDir();
    const spec = specIn(dir, { command: `${GRANDCHILD} exec sleep 600`, budgetSeconds: 60 });
    const { supervisorPid } = await startRun(spec);
    const started = readRunStarted(spec.resultPath)!;
    expect(started.supervisorPid).toBe(supervisorPid);
    const grandchild = await pidFrom(dir, 'grandchild.pid');

    const stat = readFileSync(`/proc/${started.childPid}/stat`, 'latin1');
    const [pgid, sid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ').slice(2, 4).map(Number);
    expect(pgid).toBe(started.childPid);
    expect(sid).toBe(started.childPid);
    expect(readlinkSync(`/proc/${started.childPid}/fd/1`)).toBe(spec.logPath);
    expect(readlinkSync(`/proc/${started.childPid}/fd/2`)).toBe(spec.logPath);

    expect(isSupervisorAlive(supervisorPid, spec.token)).toBe(true);
    expect(isSupervisorAlive(supervisorPid, 'some-other-token')).toBe(false);
    expect(cancelRun(supervisorPid, 'some-other-token')).toBe(false);
    expect(cancelRun(supervisorPid, spec.token)).toBe(true);

    const result = await waitForRunResult(spec.resultPath, { timeoutMs: 15_000, tickMs: 50 });
    expect(result).toMatchObject({ cancelled: true, timedOut: false, signal: 'SIGTERM', childPid: started.childPid });
    expect(isDead(started.childPid)).toBe(true);
    expect(isDead(grandchild)).toBe(true);
    await waitFor(() => !isSupervisorAlive(supervisorPid, spec.token), 10_000, 'the supervisor to exit');
    expect(cancelRun(supervisorPid, spec.token)).toBe(false);
  });

  it('waitForRunResult returns null on timeout and on abort, and ticks meanwhile', async () => {
    const dir = tempDir();
    const spec = specIn(dir, { command: 'sleep 600', budgetSeconds: 60 });
    const { supervisorPid } = await startRun(spec);
    const ticks: number[] = [];
    expect(await waitForRunResult(spec.resultPath, { timeoutMs: 300, tickMs: 50, onTick: (ms) => ticks.push(ms) })).toBeNull();
    expect(ticks.length).toBeGreaterThan(0);
    const abort = new AbortController();
    setTimeout(() => abort.abort(), 100);
    expect(await waitForRunResult(spec.resultPath, { timeoutMs: 20_000, signal: abort.signal })).toBeNull();
    expect(readRunResult(spec.resultPath)).toBeNull();
    expect(cancelRun(supervisorPid, spec.token)).toBe(true);
    expect((await waitForRunResult(spec.resultPath, { timeoutMs: 15_000, tickMs: 50 }))?.cancelled).toBe(true);
  });
});

describe.concurrent('runner: the server dies, the run goes on', () => {
  it('enforces the budget and writes the result after the server that started it is SIGKILLed', async () => {
    const dir = tempDir();
    const spec = specIn(dir, { command: `${GRANDCHILD} exec sleep 600`, budgetSeconds: 2, graceSeconds: 1 });
    const runner = new URL('../../../dist/core/runner/runner.js', import.meta.url).href;
    const script = `import { startRun } from ${JSON.stringify(runner)};
      const r = await startRun(JSON.parse(process.argv[1]));
      process.stdout.write(JSON.stringify(r) + '\\n');
      setInterval(() => {}, 1000);`;
    const server = spawn(process.execPath, ['--input-type=module', '-e', script, JSON.stringify(spec)], { stdio: ['ignore', 'pipe', 'inherit'] });
    const line = await new Promise<string>((resolve, reject) => {
      let out = '';
      server.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('\n')) resolve(out);
      });
      server.once('exit', (code) => reject(new Error(`server exited early (${code}): ${out}`)));
    });
    const { supervisorPid } = JSON.parse(line) as { supervisorPid: number };
    server.kill('SIGKILL');
    await new Promise((r) => server.once('exit', r));

    expect(isSupervisorAlive(supervisorPid, spec.token)).toBe(true);
    const result = await waitForRunResult(spec.resultPath, { timeoutMs: 20_000, tickMs: 50 });
    expect(result).toMatchObject({ timedOut: true, supervisorPid });
    expect(readRunResult(spec.resultPath)).toEqual(result);
    expect(isDead(result!.childPid!)).toBe(true);
    expect(isDead(await pidFrom(dir, 'grandchild.pid'))).toBe(true);
  });

  for (const { mode, skip, why } of containments) {
    it.skipIf(skip)(`sweepRun kills the orphaned tree when the supervisor itself is SIGKILLed (${mode}${why})`, async () => {
      const dir = tempDir();
      const hidden = mode === 'cgroup' ? HIDDEN_DAEMON : '';
      const pidfiles = mode === 'cgroup' ? ['daemon.pid', 'hidden.pid'] : ['daemon.pid'];
      const command = `${GRANDCHILD} ${DAEMON} ${hidden} ${AWAIT_PIDFILES(pidfiles)} exec sleep 600`;
      const spec = specIn(dir, { command, containment: mode, budgetSeconds: 60 });
      const { supervisorPid } = await startRun(spec);
      const started = readRunStarted(spec.resultPath)!;
      const pids = [started.childPid, await pidFrom(dir, 'grandchild.pid'), ...(await Promise.all(pidfiles.map((f) => pidFrom(dir, f))))];

      process.kill(supervisorPid, 'SIGKILL');
      await waitFor(() => !isSupervisorAlive(supervisorPid, spec.token), 10_000, 'the supervisor to die');
      for (const pid of pids) expect(isDead(pid), `pid ${pid} should still run before the sweep`).toBe(false);
      expect(readRunResult(spec.resultPath)).toBeNull();

      const killed = await sweepRun(spec.token);
      expect(killed).toBeGreaterThanOrEqual(pids.length);
      for (const pid of pids) expect(isDead(pid), `pid ${pid}`).toBe(true);
      for (const cg of started.cgroupDirs) expect(existsSync(cg), cg).toBe(false);
      expect(await sweepRun(spec.token)).toBe(0);
    });
  }
});
