// One supervised run, start to result: child in its own session (and cgroup), budget, log cap, cancel, sweep, result file.
import { spawn } from 'node:child_process';
import { closeSync, fstatSync, ftruncateSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { writeJsonAtomic } from './atomic-file.js';
import { cgroupDirs, cgroupMembers, createRunCgroup, procsFiles, readMemoryBytes, removeCgroups, signalCgroup, type RunCgroup } from './cgroup.js';
import { commandArgv, joinCgroupArgv, spawnProblem } from './child-command.js';
import { signalGroup } from './process-tree.js';
import { RunSpecSchema, startedPathFor, TOKEN_ENV, type Containment, type RunResult, type RunSpec, type RunStarted } from './run-spec.js';
import { ProcessTracker } from './tracker.js';

const TICK_MS = 100;
// A SIGKILLed GPU process can take many seconds to release the device and die; past this the result is written anyway.
const KILL_WAIT_MS = 60_000;
const RSS_METHOD = `proc VmRSS sum sampled every ${TICK_MS}ms`;

type StopReason = 'timeout' | 'cancel' | 'log';

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export function readSpec(specPath: string): RunSpec {
  return RunSpecSchema.parse(JSON.parse(readFileSync(specPath, 'utf8')));
}

export class Supervisor {
  private readonly env: Record<string, string>;
  private readonly argv: string[];
  private readonly tracker: ProcessTracker;
  private cgroup: RunCgroup | null = null;
  private childPid: number | null = null;
  private exit: Exit | null = null;
  private startMs = Date.now();
  private endMs: number | null = null;
  private stopReason: StopReason | null = null;
  private termAt: number | null = null;
  private killAt: number | null = null;
  private swept = 0;
  private logFd: number | null = null;
  private logBase = 0;
  private logExceeded = false;
  private peakRss: number | null = null;
  private peakCgroupSample: number | null = null;
  private wake: (() => void) | null = null;

  constructor(private readonly spec: RunSpec) {
    this.env = childEnv(spec);
    this.argv = commandArgv(spec.command);
    this.tracker = new ProcessTracker(spec.token, new Set([process.pid]), () => cgroupMembers(this.dirs()));
  }

  async run(): Promise<RunResult> {
    try {
      const refusal = this.contain() ?? spawnProblem(this.argv, this.spec.cwd, this.env);
      if (refusal !== null || this.stopReason === 'cancel') return await this.conclude(refusal);
      const spawnError = await this.spawnChild();
      if (spawnError !== null) return await this.conclude(spawnError);
      this.announceStart();
      await this.superviseMain();
      await this.sweepLeftovers();
      return await this.conclude(null);
    } catch (err) {
      this.signalTree('SIGKILL');
      return await this.conclude(`supervisor failed: ${(err as Error).stack ?? String(err)}`);
    }
  }

  /** Cancel (SIGTERM to the supervisor): stops a running child; once it has exited, the sweep just goes on. */
  cancel(): void {
    if (this.exit === null && this.stopReason === null) this.stopReason = 'cancel';
    this.wake?.();
  }

  /** Last resort on an unexpected exception: kill everything and record what is known, synchronously. */
  abortSync(err: unknown): void {
    this.signalTree('SIGKILL');
    this.endMs ??= Date.now();
    const result = this.result(`supervisor failed: ${(err as Error)?.stack ?? String(err)}`, { bytes: null, method: 'none: supervisor failed' });
    writeJsonAtomic(this.spec.resultPath, result);
  }

  // Returns why the run cannot start, or null. Without a cgroup the run falls back to /proc tracking unless one was required.
  private contain(): string | null {
    if (this.spec.containment === 'proc') return null;
    const outcome = createRunCgroup(this.spec.token);
    if (outcome.ok) this.cgroup = outcome.cgroup;
    else if (this.spec.containment === 'cgroup') return `cgroup containment unavailable: ${outcome.reason}`;
    return null;
  }

  private async spawnChild(): Promise<string | null> {
    mkdirSync(dirname(this.spec.logPath), { recursive: true });
    this.logFd = openSync(this.spec.logPath, 'a');
    this.logBase = fstatSync(this.logFd).size;
    const argv = this.cgroup ? joinCgroupArgv(procsFiles(this.cgroup), this.argv) : this.argv;
    const [file = '', ...args] = argv;
    this.startMs = Date.now();
    // detached: a new session and process group led by the child, so nothing reaches it via the server's terminal.
    const child = spawn(file, args, { cwd: this.spec.cwd, env: this.env, stdio: ['ignore', this.logFd, this.logFd], detached: true });
    child.once('exit', (code, signal) => {
      this.exit = { code, signal };
      this.endMs = Date.now();
      this.wake?.();
    });
    const failure = await new Promise<Error | null>((resolve) => {
      child.once('spawn', () => resolve(null));
      child.once('error', resolve);
    });
    child.on('error', () => {}); // later errors (none expected: we never call child.kill) must not crash the supervisor
    if (failure || child.pid === undefined) return failure?.message ?? 'spawn failed';
    this.childPid = child.pid;
    this.tracker.adoptRoot(child.pid);
    return null;
  }

  private announceStart(): void {
    const started: RunStarted = {
      token: this.spec.token,
      supervisorPid: process.pid,
      childPid: this.childPid ?? 0,
      startedAt: new Date(this.startMs).toISOString(),
      containment: this.containment(),
      cgroupDirs: this.dirs(),
    };
    writeJsonAtomic(startedPathFor(this.spec.resultPath), started);
  }

  private async superviseMain(): Promise<void> {
    const budgetAt = this.startMs + this.spec.budgetSeconds * 1000;
    while (this.exit === null && !this.killGivenUp()) {
      this.observe();
      if (this.stopReason === null && Date.now() >= budgetAt) this.stopReason = 'timeout';
      this.escalate(this.stopReason !== null);
      await this.nap();
    }
    this.endMs ??= Date.now();
  }

  // "No process may outlive the run": whatever is left once the main process is gone gets TERM, then KILL after grace.
  private async sweepLeftovers(): Promise<void> {
    this.observe();
    this.swept = this.tracker.live().length;
    while (this.anyAlive() && !this.killGivenUp()) {
      this.escalate(true);
      await this.nap();
      this.observe();
    }
  }

  private observe(): void {
    this.tracker.scan();
    const rss = this.tracker.rssBytes();
    if (rss !== null) this.peakRss = Math.max(this.peakRss ?? 0, rss);
    const memory = this.cgroup?.memory;
    if (memory?.sampled) {
      const current = readMemoryBytes(memory);
      if (current !== null) this.peakCgroupSample = Math.max(this.peakCgroupSample ?? 0, current);
    }
    this.capLog();
  }

  // Bytes past the cap are cut off at every look, so a flood (or a daemon still writing during grace) cannot fill the disk.
  private capLog(): void {
    if (this.logFd === null) return;
    const cap = this.logBase + this.spec.maxLogBytes;
    if (fstatSync(this.logFd).size <= cap) return;
    ftruncateSync(this.logFd, cap);
    this.logExceeded = true;
    if (this.exit === null && this.stopReason === null) this.stopReason = 'log';
  }

  private escalate(stopping: boolean): void {
    if (!stopping) return;
    const now = Date.now();
    if (this.termAt === null) {
      this.signalTree('SIGTERM');
      this.termAt = now;
    }
    if (this.killAt === null && now >= this.termAt + this.spec.graceSeconds * 1000) this.killAt = now;
    // Repeated each tick: a process forked between two sweeps is caught by the next.
    if (this.killAt !== null) this.signalTree('SIGKILL');
  }

  // TERM reaches each process once (some programs read a second TERM as "quit without cleanup"); KILL goes every way there is.
  private signalTree(signal: NodeJS.Signals): void {
    const root = this.childPid;
    const live = this.tracker.live();
    // After the main process is reaped its pid is free again, so the group is signalled only while a member is seen alive.
    const groupAlive = root !== null && (this.exit === null || live.some((p) => p.pgid === root));
    if (root !== null && groupAlive) signalGroup(root, signal);
    if (signal === 'SIGKILL') {
      signalCgroup(this.dirs(), signal);
      this.tracker.signalAll(signal);
      return;
    }
    for (const p of live) {
      if (groupAlive && p.pgid === root) continue;
      try {
        process.kill(p.pid, signal);
      } catch {
        // already gone
      }
    }
  }

  private anyAlive(): boolean {
    return this.tracker.live().length > 0 || cgroupMembers(this.dirs()).length > 0;
  }

  private killGivenUp(): boolean {
    return this.killAt !== null && Date.now() - this.killAt > KILL_WAIT_MS;
  }

  private nap(): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.wake = null;
        resolve();
      };
      const timer = setTimeout(done, TICK_MS);
      this.wake = done;
    });
  }

  private async conclude(spawnError: string | null): Promise<RunResult> {
    this.endMs ??= Date.now();
    if (this.logFd !== null) {
      this.capLog();
      if (this.logExceeded) {
        writeSync(this.logFd, `\n[ratchet] output exceeded maxLogBytes (${this.spec.maxLogBytes} bytes): the run was stopped and the rest discarded\n`);
      }
      closeSync(this.logFd);
      this.logFd = null;
    }
    const memory = this.peakMemory();
    if (this.cgroup) await removeCgroups(this.dirs());
    const result = this.result(spawnError, memory);
    writeJsonAtomic(this.spec.resultPath, result);
    return result;
  }

  // Read before the cgroup is removed: its peak counter goes with it.
  private peakMemory(): { bytes: number | null; method: string } {
    if (this.childPid === null) return { bytes: null, method: 'none: the command did not start' };
    const memory = this.cgroup?.memory;
    if (memory) {
      const bytes = memory.sampled ? this.peakCgroupSample : readMemoryBytes(memory);
      if (bytes !== null) return { bytes, method: memory.method };
    }
    return { bytes: this.peakRss, method: RSS_METHOD };
  }

  private result(spawnError: string | null, memory: { bytes: number | null; method: string }): RunResult {
    const endMs = this.endMs ?? Date.now();
    return {
      token: this.spec.token,
      exitCode: this.exit?.code ?? null,
      signal: this.exit?.signal ?? null,
      timedOut: this.stopReason === 'timeout',
      cancelled: this.stopReason === 'cancel',
      logLimitExceeded: this.logExceeded,
      startedAt: new Date(this.startMs).toISOString(),
      endedAt: new Date(endMs).toISOString(),
      durationMs: Math.max(0, endMs - this.startMs),
      peakMemoryBytes: memory.bytes,
      memoryMethod: memory.method,
      containment: this.containment(),
      sweptProcesses: this.swept,
      spawnError,
      supervisorPid: process.pid,
      childPid: this.childPid,
    };
  }

  private containment(): Containment {
    return this.cgroup?.containment ?? 'proc';
  }

  private dirs(): string[] {
    return this.cgroup ? cgroupDirs(this.cgroup) : [];
  }
}

function childEnv(spec: RunSpec): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) if (value !== undefined) env[key] = value;
  return { ...env, ...spec.env, [TOKEN_ENV]: spec.token };
}
