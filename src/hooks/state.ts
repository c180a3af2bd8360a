// The session's state as the hooks and the Codex loop see it: read beside a running server, without its lock, never written.
import { existsSync } from 'node:fs';
import { silentLogger } from '../log.js';
import { ledgerPath } from '../core/ledger.js';
import { ResearchLoop } from '../core/loop.js';
import { serverHolding } from '../core/server-lock.js';
import type { ExperimentView, Finished, Status } from '../core/views.js';

export interface SessionState {
  status: Status;
  /** The session's latest experiments, newest first (repeats belong to their experiment). */
  recent: ExperimentView[];
  /** The ledger's chain head: every write moves it, so an unchanged head means nothing happened. */
  head: number;
  /** Whether a ratchet server drives the repo now, asked only while a run shows as running: without one, nobody follows it. */
  serverAlive: boolean;
}

const RECENT = 5;

/** Null where the repo has no ledger: nothing was ever started here, and nothing is created by looking. */
export async function readSessionState(repo: string): Promise<SessionState | null> {
  if (!existsSync(ledgerPath(repo))) return null;
  // The same reads as `ratchet status`: a second connection to the WAL ledger, no claim() of the server lock.
  const loop = new ResearchLoop({ repo, logger: silentLogger() });
  try {
    const status = await loop.status();
    const recent = status.session ? (await loop.listExperiments({ limit: RECENT })).experiments : [];
    return { status, recent, head: loop.ledger.chainHead().seq, serverAlive: status.running !== null && (await serverHolding(repo)) !== null };
  } finally {
    loop.close();
  }
}

/** Once a cap is reached or the user stopped the session; a status without the field (an older ledger's server) is not finished. */
export function finishedOf(state: SessionState): Finished | null {
  return state.status.finished ?? null;
}

/**
 * What the agent still owes a finished session: an experiment that runs (to wait for) or one measured and not yet
 * decided (to keep or revert). A cap or a stop ends new experiments, not the decisions on those already started.
 */
export function owedWork(state: SessionState): string | null {
  const { status } = state;
  if (status.running) return `experiment ${status.running.id} is still running`;
  if (status.awaitingDecision !== null && status.awaitingDecision !== undefined) return `experiment ${status.awaitingDecision} is measured and waits for keep or revert`;
  return null;
}
