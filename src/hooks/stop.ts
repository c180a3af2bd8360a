// The Stop hook: while a session is open and not finished, the agent may not end its turn; the reason tells it what to do next.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { finishedOf, owedWork, type SessionState } from './state.js';

/** The fields of Claude Code's Stop hook input that this hook reads. */
export interface StopInput {
  session_id?: string;
  stop_hook_active?: boolean;
}

export type StopVerdict = { block: true; reason: string } | { block: false; why: string };

/**
 * `lastBlockHead` is the ledger's chain head when this hook last blocked the same Claude session, or
 * null when it never did (or cannot tell). Claude Code sets stop_hook_active on a stop that follows a
 * block; blocking again then needs evidence that the loop moved, or the turn could never end.
 */
export function stopVerdict(state: SessionState | null, input: StopInput, lastBlockHead: number | null): StopVerdict {
  if (!state) return { block: false, why: 'no ratchet ledger in this repo' };
  const { status } = state;
  if (!status.session) return { block: false, why: 'no active ratchet session' };
  const finished = finishedOf(state);
  const owed = owedWork(state);
  if (finished && !owed) return { block: false, why: `the session is finished: ${finished.reason}` };
  // Only the user can clear tampering findings; an agent kept at work could not keep anything anyway.
  if (!status.integrity.ok) return { block: false, why: 'ratchet found its evidence changed; the user has to look (ratchet verify, ratchet integrity --accept)' };
  // A run shown as running while no server drives the repo is followed by nobody: waiting on it could never end.
  const followedRun = status.running !== null && state.serverAlive;
  if (input.stop_hook_active === true && !followedRun && (lastBlockHead === null || lastBlockHead === state.head)) {
    return { block: false, why: 'the agent was told to go on and stopped again without any change to the ledger' };
  }
  const session = status.session;
  return {
    block: true,
    reason: finished
      ? [
          `The ratchet session "${session.tag}" is finished (${finished.reason}), but ${owed}: finish it before you stop.`,
          `Next: ${status.next}`,
        ].join(' ')
      : [
          `The ratchet session "${session.tag}" is still open and not finished: keep working the loop.`,
          `Next: ${status.next}`,
          'The session ends when a limit in ratchet.json is reached or the user runs `ratchet stop`; do not stop to ask whether to continue.',
        ].join(' '),
  };
}

/** Where the hook remembers the chain head of its last block, per Claude session: beside the ledger, never in it. */
export function memoryFile(repo: string, claudeSession: string | undefined): string {
  const id = (claudeSession ?? 'default').replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 100) || 'default';
  return join(repo, '.ratchet', 'hooks', `stop-${id}.json`);
}

export function readLastBlock(file: string): number | null {
  try {
    const head = (JSON.parse(readFileSync(file, 'utf8')) as { head?: unknown }).head;
    return typeof head === 'number' ? head : null;
  } catch {
    return null;
  }
}

export function rememberBlock(file: string, head: number): void {
  mkdirSync(join(file, '..'), { recursive: true });
  writeFileSync(file, `${JSON.stringify({ head, at: new Date().toISOString() })}\n`);
}
