// `ratchet codex-loop`: Codex has no Stop hook here, so `codex exec` runs turn after turn, each fed the session's state, until the session is finished.
import { spawn } from 'node:child_process';
import { summaryLines } from './summary.js';
import { finishedOf, owedWork, readSessionState, type SessionState } from './state.js';

export interface CodexLoopOptions {
  repo: string;
  /** The codex executable; `codex` on PATH by default. */
  codex?: string;
  /** Options passed to every `codex exec` before the prompt; by default `--sandbox workspace-write`, so Codex can edit files. */
  codexArgs?: string[];
  maxTurns?: number;
}

/** Turns in a row that may pass without a change to the ledger, or a failed `codex exec`, before the loop gives up. */
const PATIENCE = 3;
export const DEFAULT_CODEX_ARGS = ['--sandbox', 'workspace-write'];

const INSTRUCTIONS =
  'You are the proposer in a ratchet auto-research loop in this repository. Ratchet\'s MCP tools run, measure and decide every experiment; ' +
  'follow its `loop` prompt (program.md): one idea per experiment, then run_experiment, wait_experiment until it is done, read_metric, ' +
  'and keep if it is keepable, else revert. Do not ask whether to continue. Run as many experiments as fit in this turn, then end it: ' +
  'you will be started again with the state below.';

export function turnPrompt(state: SessionState | null): string {
  const lines = state ? summaryLines(state) : null;
  return `${INSTRUCTIONS}\n\n${lines ? lines.join('\n') : 'No ratchet session is active: call status, then start_session, and wait for the baseline.'}`;
}

export async function runCodexLoop(opts: CodexLoopOptions): Promise<number> {
  const say = (text: string) => process.stderr.write(`ratchet codex-loop: ${text}\n`);
  const args = opts.codexArgs?.length ? opts.codexArgs : DEFAULT_CODEX_ARGS;
  let idle = 0;
  let failed = 0;
  for (let turn = 1; ; turn++) {
    const before = await readSessionState(opts.repo);
    const stop = reasonToStop(before, turn);
    if (stop) {
      say(stop.message);
      return stop.code;
    }
    if (opts.maxTurns !== undefined && turn > opts.maxTurns) {
      say(`stopped after ${opts.maxTurns} turn(s) (--max-turns); run it again to go on.`);
      return 0;
    }
    say(`turn ${turn}`);
    const code = await codexExec(opts.codex ?? 'codex', ['exec', '--cd', opts.repo, ...args, turnPrompt(before)], opts.repo);
    if (code === null) return 127;
    failed = code === 0 ? 0 : failed + 1;
    if (failed >= PATIENCE) {
      say(`\`codex exec\` failed ${failed} times in a row (last exit status ${code}); see its output above, fix the cause, and run codex-loop again.`);
      return 1;
    }
    const after = await readSessionState(opts.repo);
    const moved = after !== null && (before === null || after.head !== before.head || after.status.running !== null);
    idle = moved ? 0 : idle + 1;
    if (idle >= PATIENCE) {
      say(`${idle} turns in a row changed nothing in the ledger; stopping so Codex does not spend tokens idling. Look at its output, then run codex-loop again.`);
      return 1;
    }
  }
}

/** Why the loop ends before this turn, or null to run it. The first turn may start the session; later ones need it active. */
function reasonToStop(state: SessionState | null, turn: number): { code: number; message: string } | null {
  const finished = state ? finishedOf(state) : null;
  if (finished && state && !owedWork(state)) return { code: 0, message: `the session is finished: ${finished.reason}.` };
  if (state && !state.status.integrity.ok) return { code: 1, message: `ratchet found its evidence changed (${state.status.integrity.findings.join('; ')}). Run \`ratchet verify\`, then \`ratchet integrity --accept\`, then codex-loop again.` };
  if (turn > 1 && !state?.status.session) return { code: 1, message: 'no ratchet session is active after the last turn: start one (Codex calls start_session), or look at why it failed in the output above.' };
  return null;
}

/** The exit status, or null when codex could not be started at all. */
function codexExec(codex: string, args: string[], cwd: string): Promise<number | null> {
  return new Promise((resolveExit) => {
    // stdin closed: `codex exec` would otherwise append whatever is piped in to the prompt.
    const child = spawn(codex, args, { cwd, stdio: ['ignore', 'inherit', 'inherit'] });
    child.on('error', (err) => {
      process.stderr.write(`ratchet codex-loop: could not start ${codex}: ${err.message}. Install Codex (npm i -g @openai/codex) or pass --codex PATH.\n`);
      resolveExit(null);
    });
    child.on('exit', (code, signal) => resolveExit(code ?? (signal ? 128 : 1)));
  });
}
