// The bubblewrap sandbox, attacked as a hostile run would: hidden tree, writes outside, escape, daemons, network, PATH, caches.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { LocalExecutor } from '../../src/core/executor/local.js';
import type { StepRequest } from '../../src/core/executor/executor.js';
import type { RunResult } from '../../src/core/runner/run-spec.js';
import { RATCHET_BIN, sanitizeSearchPath, stepEnv } from '../../src/core/runner/step-env.js';
import { probeSandbox, sandboxArgv } from '../../src/core/sandbox.js';
import { ensureSupervisorBuilt } from './runner/built.js';
import { isDead, waitFor } from './runner/harness.js';
import {
  hostPidsWithArgv,
  listTree,
  markedSleep,
  nextWorkspace,
  readText,
  removeStepLayouts,
  stepIn,
  stepLayout,
  writeExecutable,
  type StepLayout,
} from './runner/step-harness.js';

const report = probeSandbox('auto');
const onPath = (tool: string) => (process.env.PATH ?? '').split(':').some((dir) => dir.startsWith('/') && existsSync(join(dir, tool)));
if (!onPath('uv')) process.stderr.write('sandbox.test: uv is not on PATH, so the uv cache check is skipped (pip, XDG and HOME are checked with a real python).\n');
const available = report.kind === 'bwrap';
// Said out loud: a machine without a working bwrap skips the attack tests, and the run's output shows why.
if (!available) process.stderr.write(`sandbox tests: SKIPPED, no working sandbox here: ${report.why} Install: ${report.install}\n`);

beforeAll(() => ensureSupervisorBuilt(), 120_000);
afterAll(() => removeStepLayouts());

describe('probeSandbox', () => {
  it('reports kind none with an install command when bwrap is not on PATH', () => {
    const missing = probeSandbox('auto', { pathEnv: '/nonexistent-ratchet-dir' });
    expect(missing.kind).toBe('none');
    expect(missing.why).toMatch(/not installed.*steps run without a sandbox/);
    expect(missing.install).toMatch(process.platform === 'darwin' ? /not available on macOS/ : /(apt-get|dnf|pacman|apk|zypper) (install|-S|add) bubblewrap/);
    const required = probeSandbox('required', { pathEnv: '/nonexistent-ratchet-dir' });
    expect(required).toMatchObject({ kind: 'none', mode: 'required' });
    expect(required.why).toMatch(/"required", so steps will not start/);
  });

  it('reports none without probing when the config turns the sandbox off', () => {
    expect(probeSandbox('off')).toEqual({ kind: 'none', mode: 'off', why: expect.stringMatching(/"off"/), install: null });
  });

  it(`finds bwrap on this machine (${available ? 'it works' : `UNAVAILABLE: ${report.why}`})`, () => {
    // Not skipped: on a machine without a sandbox this states what the skipped tests below would have covered.
    expect(report.mode).toBe('auto');
    if (available) expect(report).toMatchObject({ kind: 'bwrap', install: null });
    else expect(report.install ?? report.why).toBeTruthy();
  });
});

describe('sandboxArgv', () => {
  it('mounts tmpfs over /tmp and the hidden tree before binding the workspace and cache inside it; net off on request', () => {
    const layout = stepLayout();
    const input = join(layout.root, 'data');
    mkdirSync(input);
    const step = stepIn(layout, { command: 'true', inputs: [{ source: input, target: join(layout.workspace, 'data') }], gpuDevices: ['/dev/null'] });
    const argv = sandboxArgv(step, '/usr/bin/bwrap');
    const at = (...seq: string[]): number => argv.findIndex((_, i) => seq.every((s, j) => argv[i + j] === s));
    expect(argv.slice(0, 5)).toEqual(['/usr/bin/bwrap', '--ro-bind', '/', '/', '--dev']);
    expect(at('--dev-bind', '/dev/null', '/dev/null')).toBeGreaterThan(at('--dev', '/dev'));
    expect(at('--tmpfs', '/tmp')).toBeGreaterThan(0);
    expect(at('--tmpfs', layout.repo)).toBeGreaterThan(at('--tmpfs', '/tmp'));
    expect(at('--bind', layout.workspace, layout.workspace)).toBeGreaterThan(at('--tmpfs', layout.repo));
    expect(at('--bind', layout.cacheDir, layout.cacheDir)).toBeGreaterThan(at('--tmpfs', layout.repo));
    expect(at('--ro-bind', input, join(layout.workspace, 'data'))).toBeGreaterThan(at('--bind', layout.workspace, layout.workspace));
    for (const flag of ['--unshare-pid', '--unshare-ipc', '--unshare-uts', '--unshare-net', '--die-with-parent', '--new-session']) expect(argv).toContain(flag);
    expect(at('--cap-drop', 'ALL')).toBeGreaterThan(0);
    expect(at('--chdir', layout.workspace)).toBeGreaterThan(0);
    expect(argv.at(-1)).toBe('--');
    expect(sandboxArgv({ ...step, network: true }, 'bwrap')).not.toContain('--unshare-net');
  });
});

describe('stepEnv', () => {
  const server = {
    PATH: `:relative/bin:/usr/bin:/opt/agent-repo/bin:/usr/bin:/bin`,
    HOME: '/home/someone',
    LANG: 'C.UTF-8',
    TERM: 'xterm',
    USER: 'someone',
    PYENV_ROOT: '/home/someone/.pyenv',
    VIRTUAL_ENV: '/opt/agent-repo/.venv',
    AWS_SECRET_ACCESS_KEY: 'secret',
    PYTHONPATH: '/opt/agent-repo',
    LD_PRELOAD: '/opt/agent-repo/evil.so',
  };
  const step = { token: 'tok-1', env: { FOO: 'bar', HF_HOME: '/data/hf' }, cacheDir: '/c', hidden: ['/opt/agent-repo'] };

  it('is an allow-list: sanitized PATH, caches in cacheDir, kept names, the config env, the token, nothing else', () => {
    expect(stepEnv(step, server)).toEqual({
      PATH: `${RATCHET_BIN}:/usr/bin:/bin`,
      RATCHET_NODE: process.execPath,
      LANG: 'C.UTF-8',
      TERM: 'xterm',
      USER: 'someone',
      PYENV_ROOT: '/home/someone/.pyenv',
      HOME: '/c/home',
      XDG_CACHE_HOME: '/c/xdg',
      PIP_CACHE_DIR: '/c/pip',
      UV_CACHE_DIR: '/c/uv',
      HF_HOME: '/data/hf',
      TORCHINDUCTOR_CACHE_DIR: '/c/torchinductor',
      TRITON_CACHE_DIR: '/c/triton',
      TMPDIR: '/tmp',
      FOO: 'bar',
      RATCHET_RUN_TOKEN: 'tok-1',
    });
  });

  it('sanitizes a PATH set by the config too, and the token cannot be overridden', () => {
    const env = stepEnv({ ...step, env: { PATH: '.::/opt/agent-repo/x:/usr/local/bin', RATCHET_RUN_TOKEN: 'forged' } }, server);
    expect(env.PATH).toBe(`${RATCHET_BIN}:/usr/local/bin`);
    expect(env.RATCHET_RUN_TOKEN).toBe('tok-1');
    expect(sanitizeSearchPath('/a::b:/a/:/c', ['/c'])).toBe('/a:/a/');
  });
});

// ---- Attacks, through the real executor and real bwrap ----

const executor = new LocalExecutor({ mode: 'required' });

async function runStep(step: StepRequest): Promise<{ result: RunResult; log: string }> {
  const running = await executor.start(step);
  const result = await running.done;
  if (!result) throw new Error(`no result for ${step.token}`);
  return { result, log: readText(step.logPath) };
}

describe.skipIf(!available)(`sandbox attacks${available ? '' : ` (SKIPPED: ${report.why})`}`, () => {
  it('the run sees nothing of the agent tree and writes nowhere but its workspace, /tmp and the cache', async () => {
    const layout = stepLayout();
    const step = stepIn(layout, { command: '' });
    const tag = step.token;
    const outside = [
      join(layout.repo, `pwned-${tag}`),
      join(layout.repo, '.ratchet', `pwned-${tag}`),
      join(layout.root, `pwned-${tag}`),
      join(layout.runDir, `pwned-${tag}`),
      join(layout.workspace, '..', `pwned-${tag}`),
      `/etc/pwned-${tag}`,
      `/root/pwned-${tag}`,
      `/var/tmp/pwned-${tag}`,
    ];
    const seen = [join(layout.repo, '.git'), join(layout.repo, '.git', 'config'), join(layout.repo, '.ratchet', 'ratchet.db'), join(layout.repo, 'src', 'train.py')];
    step.command = [
      `for p in ${seen.join(' ')}; do if [ -e "$p" ]; then echo "SEEN $p"; fi; done`,
      `echo "LISTING $(ls -A ${layout.repo} | tr '\\n' ' ')"`,
      `for p in ${outside.join(' ')}; do if (echo x > "$p") 2>/dev/null; then echo "WROTE $p"; fi; done`,
      `echo ok > ./in-workspace && echo ok > /tmp/private-${tag} && echo ok > "$HOME/in-cache" && echo WRITABLE-OK`,
    ].join('\n');
    const { result, log } = await runStep(step);
    expect(result).toMatchObject({ exitCode: 0, sandboxed: true });
    expect(log).not.toMatch(/SEEN|WROTE/);
    // Only the path down to the workspace exists in the repo's place: an empty tmpfs with the bind's mount point.
    expect(log).toContain('LISTING .ratchet \n');
    expect(log).toContain('WRITABLE-OK');
    for (const p of outside) expect(existsSync(p), p).toBe(false);
    expect(readText(join(layout.workspace, 'in-workspace'))).toBe('ok\n');
    expect(readText(join(layout.cacheDir, 'home', 'in-cache'))).toBe('ok\n');
    expect(existsSync(`/tmp/private-${tag}`)).toBe(false);
  });

  it('escape: setsid, double fork, env -i and a move to a parent cgroup still die with the step, 5 runs out of 5', async () => {
    for (let round = 0; round < 5; round++) {
      const layout = stepLayout();
      const sleeper = markedSleep();
      // The escapee tries every cgroup.procs above it, cgroup v1 and v2, then becomes a long sleep.
      writeExecutable(
        join(layout.workspace, 'escapee.sh'),
        [
          '#!/bin/sh',
          'for f in /sys/fs/cgroup/cgroup.procs /sys/fs/cgroup/*/cgroup.procs /sys/fs/cgroup/*/*/cgroup.procs; do',
          '  if (echo $$ > "$f") 2>/dev/null; then echo "moved to $f"; fi',
          'done > cgroup-moves.txt',
          `exec ${sleeper.join(' ')}`,
        ].join('\n'),
      );
      const command = `setsid env -i /bin/sh -c '/bin/sh ./escapee.sh & exit 0' & while [ ! -e go ]; do sleep 0.02; done; exit 0`;
      const running = await executor.start(stepIn(layout, { command }));
      let pids: number[] = [];
      await waitFor(() => (pids = hostPidsWithArgv(sleeper)).length === 1, 15_000, 'the escapee to run');
      const escapee = pids[0]!;
      const sid = Number(readFileSync(`/proc/${escapee}/stat`, 'latin1').split(') ')[1]!.split(' ')[4]);
      expect(sid, 'the escapee left the session of the step').not.toBe(running.supervisorPid);
      expect(readFileSync(`/proc/${escapee}/environ`, 'latin1')).not.toContain('RATCHET_RUN_TOKEN');
      writeFileSync(join(layout.workspace, 'go'), '');
      const result = await running.done;
      expect(result).toMatchObject({ exitCode: 0, sandboxed: true });
      expect(isDead(escapee), `round ${round}: escapee ${escapee} outlived the step`).toBe(true);
      expect(readText(join(layout.workspace, 'cgroup-moves.txt')), 'the read-only /sys refused every move').toBe('');
    }
  });

  it('a daemon started by the run does not outlive it, at a normal exit or at the budget', async () => {
    for (const ending of ['exit 0', 'exec sleep 600']) {
      const layout = stepLayout();
      const sleeper = markedSleep();
      const command = `setsid sh -c '${sleeper.join(' ')} & exit 0' & while [ ! -e go ]; do sleep 0.02; done; ${ending}`;
      const running = await executor.start(stepIn(layout, { command, budgetSeconds: ending === 'exit 0' ? 30 : 2 }));
      let pids: number[] = [];
      await waitFor(() => (pids = hostPidsWithArgv(sleeper)).length === 1, 15_000, 'the daemon to run');
      writeFileSync(join(layout.workspace, 'go'), '');
      const result = await running.done;
      expect(result?.timedOut).toBe(ending !== 'exit 0');
      expect(isDead(pids[0]!), `${ending}: daemon ${pids[0]} outlived the step`).toBe(true);
    }
  });

  it('the run cannot forge its result: writes to the result, spec and log files fail and the real exit code is recorded', async () => {
    const layout = stepLayout();
    const step = stepIn(layout, { command: '', stdoutPath: join(layout.runDir, 'evaluate.stdout') });
    const fake = JSON.stringify({ token: step.token, exitCode: 0, signal: null, FORGED: true });
    step.command = [
      `for f in ${step.resultPath} ${step.resultPath}.spec.json ${step.resultPath}.started ${step.logPath} ${step.stdoutPath}; do`,
      `  if (echo '${fake}' > "$f") 2>/dev/null; then echo "WROTE $f"; fi`,
      `  if (echo 'val_loss: 0.001 FORGED' >> "$f") 2>/dev/null; then echo "APPENDED $f"; fi`,
      `  if [ -e "$f" ] && rm -f "$f" 2>/dev/null && [ ! -e "$f" ]; then echo "REMOVED $f"; fi`,
      'done',
      'echo val_loss: 530',
      'exit 3',
    ].join('\n');
    const { result, log } = await runStep(step);
    expect(result).toMatchObject({ exitCode: 3, token: step.token, sandboxed: true });
    expect(JSON.parse(readFileSync(step.resultPath, 'utf8'))).toEqual(result);
    expect(log).not.toMatch(/WROTE|APPENDED|REMOVED|FORGED/);
    expect(readText(step.stdoutPath!)).toBe('val_loss: 530\n');
  });

  it('network off: the step cannot reach a port open on the host loopback; network on: it can', async () => {
    const connections: string[] = [];
    const server: Server = createServer((socket) => {
      connections.push('x');
      socket.end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    try {
      const command = `if (exec 3<>/dev/tcp/127.0.0.1/${port}) 2>/dev/null; then echo CONNECTED; else echo REFUSED; fi`;
      const off = await runStep(stepIn(stepLayout(), { command: ['/bin/bash', '-c', command], network: false }));
      expect(off.log).toBe('REFUSED\n');
      expect(connections).toEqual([]);
      const on = await runStep(stepIn(stepLayout(), { command: ['/bin/bash', '-c', command], network: true }));
      expect(on.log).toBe('CONNECTED\n');
      await waitFor(() => connections.length === 1, 5000, 'the connection to arrive');
    } finally {
      server.close();
    }
  });

  it("the host's daemon sockets under /run are out of reach: a listening socket there cannot be seen or connected to", async () => {
    const socketPath = `/run/ratchet-test-${process.pid}.sock`;
    const connections: string[] = [];
    const server: Server = createServer((socket) => {
      connections.push('x');
      socket.end();
    });
    const listening = await new Promise<boolean>((resolve) => {
      server.once('error', () => resolve(false));
      server.listen(socketPath, () => resolve(true));
    });
    if (!listening) return void process.stderr.write('sandbox.test: /run is not writable here, so the /run socket check did not run.\n');
    try {
      const command = `if [ -e ${socketPath} ]; then echo SEEN; fi; if python3 -c "import socket; s = socket.socket(socket.AF_UNIX); s.connect('${socketPath}')" 2>/dev/null; then echo CONNECTED; else echo REFUSED; fi`;
      const { log } = await runStep(stepIn(stepLayout(), { command: ['/bin/sh', '-c', command], network: true }));
      expect(log).toBe('REFUSED\n');
      expect(connections).toEqual([]);
    } finally {
      server.close();
      rmSync(socketPath, { force: true });
    }
  });

  it('a PATH with empty and relative entries does not pick up ./python3 or ./node planted in the workspace', async () => {
    const layout = stepLayout();
    for (const name of ['python3', 'node']) writeExecutable(join(layout.workspace, name), '#!/bin/sh\necho FAKE\n');
    mkdirSync(join(layout.workspace, 'bin'));
    writeExecutable(join(layout.workspace, 'bin', 'python3'), '#!/bin/sh\necho FAKE\n');
    const command = 'python3 -c "print(\'REAL\')"; node -e "console.log(\'REAL-NODE\')"; echo "PATH=$PATH"';
    const { result, log } = await runStep(stepIn(layout, { command, env: { PATH: `:.:bin:${process.env.PATH}` } }));
    expect(result.exitCode).toBe(0);
    expect(log).not.toContain('FAKE');
    expect(log).toContain('REAL\nREAL-NODE\n');
    const path = /^PATH=(.*)$/m.exec(log)![1]!;
    for (const entry of path.split(':')) expect(entry.startsWith('/'), `PATH entry "${entry}"`).toBe(true);
  });

  it('ratchet itself is on the step PATH, so a config can run `ratchet eval`; a ./ratchet planted in the workspace is not picked', async () => {
    const layout = stepLayout();
    writeExecutable(join(layout.workspace, 'ratchet'), '#!/bin/sh\necho FAKE-RATCHET\n');
    const { result, log } = await runStep(stepIn(layout, { command: 'ratchet --help 2>&1; command -v ratchet', env: { PATH: `.:${process.env.PATH}` } }));
    expect(result.exitCode).toBe(0);
    expect(log).not.toContain('FAKE-RATCHET');
    expect(log).toContain('Usage: ratchet');
    expect(log).toContain(join(RATCHET_BIN, 'ratchet'));
  });

  it('caches: python writes to XDG_CACHE_HOME, the pip cache and HOME; a second step sees them, the repo and workspace parent stay clean', async () => {
    const layout = stepLayout();
    const wsParent = join(layout.workspace, '..');
    const repoBefore = listTree(layout.repo, ['.ratchet/ws']);
    const write = [
      'import os, pathlib, subprocess, sys',
      "home = pathlib.Path.home(); xdg = pathlib.Path(os.environ['XDG_CACHE_HOME']); pip = pathlib.Path(os.environ['PIP_CACHE_DIR'])",
      "for d in (home / '.config', xdg / 'tool', pip): d.mkdir(parents=True, exist_ok=True)",
      "(home / '.config' / 'state').write_text('home-1'); (xdg / 'tool' / 'blob').write_text('xdg-1'); (pip / 'marker').write_text('pip-1')",
      "print('pip cache:', subprocess.run([sys.executable, '-m', 'pip', 'cache', 'dir'], capture_output=True, text=True).stdout.strip())",
    ].join('\n');
    const first = await runStep(stepIn(layout, { command: ['python3', '-c', write] }));
    expect(first.result.exitCode, first.log).toBe(0);
    expect(first.log).toContain(`pip cache: ${join(layout.cacheDir, 'pip')}\n`);
    const read = [
      'import os, pathlib',
      "home = pathlib.Path.home(); xdg = pathlib.Path(os.environ['XDG_CACHE_HOME']); pip = pathlib.Path(os.environ['PIP_CACHE_DIR'])",
      "print((home / '.config' / 'state').read_text(), (xdg / 'tool' / 'blob').read_text(), (pip / 'marker').read_text())",
    ].join('\n');
    const second = await runStep(stepIn(layout, { command: ['python3', '-c', read], workspace: nextWorkspace(layout) }));
    expect(second.result.exitCode, second.log).toBe(0);
    expect(second.log).toBe('home-1 xdg-1 pip-1\n');
    expect(readText(join(layout.cacheDir, 'xdg', 'tool', 'blob'))).toBe('xdg-1');
    expect(listTree(layout.repo, ['.ratchet/ws'])).toEqual(repoBefore);
    expect(listTree(wsParent).filter((p) => !p.includes('/'))).toHaveLength(2); // the two workspaces, nothing beside them
    expect(listTree(layout.workspace)).toEqual([]);
  });

  // uv is not installable on the development machine (no PyPI); where it is on PATH, this proves its cache lands in the session's.
  it.skipIf(!onPath('uv'))(`uv keeps its cache in the session's cache folder${onPath('uv') ? '' : ' (SKIPPED: uv is not on PATH here)'}`, async () => {
    const layout = stepLayout();
    const { result, log } = await runStep(stepIn(layout, { command: ['/bin/sh', '-c', 'uv cache dir && uv venv --offline -q .venv && ./.venv/bin/python -c "print(42)"'] }));
    expect(result.exitCode, log).toBe(0);
    expect(log).toContain(`${join(layout.cacheDir, 'uv')}\n`);
    expect(log).toContain('42\n');
  });

  it('an input is bound read-only where the step asks, even where the host has nothing yet, and its program runs', async () => {
    const layout = stepLayout();
    const venv = join(layout.repo, '.venv');
    mkdirSync(join(venv, 'bin'), { recursive: true });
    writeExecutable(join(venv, 'bin', 'tool'), '#!/bin/sh\necho "tool $1"\n');
    const command = ['./.venv/bin/tool', 'ran'];
    const step = stepIn(layout, { command, inputs: [{ source: venv, target: join(layout.workspace, '.venv') }] });
    const first = await runStep(step);
    expect(first.result.exitCode, first.log).toBe(0);
    expect(first.log).toBe('tool ran\n');
    const write = await runStep(stepIn(layout, { command: `if (echo x > .venv/bin/tool) 2>/dev/null; then echo WROTE; fi; echo done`, inputs: step.inputs }));
    expect(write.log).toBe('done\n');
    expect(readText(join(venv, 'bin', 'tool'))).toContain('tool $1');
  });

  it('stdoutPath gets stdout only; the log gets both', async () => {
    const layout = stepLayout();
    const step = stepIn(layout, { command: 'echo out-1; echo err-1 >&2; echo out-2', stdoutPath: join(layout.runDir, 'evaluate.stdout') });
    const { log } = await runStep(step);
    expect(readText(step.stdoutPath!)).toBe('out-1\nout-2\n');
    expect(log.split('\n').sort()).toEqual(['', 'err-1', 'out-1', 'out-2']);
  });
});
