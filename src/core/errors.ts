// One error type for everything the user or agent can fix: what happened, and what to do next.

export type ErrorCode =
  | 'config_missing'
  | 'config_invalid'
  | 'no_session'
  | 'session_exists'
  | 'git_state'
  | 'surface_violation'
  | 'busy'
  | 'awaiting_decision'
  | 'unknown_experiment'
  | 'not_decidable'
  | 'gpu_unavailable'
  | 'invalid_argument'
  | 'locked'
  | 'sandbox_unavailable'
  | 'tampered'
  | 'session_finished'
  | 'stale_candidate'
  | 'behind_best'
  | 'other_agent'
  | 'internal';

export class RatchetError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    /** The next step that gets the caller unstuck. */
    readonly hint: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'RatchetError';
  }

  toText(): string {
    return `${this.message}\nNext: ${this.hint}`;
  }
}

export function isRatchetError(err: unknown): err is RatchetError {
  return err instanceof RatchetError;
}
