// The Executor: where and how one step (a run or an evaluate) of an experiment executes. The loop sees only this.
import type { RunResult, RunSpec } from '../runner/run-spec.js';

/** What is in force for isolation, said once per session by start_session and status. */
export interface SandboxReport {
  /** 'bwrap' when each step runs in a bubblewrap sandbox; 'none' when steps run as plain child processes. */
  kind: 'bwrap' | 'none';
  /** The config's wish: auto (use one where it works), required (refuse without), off. */
  mode: 'auto' | 'required' | 'off';
  /** Why this kind is in force, in one sentence a user can act on. */
  why: string;
  /** The command that installs a sandbox, when none works here. */
  install: string | null;
}

/** A read-only input (data folder, virtual environment, model cache) bound into the step at `target`. */
export interface StepInput {
  /** Absolute path on the host. */
  source: string;
  /** Absolute path inside the step (usually the same relative place inside the workspace). */
  target: string;
}

/** A step: the supervised command's own fields (see RunSpec) plus where and how isolated it runs. */
export interface StepRequest extends Pick<RunSpec, 'token' | 'command' | 'env' | 'budgetSeconds' | 'graceSeconds' | 'logPath' | 'stdoutPath' | 'resultPath' | 'maxLogBytes'> {
  /** The step's workspace: a fresh materialization of the commit it measures; its only writable place besides /tmp. */
  workspace: string;
  inputs: StepInput[];
  /** Network access for the step (evaluate never has it). */
  network: boolean;
  /** GPU device nodes to pass through, e.g. /dev/nvidia0; the control nodes are added by the executor. */
  gpuDevices: string[];
  /** Persistent, writable cache folder for tools that cache outside the repo (HOME, XDG_CACHE_HOME, pip, uv, torch, HF). */
  cacheDir: string;
  /** Host paths the step must not see at all (the agent's tree with .git, ratchet's state). */
  hidden: string[];
}

/** A step that has been started; `done` settles when its supervisor has written the result (null: it died without one). */
export interface RunningStep {
  token: string;
  supervisorPid: number;
  done: Promise<RunResult | null>;
  /** Asks the supervisor to stop the step; false when it is not running. */
  cancel(): boolean;
}

export interface Executor {
  /** What isolation this executor gives; probed once and cached. */
  sandbox(): Promise<SandboxReport>;
  start(step: StepRequest): Promise<RunningStep>;
  /** After a restart: follow a step whose supervisor may still live. */
  reattach(ref: { token: string; supervisorPid: number; resultPath: string }): RunningStep;
  /** Kills whatever is left of a step whose supervisor died; returns how many processes it killed. */
  sweep(token: string): Promise<number>;
}
