// The OS sandbox of a step: whether bubblewrap works here (probed once), and the bwrap argv that builds one step's sandbox.
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import type { SandboxReport, StepRequest } from './executor/executor.js';
import { RATCHET_BIN } from './runner/step-env.js';

type Mode = SandboxReport['mode'];

/** What the probe found: the report for users, and the binary the executor launches. */
export interface SandboxProbe {
  report: SandboxReport;
  bwrap: string | null;
}

interface Finding {
  bwrap: string | null;
  problem: string | null;
  install: string | null;
}

const NVIDIA_CONTROL_NODES = ['/dev/nvidiactl', '/dev/nvidia-uvm', '/dev/nvidia-uvm-tools', '/dev/nvidia-modeset', '/dev/nvidia-caps'];
const PROBE_TIMEOUT_MS = 10_000;
const findings = new Map<string, Finding>();

/** What isolation is in force for this mode; the probe runs once per process (per PATH) and is cached. */
export function probeSandbox(mode: Mode, opts: { pathEnv?: string } = {}): SandboxReport {
  return probeSandboxDetail(mode, opts).report;
}

export function probeSandboxDetail(mode: Mode, opts: { pathEnv?: string } = {}): SandboxProbe {
  if (mode === 'off') {
    return { report: { kind: 'none', mode, why: 'sandbox is "off" in ratchet.json: steps run as plain child processes.', install: null }, bwrap: null };
  }
  const pathEnv = opts.pathEnv ?? process.env.PATH ?? '';
  let finding = findings.get(pathEnv);
  if (!finding) {
    finding = probe(pathEnv);
    findings.set(pathEnv, finding);
  }
  if (finding.problem === null) {
    const why = `bubblewrap (${finding.bwrap}) works here: each step runs with a read-only root, its own PID namespace and a private /tmp.`;
    return { report: { kind: 'bwrap', mode, why, install: null }, bwrap: finding.bwrap };
  }
  const consequence = mode === 'required' ? 'sandbox is "required", so steps will not start' : 'steps run without a sandbox';
  return { report: { kind: 'none', mode, why: `${finding.problem}; ${consequence}.`, install: finding.install }, bwrap: null };
}

/**
 * bwrap's argv up to and including `--`; the command follows. The environment is not on it: the supervisor starts bwrap
 * with exactly the step's environment (stepEnv), which bwrap hands on unchanged, like --clearenv plus --setenv for each.
 * Mount order matters: tmpfs over /tmp and the hidden paths first, then the workspace, the cache and the inputs, which
 * may live under them.
 */
const RUN_KEPT = ['/run/systemd/resolve', '/run/resolvconf', '/run/nvidia-persistenced'];

export function sandboxArgv(step: StepRequest, bwrap = 'bwrap'): string[] {
  const argv = [bwrap, '--ro-bind', '/', '/', '--dev', '/dev'];
  for (const node of deviceNodes(step.gpuDevices)) argv.push('--dev-bind', node, node);
  argv.push('--proc', '/proc', '--tmpfs', '/tmp');
  // /run holds the host's daemon sockets (docker.sock, dbus): connecting needs no write access, so it is hidden whole.
  // Name resolution and the NVIDIA persistence daemon, which steps may need, are shown again read-only where they exist.
  argv.push('--tmpfs', '/run');
  for (const keep of RUN_KEPT) argv.push('--ro-bind-try', keep, keep);
  const hiddenDirs: string[] = [];
  for (const path of step.hidden) {
    if (!existsSync(path)) continue;
    const real = realpathSync(path);
    // An empty tmpfs over a folder, the empty /dev/null over a file: either way nothing of it shows.
    if (statSync(real).isDirectory()) hiddenDirs.push(real);
    argv.push(...(hiddenDirs.includes(real) ? ['--tmpfs', real] : ['--ro-bind', '/dev/null', real]));
  }
  const workspace = realpathSync(step.workspace);
  const cacheDir = realpathSync(step.cacheDir);
  argv.push('--bind', workspace, workspace, '--bind', cacheDir, cacheDir);
  for (const input of step.inputs) argv.push('--ro-bind', realpathSync(input.source), underRealPath(input.target, step.workspace, workspace));
  // ratchet installed inside the repo (its node_modules) or under /tmp would be hidden with them: its package is shown again, read-only.
  const ratchetRoot = realpathSync(join(RATCHET_BIN, '..'));
  // Never when the package holds a hidden path (a repo inside ratchet's own folder): that would show the repo again.
  const holdsHidden = step.hidden.some((path) => existsSync(path) && realpathSync(path).startsWith(`${ratchetRoot}/`));
  if (!holdsHidden && ['/tmp', '/run', ...hiddenDirs].some((dir) => ratchetRoot.startsWith(`${dir}/`))) argv.push('--ro-bind', ratchetRoot, ratchetRoot);
  // Read-only once the mount points under them exist (the remount does not reach the binds below).
  for (const dir of hiddenDirs) argv.push('--remount-ro', dir);
  argv.push('--unshare-pid', '--unshare-ipc', '--unshare-uts');
  if (!step.network) argv.push('--unshare-net');
  // Root in the sandbox keeps its uid but no capability: it cannot remount, load modules, or undo the read-only root.
  argv.push('--die-with-parent', '--new-session', '--cap-drop', 'ALL', '--chdir', workspace, '--');
  return argv;
}

/** A target given under the workspace's path as passed, moved under its real path (where the workspace is bound). */
function underRealPath(target: string, given: string, real: string): string {
  return target.startsWith(`${given}/`) ? join(real, target.slice(given.length + 1)) : target;
}

/** The GPU nodes asked for and the NVIDIA control nodes, those that exist on this machine. */
function deviceNodes(gpuDevices: string[]): string[] {
  return [...new Set([...gpuDevices, ...NVIDIA_CONTROL_NODES])].filter((node) => existsSync(node));
}

function probe(pathEnv: string): Finding {
  if (process.platform === 'darwin') {
    return { bwrap: null, problem: 'macOS has no bubblewrap (it is Linux only)', install: 'not available on macOS' };
  }
  if (process.platform !== 'linux') return { bwrap: null, problem: `no sandbox is supported on ${process.platform}`, install: null };
  const bwrap = findOnPath('bwrap', pathEnv);
  if (!bwrap) return { bwrap: null, problem: 'bubblewrap (bwrap) is not installed', install: installCommand() };
  // The features a step uses, once: a read-only root must read as not writable.
  const trial = spawnSync(
    bwrap,
    [
      '--ro-bind', '/', '/', '--dev', '/dev', '--proc', '/proc', '--tmpfs', '/tmp',
      '--unshare-pid', '--unshare-ipc', '--unshare-uts', '--unshare-net', '--die-with-parent', '--new-session', '--cap-drop', 'ALL',
      '--', '/bin/sh', '-c', 'if [ -w / ]; then exit 3; fi',
    ],
    { encoding: 'utf8', timeout: PROBE_TIMEOUT_MS, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  if (trial.status === 0) return { bwrap, problem: null, install: null };
  const stderr = (trial.stderr ?? '').trim().split('\n').at(-1) ?? '';
  if (trial.status === 3) return { bwrap, problem: `bubblewrap at ${bwrap} ran, but its root file system was writable`, install: null };
  const detail = trial.error ? trial.error.message : stderr || `exit ${trial.status ?? trial.signal}`;
  const userns = userNamespaceFix();
  if (userns) return { bwrap, problem: `bubblewrap at ${bwrap} cannot create namespaces (${detail}): user namespaces are off`, install: userns };
  return { bwrap, problem: `bubblewrap at ${bwrap} failed a trial sandbox: ${detail}`, install: null };
}

function findOnPath(program: string, pathEnv: string): string | null {
  for (const dir of pathEnv.split(':')) {
    if (!isAbsolute(dir)) continue;
    const candidate = join(dir, program);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return null;
}

/** The package manager's command for this distribution, from /etc/os-release. */
function installCommand(): string {
  const sudo = process.getuid?.() === 0 ? '' : 'sudo ';
  let ids = '';
  try {
    const text = readFileSync('/etc/os-release', 'utf8');
    ids = [/^ID=(.*)$/m.exec(text)?.[1], /^ID_LIKE=(.*)$/m.exec(text)?.[1]].join(' ').replace(/"/g, '');
  } catch {
    // unknown distribution
  }
  const has = (...names: string[]): boolean => names.some((n) => ids.split(/\s+/).includes(n));
  if (has('fedora', 'rhel', 'centos', 'rocky', 'almalinux')) return `${sudo}dnf install bubblewrap`;
  if (has('arch')) return `${sudo}pacman -S bubblewrap`;
  if (has('alpine')) return `${sudo}apk add bubblewrap`;
  if (has('suse', 'opensuse')) return `${sudo}zypper install bubblewrap`;
  return `${sudo}apt-get install bubblewrap`;
}

/** The sysctl that turns unprivileged user namespaces on, when one of the known switches is off. */
function userNamespaceFix(): string | null {
  const read = (path: string): string | null => {
    try {
      return readFileSync(path, 'utf8').trim();
    } catch {
      return null;
    }
  };
  if (process.getuid?.() === 0) return null; // root needs no user namespace
  if (read('/proc/sys/kernel/apparmor_restrict_unprivileged_userns') === '1') return 'sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0';
  if (read('/proc/sys/kernel/unprivileged_userns_clone') === '0') return 'sudo sysctl -w kernel.unprivileged_userns_clone=1';
  if (read('/proc/sys/user/max_user_namespaces') === '0') return 'sudo sysctl -w user.max_user_namespaces=15000';
  return null;
}
