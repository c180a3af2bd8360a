// `ratchet eval`: load the suite, run the agent on every case-trial (or read what --collect wrote), score, print the lines.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { isRatchetError, RatchetError } from '../core/errors.js';
import { checkAgentSetup, runAgent, type AgentRun, type AgentSetup } from './agent.js';
import { checkCollectedDir, prepareCollectDir, readCollected, writeCollected } from './collect.js';
import { formatJson, formatLines } from './lines.js';
import { killAllGroups } from './process.js';
import { LIMITS } from './schema.js';
import { scoreTrial, summarize, type TrialScore } from './score.js';
import { loadSuite, type Suite } from './suite.js';
import { mapLimit } from '../core/map-limit.js';
import { planTrials, selectCases, SPLITS, type Split, type TrialPlan } from './trials.js';

/** The CLI's flags as parseArgs hands them over (numbers still text). */
export interface EvalFlags {
  split?: string;
  agent?: string;
  trials?: string;
  concurrency?: string;
  timeout?: string;
  json?: boolean;
  collect?: string;
  score?: string;
}

export interface EvalIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

const processIo: EvalIo = { stdout: (t) => process.stdout.write(t), stderr: (t) => process.stderr.write(t) };

interface Options {
  split: Split;
  trials: number;
  concurrency: number;
  timeoutSeconds: number;
  agent?: string;
}

/** Exit code: 0 when the eval ran, 2 for a bad suite or flag, 1 when no case-trial could be scored. */
export async function runEval(repo: string, suiteArg: string | undefined, flags: EvalFlags, io: EvalIo = processIo): Promise<number> {
  let suite: Suite;
  let options: Options;
  try {
    if (flags.collect !== undefined && flags.score !== undefined) {
      throw usage('--collect and --score cannot be used together', 'Collect in one command and score in another, or pass neither to do both.');
    }
    suite = loadSuite(repo, suiteArg);
    options = readOptions(flags, suite);
    if (flags.score === undefined) checkAgentSetup(agentSetup(repo, suite, options));
  } catch (err) {
    if (!isRatchetError(err)) throw err;
    io.stderr(`ratchet eval: ${err.toText()}\n`);
    return 2;
  }
  const plan = planTrials(selectCases(suite.cases, options.split), options.trials);
  // Agents run in their own process groups, which a Ctrl-C on ratchet would not reach.
  const stopOnSignal = (signal: NodeJS.Signals) => {
    killAllGroups();
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.once('SIGINT', stopOnSignal);
  process.once('SIGTERM', stopOnSignal);
  try {
    if (flags.collect !== undefined) return await collect(repo, suite, options, plan, flags.collect, io);
    const scores = flags.score !== undefined ? await scoreCollected(repo, suite, options, plan, flags.score) : await runAndScore(repo, suite, options, plan);
    return report(scores, options, plan, flags.json === true, io);
  } catch (err) {
    if (!isRatchetError(err)) throw err;
    io.stderr(`ratchet eval: ${err.toText()}\n`);
    return 2;
  } finally {
    process.off('SIGINT', stopOnSignal);
    process.off('SIGTERM', stopOnSignal);
  }
}

function report(scores: TrialScore[], options: Options, plan: TrialPlan[], json: boolean, io: EvalIo): number {
  for (const s of scores) {
    if (s.line.status === 'error') io.stderr(`ratchet eval: ${s.line.case} trial ${s.line.trial} is an error: ${s.line.reason}\n`);
  }
  const output = summarize(scores, options.split);
  io.stdout(json ? formatJson(output) : formatLines(output));
  if (plan.length === 0) {
    io.stderr(`ratchet eval: the suite has no ${options.split} cases, so nothing was scored.\nNext: mark cases with heldOut: true or false as the split needs, or pass --split all.\n`);
    return 1;
  }
  if (scores.every((s) => s.line.status === 'error')) {
    io.stderr('ratchet eval: every case-trial was an error, so nothing was scored.\nNext: fix the agent command (the reasons are above) and run again.\n');
    return 1;
  }
  return 0;
}

async function runAndScore(repo: string, suite: Suite, options: Options, plan: TrialPlan[]): Promise<TrialScore[]> {
  const setup = agentSetup(repo, suite, options);
  return mapLimit(plan, options.concurrency, ({ c, trial }) =>
    inTempDirs(async (workDir, scratch) => {
      const run = await runAgent(c, trial, setup, workDir, scratch);
      return scoreTrial(c, trial, run, checkContext(suite, options, workDir, scratch));
    }),
  );
}

async function collect(repo: string, suite: Suite, options: Options, plan: TrialPlan[], dirArg: string, io: EvalIo): Promise<number> {
  const dir = resolve(repo, dirArg);
  prepareCollectDir(dir, shown(repo, dir));
  const setup = agentSetup(repo, suite, options);
  const runs = await mapLimit(plan, options.concurrency, ({ c, trial }) =>
    inTempDirs(async (workDir, scratch) => writeCollected(dir, c.id, trial, await runAgent(c, trial, setup, workDir, scratch), workDir)),
  );
  const errors = runs.filter((r: AgentRun) => r.status === 'error').length;
  runs.forEach((r, i) => {
    if (r.status === 'error') io.stderr(`ratchet eval: ${plan[i]!.c.id} trial ${plan[i]!.trial} is an error: ${r.reason}\n`);
  });
  io.stdout(`collected ${runs.length} case-trials into ${shown(repo, dir)} (${errors} errors)\n`);
  if (runs.length === 0 || errors === runs.length) {
    io.stderr('ratchet eval: no case-trial produced output to score.\nNext: fix the agent command (the reasons are above) or the split, and collect again.\n');
    return 1;
  }
  return 0;
}

async function scoreCollected(repo: string, suite: Suite, options: Options, plan: TrialPlan[], dirArg: string): Promise<TrialScore[]> {
  const dir = resolve(repo, dirArg);
  checkCollectedDir(dir, shown(repo, dir));
  return mapLimit(plan, options.concurrency, ({ c, trial }) =>
    inTempDirs(async (_, scratch) => {
      const { run, workDir } = readCollected(dir, c.id, trial);
      return scoreTrial(c, trial, run, checkContext(suite, options, workDir, scratch));
    }),
  );
}

/** A fresh working dir and a private scratch dir beside it, both removed afterwards. */
async function inTempDirs<R>(body: (workDir: string, scratch: string) => Promise<R>): Promise<R> {
  const root = mkdtempSync(join(tmpdir(), 'ratchet-eval-'));
  const workDir = join(root, 'work');
  const scratch = join(root, 'scratch');
  mkdirSync(workDir);
  mkdirSync(scratch);
  try {
    return await body(workDir, scratch);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

function agentSetup(repo: string, suite: Suite, options: Options): AgentSetup {
  return { command: options.agent, skill: suite.settings.skill, repo, timeoutSeconds: options.timeoutSeconds };
}

function checkContext(suite: Suite, options: Options, workDir: string, scratch: string) {
  return { workDir, scratch, suiteDir: suite.dir, judge: suite.settings.judge, timeoutSeconds: options.timeoutSeconds };
}

/** Flags beat suite.yaml, which beats the defaults. */
function readOptions(flags: EvalFlags, suite: Suite): Options {
  const split = flags.split ?? 'all';
  if (!(SPLITS as readonly string[]).includes(split)) throw usage(`--split must be one of ${SPLITS.join(', ')}, not "${split}"`, 'Pass --split train, --split held-out or --split all (the default).');
  const s = suite.settings;
  const agent = flags.agent === undefined ? s.agent : flags.agent.trim();
  if (agent === '') throw usage('--agent is empty', 'Pass the agent command, e.g. --agent "codex exec --skip-git-repo-check -", or leave it out for Claude Code.');
  return {
    split: split as Split,
    trials: wholeFlag('--trials', flags.trials, 1, LIMITS.trials) ?? s.trials,
    concurrency: wholeFlag('--concurrency', flags.concurrency, 1, LIMITS.concurrency) ?? s.concurrency,
    timeoutSeconds: secondsFlag(flags.timeout) ?? s.timeoutSeconds,
    agent,
  };
}

function wholeFlag(flag: string, text: string | undefined, min: number, max: number): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || n < min || n > max) throw usage(`${flag} must be a whole number from ${min} to ${max}, not "${text}"`, `Pass ${flag} ${min} or more.`);
  return n;
}

function secondsFlag(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n) || n <= 0 || n > LIMITS.timeoutSeconds) {
    throw usage(`--timeout must be a number of seconds above 0, at most ${LIMITS.timeoutSeconds}, not "${text}"`, 'Pass --timeout 300, say, for five minutes per case-trial.');
  }
  return n;
}

function usage(message: string, hint: string): RatchetError {
  return new RatchetError('invalid_argument', `${message}.`, hint);
}

function shown(repo: string, path: string): string {
  const rel = relative(repo, path);
  return rel && !rel.startsWith('..') ? rel : path;
}
