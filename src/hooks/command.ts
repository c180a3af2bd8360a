// `ratchet hook <stop|session-start>`: Claude Code's hook input on stdin, its documented JSON on stdout, and never a stuck turn.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { isRatchetError } from '../core/errors.js';
import { ledgerPath } from '../core/ledger.js';
import { sessionStartOutput } from './session-start.js';
import { readSessionState } from './state.js';
import { memoryFile, readLastBlock, rememberBlock, stopVerdict, type StopInput } from './stop.js';

export const HOOK_EVENTS = ['stop', 'session-start'] as const;
const MAX_INPUT_BYTES = 1 << 20;

/**
 * Every failure exits 0 with a message on stderr: a hook that errs must let the agent stop (or start)
 * rather than trap it. `repo` is --repo or CLAUDE_PROJECT_DIR when given, else the input's cwd.
 */
export async function runHook(event: string | undefined, repo: string | undefined): Promise<number> {
  try {
    if (event !== 'stop' && event !== 'session-start') {
      process.stderr.write(`ratchet hook: unknown event "${event ?? ''}". Use one of: ${HOOK_EVENTS.join(', ')}.\n`);
      return 0;
    }
    const input = parseInput(await readStdin());
    const dir = resolve(repo ?? (typeof input.cwd === 'string' ? input.cwd : process.cwd()));
    // Most projects never use ratchet: answer before opening anything.
    if (!existsSync(ledgerPath(dir))) return 0;
    const state = await readSessionState(dir);
    if (event === 'session-start') {
      const out = sessionStartOutput(state);
      if (out) process.stdout.write(`${JSON.stringify(out)}\n`);
      return 0;
    }
    const memory = memoryFile(dir, typeof input.session_id === 'string' ? input.session_id : undefined);
    const verdict = stopVerdict(state, input as StopInput, readLastBlock(memory));
    if (!verdict.block) {
      process.stderr.write(`ratchet: letting the agent stop: ${verdict.why}.\n`);
      return 0;
    }
    rememberBlock(memory, state!.head);
    process.stdout.write(`${JSON.stringify({ decision: 'block', reason: verdict.reason })}\n`);
    return 0;
  } catch (err) {
    process.stderr.write(`ratchet hook ${event ?? ''}: ${isRatchetError(err) ? err.toText() : err instanceof Error ? err.message : String(err)} (the agent is not held back).\n`);
    return 0;
  }
}

function parseInput(text: string): Record<string, unknown> {
  if (!text.trim()) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new Error('the hook input on stdin is not JSON; Claude Code sends one JSON object');
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('the hook input on stdin is not a JSON object');
  return parsed as Record<string, unknown>;
}

async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) return '';
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_INPUT_BYTES) throw new Error(`the hook input is over ${MAX_INPUT_BYTES} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}
