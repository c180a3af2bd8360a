// Measuring, pure: what a finished step's result means, and which figures its output holds.
import type { Config } from './config.js';
import { checkConstraints } from './decision.js';
import type { FinalState } from './ledger.js';
import { parseCases, type CaseTrial } from './cases.js';
import { parseMetrics } from './metric.js';
import type { RunResult } from './runner/run-spec.js';
import type { ConstraintCheck } from './views.js';

export type Phase = 'run' | 'evaluate';

/** Why a finished step failed, or null when it exited cleanly within its budget. */
export function judge(result: RunResult, phase: Phase, config: Config): { state: FinalState; reason: string } | null {
  const what = phase === 'run' ? 'run' : 'evaluate command';
  const budget = phase === 'run' ? config.run.budgetSeconds : config.evaluate!.budgetSeconds;
  if (result.cancelled) return { state: 'cancelled', reason: 'cancelled by the agent' };
  if (result.timedOut) return { state: 'timed_out', reason: `the ${what} exceeded its ${budget}s budget and its process tree was killed` };
  if (result.logLimitExceeded) return { state: 'crashed', reason: `the ${what} flooded its log past ${config.run.maxLogMegabytes} MB and was stopped` };
  if (result.spawnError) return { state: 'crashed', reason: `the ${what} could not start: ${result.spawnError}` };
  if (result.exitCode !== 0) {
    const how = result.signal ? `was killed by ${result.signal}` : `exited with code ${result.exitCode}`;
    return { state: 'crashed', reason: `the ${what} ${how}` };
  }
  return null;
}

export interface Measured {
  metric: number;
  secondary: Record<string, number>;
  /** Which step each secondary figure came from: evaluate's are trusted, the run's are its own claim. */
  sources: Record<string, 'run' | 'evaluate'>;
  constraintChecks: ConstraintCheck[];
  /** How often the metric line appeared; more than once without an evaluate step is flagged. */
  metricLines: number;
  /** `case`/`assert` lines from the same output as the metric, for the paired test; null when there were none. */
  cases: CaseTrial[] | null;
}

/**
 * The figures of one measured run. With an evaluate step the primary metric comes only from
 * evaluate's standard output (the run cannot write it); without one, from the run's own log.
 */
export function readFigures(config: Config, texts: { run: string; evaluateStdout: string | null }): Measured | { failure: string } {
  const evaluated = texts.evaluateStdout !== null;
  const extra = config.metric.constraints.map((c) => c.metric).filter((m) => m !== config.metric.name);
  const spec = { name: config.metric.name, pattern: config.metric.pattern, secondary: [...new Set([...config.metric.secondary, ...extra])] };
  const trusted = evaluated ? texts.evaluateStdout! : texts.run;
  const primary = parseMetrics(trusted, spec);
  const fromRun = evaluated ? parseMetrics(texts.run, { ...spec, name: '\0', pattern: undefined }) : primary;
  if (primary.value === null) {
    const where = evaluated ? 'the evaluate command' : 'the run';
    return {
      failure: primary.line
        ? `${where}'s last ${config.metric.name} report is not a finite number: "${primary.line.trim().slice(0, 200)}"`
        : `${where} finished but printed no "${config.metric.name}: <number>" line (or METRIC ${config.metric.name}=<number>)${evaluated ? ' on its standard output' : ''}; read_log shows what it printed`,
    };
  }
  const secondary: Record<string, number> = { ...fromRun.secondary, ...primary.secondary };
  const sources: Record<string, 'run' | 'evaluate'> = {};
  for (const name of Object.keys(secondary)) sources[name] = evaluated && name in primary.secondary ? 'evaluate' : 'run';
  return {
    metric: primary.value,
    secondary,
    sources,
    constraintChecks: checkConstraints(config, primary.value, secondary),
    metricLines: primary.count ?? 1,
    cases: parseCases(trusted),
  };
}
