// One step of a measurement (run or evaluate): its workspace, files, limits and isolation, built the same way by the loop and by verify.
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from './config.js';
import type { StepRequest } from './executor/executor.js';
import { readFigures, type Measured, type Phase } from './measure.js';
import { readMetricText } from './metric.js';
import type { Workspaces } from './workspace.js';

export interface StepPlace {
  workspaces: Workspaces;
  repo: string;
  /** Where the step's log, stdout and result go: outside the workspace and outside the sandbox. */
  dir: string;
  /** The run's cache folder; evaluate gets its own beside it. */
  cacheDir: string;
  hidden: string[];
  sandboxed: boolean;
}

/**
 * Prepares one step: a fresh workspace of `commit` (for evaluate, with the run's declared outputs
 * copied in read-only), the declared inputs, and clean log and result paths. Returns what to start.
 */
export async function prepareStep(
  place: StepPlace,
  input: { id: number; phase: Phase; commit: string; config: Config; token: string; env: Record<string, string>; gpuDevices: string[] },
): Promise<StepRequest> {
  const { config, phase, id } = input;
  const step = phase === 'run' ? config.run : config.evaluate!;
  mkdirSync(place.dir, { recursive: true });
  const logPath = join(place.dir, `${phase}.log`);
  const resultPath = join(place.dir, `${phase}.result.json`);
  const stdoutPath = join(place.dir, `${phase}.stdout`);
  // Earlier files at these paths (a restart, a replay) must never read as this step's output.
  for (const p of [logPath, resultPath, stdoutPath]) rmSync(p, { force: true });
  const workspace = await place.workspaces.create(id, phase, input.commit);
  if (phase === 'evaluate') await place.workspaces.copyOutputs(place.workspaces.pathOf(id, 'run'), workspace, config.run.outputs);
  return {
    token: input.token,
    command: step.command,
    workspace,
    env: { ...step.env, ...(phase === 'run' ? passedEnv(config.run.passEnv) : {}), ...input.env, RATCHET_PHASE: phase },
    budgetSeconds: step.budgetSeconds,
    graceSeconds: step.graceSeconds,
    logPath,
    ...(phase === 'evaluate' ? { stdoutPath } : {}),
    resultPath,
    maxLogBytes: Math.round(config.run.maxLogMegabytes * 1024 * 1024),
    inputs: place.workspaces.inputs(place.repo, workspace, config.run.inputs, place.sandboxed),
    network: phase === 'run' ? config.run.network : false,
    gpuDevices: input.gpuDevices,
    // Evaluate gets caches of its own: a run must not plant a compiled kernel or a module the evaluator would load.
    cacheDir: phase === 'run' ? place.cacheDir : `${place.cacheDir}-evaluate`,
    hidden: place.hidden,
  };
}

/** The figures of a measured run in `dir`: from evaluate's stdout when there is an evaluate step, else from the run's log. */
export function figuresIn(dir: string, config: Config): Measured | { failure: string } {
  const stdout = join(dir, 'evaluate.stdout');
  return readFigures(config, {
    run: readMetricText(join(dir, 'run.log')),
    evaluateStdout: config.evaluate ? (existsSync(stdout) ? readMetricText(stdout) : '') : null,
  });
}

/** The variables run.passEnv names, from the server's environment: the run's only way to a secret kept out of the config. */
function passedEnv(names: string[], server: NodeJS.ProcessEnv = process.env): Record<string, string> {
  return Object.fromEntries(names.flatMap((name) => (server[name] ? [[name, server[name]]] : [])));
}
