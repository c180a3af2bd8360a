// The SessionStart hook: a started, resumed, cleared or compacted agent gets the session's state as context.
import { summaryLines } from './summary.js';
import type { SessionState } from './state.js';

/** Claude Code's documented output for SessionStart; null (print nothing) where there is no session to resume. */
export function sessionStartOutput(state: SessionState | null): { hookSpecificOutput: { hookEventName: 'SessionStart'; additionalContext: string } } | null {
  const lines = state ? summaryLines(state) : null;
  if (!lines) return null;
  const context = [...lines, 'Use the ratchet MCP tools (status, run_experiment, wait_experiment, read_metric, keep, revert) to go on; the `loop` prompt has the whole procedure.'];
  return { hookSpecificOutput: { hookEventName: 'SessionStart', additionalContext: context.join('\n') } };
}
