// The folder `--collect` writes and `--score` reads: DIR/<case>/<trial>/{output.txt, trial.json, files/}.
// The run step (network, untrusted edits) writes it; the evaluate step scores it with the suite it trusts.
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { RatchetError } from '../core/errors.js';
import type { AgentRun } from './agent.js';

// Marks a folder as ratchet's own, so --collect only ever empties a folder it wrote before.
const MARKER = '.ratchet-eval-collect';

const TrialRecord = z.object({
  status: z.enum(['ok', 'error']),
  reason: z.string().optional(),
  usage: z.object({ tokens: z.number().nonnegative().optional(), costUsd: z.number().nonnegative().optional() }).optional(),
});

/** Empties `dir` for a new collection: a new or empty folder, or one an earlier --collect wrote. */
export function prepareCollectDir(dir: string, shown: string): void {
  if (existsSync(dir)) {
    if (!statSync(dir).isDirectory()) throw badDir(`${shown} is a file`, 'Pass --collect a folder path.');
    const entries = readdirSync(dir);
    if (entries.length && !entries.includes(MARKER)) {
      throw badDir(`${shown} already holds files that --collect did not write`, 'Pass --collect a new or empty folder; ratchet empties only folders it wrote.');
    }
    rmSync(dir, { recursive: true, force: true });
  }
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, MARKER), `${JSON.stringify({ format: 1 })}\n`);
}

/** Refuses a folder no --collect wrote, before anything is scored. */
export function checkCollectedDir(dir: string, shown: string): void {
  if (!existsSync(join(dir, MARKER))) {
    throw badDir(`${shown} holds no collected eval (no ${MARKER} file)`, `Run \`ratchet eval --collect ${shown}\` first, then score that folder.`);
  }
}

export function trialDir(dir: string, caseId: string, trial: number): string {
  return join(dir, caseId, String(trial));
}

/** Writes the run and a copy of its working dir; a working dir that cannot be copied turns the run into an error. */
export function writeCollected(dir: string, caseId: string, trial: number, run: AgentRun, workDir: string): AgentRun {
  const target = trialDir(dir, caseId, trial);
  mkdirSync(target, { recursive: true });
  let record = run;
  try {
    // verbatimSymlinks: a link the agent made is kept as written, not rewritten to point into the temp dir.
    cpSync(workDir, join(target, 'files'), { recursive: true, verbatimSymlinks: true });
  } catch (err) {
    record = { ...run, status: 'error', reason: `its working dir could not be collected: ${(err as Error).message}` };
  }
  writeFileSync(join(target, 'output.txt'), record.output);
  const { status, reason, usage } = record;
  writeFileSync(join(target, 'trial.json'), `${JSON.stringify({ status, reason, usage }, null, 2)}\n`);
  return record;
}

/** The collected run and the folder holding its working dir; a missing or unreadable record reads as an error. */
export function readCollected(dir: string, caseId: string, trial: number): { run: AgentRun; workDir: string } {
  const source = trialDir(dir, caseId, trial);
  const workDir = join(source, 'files');
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(join(source, 'trial.json'), 'utf8'));
  } catch {
    return { run: { status: 'error', output: '', reason: 'was not collected (no readable trial.json)' }, workDir };
  }
  const record = TrialRecord.safeParse(raw);
  if (!record.success) return { run: { status: 'error', output: '', reason: 'its collected trial.json is malformed' }, workDir };
  let output = '';
  try {
    output = readFileSync(join(source, 'output.txt'), 'utf8');
  } catch {
    return { run: { status: 'error', output: '', reason: 'its collected output.txt is missing' }, workDir };
  }
  if (!existsSync(workDir)) mkdirSync(workDir, { recursive: true });
  return { run: { ...record.data, output }, workDir };
}

function badDir(message: string, hint: string): RatchetError {
  return new RatchetError('invalid_argument', `${message}.`, hint);
}
