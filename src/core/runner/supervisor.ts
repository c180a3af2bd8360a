// The supervisor proper: starts the child (in its sandbox, its cgroup), enforces budget and grace, sweeps leftovers, writes the result.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { writeJsonAtomic } from './atomic-file.js';
import { announce } from './channel.js';
import { cgroupDirs, cgroupMembers, createRunCgroup, procsFiles, readMemoryBytes, removeCgroups, signalCgroup, type RunCgroup } from './cgroup.js';
import { ChildOutput } from './child-output.js';
import { commandArgv, cwdProblem, joinCgroupArgv, sandboxExit, spawnProblem } from './child-command.js';
import { signalGroup, type ProcStat } from './process-tree.js';
import { isValidToken, startedPathFor, TOKEN_ENV, type Containment, type RunResult, type RunSpec, type RunStarted } from './run-spec.js';
import { ProcessTracker } from './tracker.js';

const TICK_MS = 100;
const SWEEP_FIRST_LOOK_MS = 10;
// A SIGKILLed GPU process can take many seconds to release the device and die; past this the result is written anyway.
const KILL_WAIT_MS = 60_000;
// Once every process is dead the stdout pipe closes at once; this only bounds a writer stuck in the kernel.
const DRAIN_MS = 2_000;
const RSS_METHOD = `proc VmRSS sum sampled every ${TICK_MS}ms`;

type StopReason = 'timeout' | 'cancel' | 'log';

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** The spec as the server wrote it; it was validated there (run-schema.ts), so only the token is checked again. */
export function readSpec(specPath: string): RunSpec {
  const spec = JSON.parse(readFileSync(specPath, 'utf8')) as RunSpec;
  if (typeof spec?.token !== 'string' || !isValidToken(spec.token)) throw new Error('the spec has no valid token');
  return spec;
}

export class Supervisor {
  private readonly env: Record<string, string>;
  /** The command as the user wrote it; inside the sandbox when there is one. */
  private readonly command: string[];
  private readonly tracker: ProcessTracker;
  private readonly output: ChildOutput;
  private cgroup: RunCgroup | null = null;
  private childPid: number | null = null;
  private exit: Exit | null = null;
  private startMs = Date.now();
  private endMs: number | null = null;
  private stopReason: StopReason | null = null;
  private termAt: number | null = null;
  private killAt: number | null = null;
  private swept = 0;
  private peakRss: number | null = null;
  private peakCgroupSample: number | null = null;
  // Sandbox only: the command's pid (host view) and how many orphans of the step were alive at the last look.
  private commandPid: number | null = null;
  private othersInside = 0;
  private wake: (() => void) | null = null;

  constructor(private readonly spec: RunSpec) {
    this.env = childEnv(spec);
    this.command = commandArgv(spec.command);
    this.output = new ChildOutput(spec.logPath, spec.stdoutPath, spec.maxLogBytes);
    this.tracker = new ProcessTracker(spec.token, new Set([process.pid]), () => cgroupMembers(this.dirs()));
  }

  async run(): Promise<RunResult> {
    try {
      const refusal = this.contain() ?? this.launcherProblem() ?? this.commandProblem();
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
    announce({ type: 'done', result });
  }

  // Returns why the run cannot start, or null. Without a cgroup the run falls back to /proc tracking unless one was required.
  private contain(): string | null {
    if (this.spec.containment === 'proc') return null;
    const outcome = createRunCgroup(this.spec.token);
    if (outcome.ok) this.cgroup = outcome.cgroup;
    else if (this.spec.containment === 'cgroup') return `cgroup containment unavailable: ${outcome.reason}`;
    return null;
  }

  private commandProblem(): string | null {
    return this.spec.sandbox ? cwdProblem(this.spec.cwd) : spawnProblem(this.command, this.spec.cwd, this.env);
  }

  private launcherProblem(): string | null {
    const launcher = this.spec.sandbox?.argv[0];
    if (launcher === undefined || spawnProblem([launcher], '/', this.env) === null) return null;
    return `the sandbox cannot start: ${launcher} is missing or not executable`;
  }

  private async spawnChild(): Promise<string | null> {
    this.output.open();
    const launch = this.spec.sandbox ? [...this.spec.sandbox.argv, ...this.command] : this.command;
    const [file = '', ...args] = this.cgroup ? joinCgroupArgv(procsFiles(this.cgroup), launch) : launch;
    this.startMs = Date.now();
    // detached: a new session and process group led by the child, so nothing reaches it via the server's terminal.
    const child = spawn(file, args, { cwd: this.spec.cwd, env: this.env, stdio: this.output.stdio(), detached: true });
    this.output.attach(child);
    child.once('exit', (code, signal) => {
      this.exit = this.spec.sandbox ? sandboxExit(code, signal) : { code, signal };
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
      sandboxed: this.spec.sandbox !== undefined,
      cgroupDirs: this.dirs(),
    };
    // For readers after a restart only; the server that started us hears it on the pipe, so no fsync.
    writeJsonAtomic(startedPathFor(this.spec.resultPath), started, { durable: false });
    announce({ type: 'started', started });
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
  // In a sandbox the kernel has already killed the rest with the namespace; the count is the orphans seen at the last look.
  private async sweepLeftovers(): Promise<void> {
    this.observe();
    this.swept = this.spec.sandbox ? this.othersInside : this.tracker.live().length;
    // Leftovers are usually gone within milliseconds (a namespace's reaper, a process being reaped): look again soon,
    // then at the usual pace.
    for (let looks = 0; this.anyAlive() && !this.killGivenUp(); looks++) {
      this.escalate(true);
      await this.nap(looks < 10 ? SWEEP_FIRST_LOOK_MS : TICK_MS);
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
    if (this.spec.sandbox && this.exit === null) this.countInside();
    if (this.output.cap() && this.exit === null && this.stopReason === null) this.stopReason = 'log';
  }

  // The sandbox's two bwrap processes are the child and its only child, the namespace's init; the command is init's first
  // child. Any other process under init has outlived its parent: a leftover the namespace's end will kill.
  private countInside(): void {
    const inits = new Set(this.tracker.live().filter((p) => p.ppid === this.childPid).map((p) => p.pid));
    const orphans = this.insideSandbox().filter((p) => inits.has(p.ppid)).sort((a, b) => Number(a.startTime) - Number(b.startTime));
    this.commandPid ??= orphans[0]?.pid ?? null;
    this.othersInside = orphans.filter((p) => p.pid !== this.commandPid).length;
  }

  private insideSandbox(): ProcStat[] {
    const root = this.childPid;
    return this.tracker.live().filter((p) => p.pid !== root && p.ppid !== root);
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
  // In a sandbox TERM skips bwrap itself: its death would SIGKILL the namespace and cut the command's grace short.
  private signalTree(signal: NodeJS.Signals): void {
    const root = this.childPid;
    const live = this.tracker.live();
    // After the main process is reaped its pid is free again, so the group is signalled only while a member is seen alive.
    const groupAlive = root !== null && (this.exit === null || live.some((p) => p.pgid === root));
    if (signal === 'SIGKILL') {
      if (root !== null && groupAlive) signalGroup(root, signal);
      signalCgroup(this.dirs(), signal);
      this.tracker.signalAll(signal);
      return;
    }
    if (this.spec.sandbox) return void signalEach(this.insideSandbox(), signal);
    if (root !== null && groupAlive) signalGroup(root, signal);
    signalEach(live.filter((p) => !(groupAlive && p.pgid === root)), signal);
  }

  private anyAlive(): boolean {
    return this.tracker.live().length > 0 || cgroupMembers(this.dirs()).length > 0;
  }

  private killGivenUp(): boolean {
    return this.killAt !== null && Date.now() - this.killAt > KILL_WAIT_MS;
  }

  private nap(ms = TICK_MS): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.wake = null;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wake = done;
    });
  }

  private async conclude(spawnError: string | null): Promise<RunResult> {
    this.endMs ??= Date.now();
    if (this.childPid !== null) await this.output.drain(DRAIN_MS);
    this.output.close();
    const memory = this.peakMemory();
    if (this.cgroup) await removeCgroups(this.dirs());
    const result = this.result(spawnError, memory);
    // The file first, durably: a server that hears "done" and records it must find the same result after a crash.
    writeJsonAtomic(this.spec.resultPath, result);
    announce({ type: 'done', result });
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
      logLimitExceeded: this.output.exceeded,
      startedAt: new Date(this.startMs).toISOString(),
      endedAt: new Date(endMs).toISOString(),
      durationMs: Math.max(0, endMs - this.startMs),
      peakMemoryBytes: memory.bytes,
      memoryMethod: memory.method,
      containment: this.containment(),
      sandboxed: this.spec.sandbox !== undefined,
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

function signalEach(procs: ProcStat[], signal: NodeJS.Signals): void {
  for (const p of procs) {
    try {
      process.kill(p.pid, signal);
    } catch {
      // already gone
    }
  }
}

function childEnv(spec: RunSpec): Record<string, string> {
  const env: Record<string, string> = {};
  if (!spec.exactEnv) for (const [key, value] of Object.entries(process.env)) if (value !== undefined) env[key] = value;
  return { ...env, ...spec.env, [TOKEN_ENV]: spec.token };
}
