// The local executor: each step under its own detached supervisor on this machine, inside bubblewrap where it works.
import { mkdirSync, statSync } from 'node:fs';
import { RatchetError } from '../errors.js';
import { cancelRun, startRun, sweepRun, watchRunResult } from '../runner/runner.js';
import type { RunResult } from '../runner/run-spec.js';
import { CACHE_LOCATIONS, insideAny, stepEnv } from '../runner/step-env.js';
import { probeSandboxDetail, sandboxArgv } from '../sandbox.js';
import type { Executor, RunningStep, SandboxReport, StepRequest } from './executor.js';

export interface LocalExecutorOptions {
  mode: SandboxReport['mode'];
  /** How processes are followed besides the sandbox's PID namespace (and without one): see RunSpec.containment. */
  containment?: 'auto' | 'cgroup' | 'proc';
}

export class LocalExecutor implements Executor {
  constructor(private readonly opts: LocalExecutorOptions) {}

  async sandbox(): Promise<SandboxReport> {
    return probeSandboxDetail(this.opts.mode).report;
  }

  async start(step: StepRequest): Promise<RunningStep> {
    const probe = probeSandboxDetail(this.opts.mode);
    requireSandbox(probe.report);
    prepareCacheDir(step.cacheDir);
    if (probe.bwrap) refuseExposedHidden(step);
    const started = await startRun({
      command: step.command,
      cwd: step.workspace,
      env: stepEnv(step),
      exactEnv: true,
      budgetSeconds: step.budgetSeconds,
      graceSeconds: step.graceSeconds,
      logPath: step.logPath,
      ...(step.stdoutPath !== undefined ? { stdoutPath: step.stdoutPath } : {}),
      resultPath: step.resultPath,
      maxLogBytes: step.maxLogBytes,
      containment: this.opts.containment ?? 'auto',
      token: step.token,
      ...(probe.bwrap ? { sandbox: { argv: sandboxArgv(step, probe.bwrap) } } : {}),
    });
    return runningStep(step.token, started.supervisorPid, started.done);
  }

  reattach(ref: { token: string; supervisorPid: number; resultPath: string }): RunningStep {
    return runningStep(ref.token, ref.supervisorPid, watchRunResult(ref.resultPath, ref));
  }

  sweep(token: string): Promise<number> {
    return sweepRun(token);
  }
}

/** Throws the refusal of a "required" sandbox that does not work here, with the command that installs one. */
export function requireSandbox(report: SandboxReport): void {
  if (report.mode !== 'required' || report.kind !== 'none') return;
  const hint = report.install
    ? `Install it (\`${report.install}\`) and restart ratchet, or set "sandbox": "auto" in ratchet.json to run without one.`
    : 'Set "sandbox": "auto" in ratchet.json to run without one.';
  throw new RatchetError('sandbox_unavailable', `The sandbox is "required" but none works here: ${report.why}`, hint, { install: report.install });
}

function runningStep(token: string, supervisorPid: number, done: Promise<RunResult | null>): RunningStep {
  return { token, supervisorPid, done, cancel: () => cancelRun(supervisorPid, token) };
}

// HOME must exist for many tools; the rest are created by the tools that use them.
function prepareCacheDir(cacheDir: string): void {
  for (const dir of [CACHE_LOCATIONS.HOME!, CACHE_LOCATIONS.XDG_CACHE_HOME!]) mkdirSync(`${cacheDir}/${dir}`, { recursive: true });
}

// A bind of a folder that holds a hidden path would show it again, writable: refuse rather than leak the agent's tree.
function refuseExposedHidden(step: StepRequest): void {
  const shown = [step.workspace, step.cacheDir, ...step.inputs.map((i) => i.source)];
  for (const path of shown) {
    const exposed = step.hidden.find((hidden) => insideAny(hidden, [path]));
    if (exposed) {
      throw new RatchetError(
        'invalid_argument',
        `The step would expose ${exposed} in its sandbox: ${path} contains it.`,
        'Pass a workspace, cache folder and inputs that do not contain a hidden path (a folder inside the repo is fine).',
      );
    }
  }
  if (!statSync(step.workspace, { throwIfNoEntry: false })?.isDirectory()) {
    throw new RatchetError('invalid_argument', `The step's workspace does not exist: ${step.workspace}.`, 'Create the workspace before starting the step.');
  }
}
