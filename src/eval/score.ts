// Turns agent runs into case-trial verdicts, and verdicts into the summary: pass_rate, cases_passed, errors, usage, held-out rate.
import { checkAssertions, type CheckContext } from './assertions.js';
import type { AgentRun } from './agent.js';
import { percent, type CaseLine, type EvalOutput } from './lines.js';
import type { EvalCase } from './suite.js';
import type { Split } from './trials.js';
import { sumUsage, type Usage } from './usage.js';

export interface TrialScore {
  line: CaseLine;
  heldOut: boolean;
  /** Assertions the case has: an error counts all of them as not passed. */
  assertionCount: number;
  usage?: Usage;
}

/** An error run scores as an error; an ok run is checked, and a broken judge makes it an error too. */
export async function scoreTrial(c: EvalCase, trial: number, run: AgentRun, ctx: Omit<CheckContext, 'caseId' | 'trial'>): Promise<TrialScore> {
  const base = { heldOut: c.heldOut, assertionCount: c.assertions.length, usage: run.usage };
  const error = (reason: string): TrialScore => ({ ...base, line: { case: c.id, trial, status: 'error', assertions: [], reason } });
  if (run.status === 'error') return error(run.reason ?? 'the agent failed');
  // Checked again here: a collected record comes from the run step, which scoring does not trust.
  if (run.output.trim() === '') return error('the agent printed nothing on stdout');
  const checked = await checkAssertions(c.assertions, run.output, { ...ctx, caseId: c.id, trial });
  if (!checked.ok) return error(checked.reason);
  const assertions = checked.results.map((r) => ({ name: r.name, status: r.pass ? ('pass' as const) : ('fail' as const) }));
  const status = assertions.every((a) => a.status === 'pass') ? 'pass' : 'fail';
  return { ...base, line: { case: c.id, trial, status, assertions } };
}

/**
 * With split `all`, held-out case-trials are scored apart (held_out_pass_rate) and not printed, so the lines the
 * loop optimizes never show them. errors and usage count every case-trial that ran.
 */
export function summarize(scores: TrialScore[], split: Split): EvalOutput {
  const primary = split === 'all' ? scores.filter((s) => !s.heldOut) : scores;
  const heldOut = split === 'all' ? scores.filter((s) => s.heldOut) : [];
  const usage = sumUsage(scores.map((s) => s.usage));
  return {
    cases: [...primary].sort(byCaseThenTrial).map((s) => s.line),
    summary: {
      pass_rate: passRate(primary),
      cases_passed: percent(primary.filter((s) => s.line.status === 'pass').length, primary.length),
      errors: scores.filter((s) => s.line.status === 'error').length,
      ...(usage.tokens !== undefined ? { tokens: usage.tokens } : {}),
      ...(usage.costUsd !== undefined ? { cost_usd: usage.costUsd } : {}),
      ...(heldOut.length ? { held_out_pass_rate: passRate(heldOut) } : {}),
    },
  };
}

/** Passed assertions over the assertions of every case-trial, errors included, so a crash cannot raise the rate. */
function passRate(scores: TrialScore[]): number {
  const passed = scores.reduce((n, s) => n + s.line.assertions.filter((a) => a.status === 'pass').length, 0);
  return percent(passed, scores.reduce((n, s) => n + s.assertionCount, 0));
}

function byCaseThenTrial(a: TrialScore, b: TrialScore): number {
  if (a.line.case !== b.line.case) return a.line.case < b.line.case ? -1 : 1;
  return a.line.trial - b.line.trial;
}
