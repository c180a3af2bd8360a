// Checks one case-trial's output (and working dir) against the case's assertions: each passes or fails; a broken judge is an error.
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { schemaViolation } from './json-schema.js';
import { failureReason, runShell } from './process.js';
import type { Assertion } from './suite.js';

export interface AssertionResult {
  name: string;
  pass: boolean;
  /** Why it failed, for --json and stderr; never part of the lines. */
  detail?: string;
}

export interface CheckContext {
  caseId: string;
  trial: number;
  /** The agent's working dir (or its collected copy): fileExists and command look here. */
  workDir: string;
  /** A private dir for the output file handed to commands. */
  scratch: string;
  suiteDir: string;
  judge?: string;
  timeoutSeconds: number;
}

export type CheckOutcome = { ok: true; results: AssertionResult[] } | { ok: false; reason: string };

/** Runs the assertions in order; a harness failure (the judge) ends the check as an error. */
export async function checkAssertions(assertions: Assertion[], output: string, ctx: CheckContext): Promise<CheckOutcome> {
  const results: AssertionResult[] = [];
  for (const a of assertions) {
    const verdict = await check(a, output, ctx);
    if ('error' in verdict) return { ok: false, reason: `assertion ${a.name}: ${verdict.error}` };
    results.push({ name: a.name, ...verdict });
  }
  return { ok: true, results };
}

type Verdict = { pass: boolean; detail?: string } | { error: string };

async function check(a: Assertion, output: string, ctx: CheckContext): Promise<Verdict> {
  switch (a.kind) {
    case 'contains':
    case 'notContains': {
      const found = a.ignoreCase ? output.toLowerCase().includes(a.text.toLowerCase()) : output.includes(a.text);
      return outcome(found === (a.kind === 'contains'), found ? 'the text is in the output' : 'the text is not in the output');
    }
    case 'regex':
      return outcome(a.regex.test(output), 'no match');
    case 'maxWords': {
      const words = output.split(/\s+/).filter(Boolean).length;
      return outcome(words <= a.limit, `${words} words`);
    }
    case 'maxChars': {
      const chars = [...output.trim()].length;
      return outcome(chars <= a.limit, `${chars} characters`);
    }
    case 'json':
      return outcome(parseJson(output).ok, 'not JSON');
    case 'jsonSchema': {
      const parsed = parseJson(output);
      if (!parsed.ok) return { pass: false, detail: 'not JSON' };
      const problem = schemaViolation(parsed.value, a.schema);
      return problem ? { pass: false, detail: problem } : { pass: true };
    }
    case 'fileExists':
      return outcome(existsSync(join(ctx.workDir, a.path)), `${a.path} is missing`);
    case 'command':
      return runCommand(a.command, output, ctx);
    case 'judge':
      return askJudge(a.question, output, ctx);
  }
}

function outcome(pass: boolean, whyNot: string): Verdict {
  return pass ? { pass } : { pass, detail: whyNot };
}

function parseJson(text: string): { ok: true; value: unknown } | { ok: false } {
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch {
    return { ok: false };
  }
}

function baseEnv(ctx: CheckContext): NodeJS.ProcessEnv {
  return { ...process.env, RATCHET_CASE: ctx.caseId, RATCHET_TRIAL: String(ctx.trial), RATCHET_SUITE_DIR: ctx.suiteDir };
}

/** Exit 0 passes; anything else, a timeout included, fails. */
async function runCommand(command: string, output: string, ctx: CheckContext): Promise<Verdict> {
  const outputFile = join(ctx.scratch, 'output.txt');
  writeFileSync(outputFile, output);
  const timeoutMs = ctx.timeoutSeconds * 1000;
  const result = await runShell({ command, cwd: ctx.workDir, env: { ...baseEnv(ctx), RATCHET_OUTPUT_FILE: outputFile }, input: output, timeoutMs });
  const failed = failureReason(result, timeoutMs);
  return failed ? { pass: false, detail: `the command ${failed}` } : { pass: true };
}

/** The judge reads the question, a blank line, then the output, and answers yes or no first. */
async function askJudge(question: string, output: string, ctx: CheckContext): Promise<Verdict> {
  if (!ctx.judge) return { error: 'no judge command is set (judge: in suite.yaml)' };
  const timeoutMs = ctx.timeoutSeconds * 1000;
  const result = await runShell({ command: ctx.judge, cwd: ctx.workDir, env: baseEnv(ctx), input: `${question}\n\n${output}`, timeoutMs });
  const failed = failureReason(result, timeoutMs);
  if (failed) return { error: `the judge ${failed}` };
  const answer = /^\W*(yes|no)\b/i.exec(result.stdout)?.[1]?.toLowerCase();
  if (!answer) return { error: `the judge answered neither yes nor no: ${JSON.stringify(result.stdout.slice(0, 80))}` };
  return answer === 'yes' ? { pass: true } : { pass: false, detail: 'the judge said no' };
}
