// Runs the agent for one case-trial in its working dir: prompt on stdin, output from stdout; any harness failure is an error, never a pass.
import { cpSync, existsSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { RatchetError } from '../core/errors.js';
import { CLAUDE_COMMAND, installSkill, readClaudeAnswer } from './claude.js';
import { failureReason, runShell } from './process.js';
import type { EvalCase } from './suite.js';
import { readUsageFile, type Usage } from './usage.js';

export interface AgentSetup {
  /** The command; undefined runs the default, Claude Code headless. */
  command?: string;
  /** Absolute path of the skill file or folder. */
  skill: string;
  repo: string;
  timeoutSeconds: number;
}

/** What the agent produced for one case-trial, before any assertion looks at it. */
export interface AgentRun {
  status: 'ok' | 'error';
  output: string;
  /** Why it is an error. */
  reason?: string;
  usage?: Usage;
}

/** Refuses up front what would make every case-trial fail the same way. */
export function checkAgentSetup(setup: AgentSetup): void {
  const shownSkill = setup.skill.startsWith(`${setup.repo}/`) ? setup.skill.slice(setup.repo.length + 1) : setup.skill;
  if (!existsSync(setup.skill)) {
    throw new RatchetError(
      'config_invalid',
      `The skill under test, ${shownSkill}, does not exist.`,
      'Set skill: in the suite.yaml to the skill file or folder (relative to the repo root), or create SKILL.md.',
    );
  }
  if (setup.command === undefined && statSync(setup.skill).isDirectory() && !existsSync(join(setup.skill, 'SKILL.md'))) {
    throw new RatchetError(
      'config_invalid',
      `The skill folder ${shownSkill} has no SKILL.md, which Claude Code needs.`,
      'Add SKILL.md to the folder, point skill: at the skill file, or pass --agent with a command that uses $RATCHET_SKILL.',
    );
  }
}

/** Copies the case's files into workDir and runs the agent there; scratch holds files the agent must not see in its dir. */
export async function runAgent(c: EvalCase, trial: number, setup: AgentSetup, workDir: string, scratch: string): Promise<AgentRun> {
  for (const f of c.files) cpSync(f.source, join(workDir, f.target), { recursive: true });
  const usageFile = join(scratch, 'usage.json');
  const timeoutMs = setup.timeoutSeconds * 1000;
  try {
    if (setup.command === undefined) installSkill(workDir, setup.skill, basename(setup.repo));
  } catch (err) {
    return { status: 'error', output: '', reason: `could not install the skill: ${(err as Error).message}` };
  }
  const env: NodeJS.ProcessEnv = { ...process.env, RATCHET_CASE: c.id, RATCHET_TRIAL: String(trial), RATCHET_SKILL: setup.skill, RATCHET_USAGE_FILE: usageFile };
  // Run from inside a Claude Code session, claude refuses to start while CLAUDECODE says it is nested.
  if (setup.command === undefined) delete env.CLAUDECODE;
  const result = await runShell({
    command: setup.command ?? CLAUDE_COMMAND,
    cwd: workDir,
    env,
    input: c.prompt,
    timeoutMs,
  });
  const failed = failureReason(result, timeoutMs);
  if (failed) return { status: 'error', output: result.stdout, reason: `the agent ${failed}` };
  let output = result.stdout;
  let usage = readUsageFile(usageFile);
  if (setup.command === undefined) {
    const answer = readClaudeAnswer(result.stdout);
    if (!answer.ok) return { status: 'error', output: result.stdout, reason: answer.reason };
    output = answer.output;
    usage = answer.usage;
  }
  if (output.trim() === '') return { status: 'error', output, usage, reason: 'the agent printed nothing on stdout' };
  return { status: 'ok', output, usage };
}
