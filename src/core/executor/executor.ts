// The Executor: where and how one step (a run or an evaluate) of an experiment executes. The loop sees only this.
import type { RunResult } from '../runner/run-spec.js';

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

export interface StepRequest {
  /** Unique id of this step: exported as RATCHET_RUN_TOKEN, used to sweep it after a crash. */
  token: string;
  /** A string runs via /bin/sh -c; an array is argv. */
  command: string | string[];
  /** The step's workspace: a fresh materialization of the commit it measures; its only writable place besides /tmp. */
  workspace: string;
  /** Extra environment (the config's env, GPU variables, RATCHET_*); merged over a sanitized base. */
  env: Record<string, string>;
  budgetSeconds: number;
  graceSeconds: number;
  /** Outside the workspace and outside the sandbox: stdout and stderr of the step are appended here by the supervisor. */
  logPath: string;
  /** When set, stdout alone is also written here (the trusted metric channel of evaluate). */
  stdoutPath?: string;
  /** Outside the workspace and the sandbox: where the supervisor records the result. */
  resultPath: string;
  maxLogBytes: number;
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
