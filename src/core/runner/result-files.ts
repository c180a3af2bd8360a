// Reading what a supervisor left on disk (its result, its start record) and telling whether it still lives.
import { readFileSync } from 'node:fs';
import { carriesToken, isDead, readStat } from './process-tree.js';
import { RunResultSchema, RunStartedSchema } from './run-schema.js';
import { startedPathFor, type RunResult, type RunStarted } from './run-spec.js';

/** The result, or null while the run is still going (or its supervisor died without one: see isSupervisorAlive). */
export function readRunResult(resultPath: string): RunResult | null {
  const text = readIfExists(resultPath);
  return text === null ? null : RunResultSchema.parse(JSON.parse(text));
}

/** What the supervisor recorded on starting the child (its pid, containment, cgroups), or null. */
export function readRunStarted(resultPath: string): RunStarted | null {
  const text = readIfExists(startedPathFor(resultPath));
  return text === null ? null : RunStartedSchema.parse(JSON.parse(text));
}

/** True only if pid is still this run's supervisor: a reused pid carries neither the token nor the script. */
export function isSupervisorAlive(pid: number, token: string): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  const stat = readStat(pid);
  if (!stat || isDead(stat) || !carriesToken(pid, token)) return false;
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('supervise.js');
  } catch {
    return false;
  }
}

export function readIfExists(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}
