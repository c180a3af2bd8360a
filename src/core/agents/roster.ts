// The agents of a ledger as status and `ratchet worktree list` show them: where each works, what it has in flight and
// kept, and where its tree stands against the best.
import type { Ledger, SessionRow } from '../ledger.js';
import { MAIN_AGENT } from '../ledger/schema.js';
import type { AgentRegistry } from './registry.js';

export interface RosterEntry {
  name: string;
  worktree: string;
  inFlight: number;
  kept: number;
  /** The best its tree was last brought to; null before any (an agent's worktree added before the session). */
  base: string | null;
  /** Its tree is not on the session's best: another agent kept since, or it never synced in this session. */
  behind: boolean;
}

/**
 * An agent's base in a session. The main worktree starts each session on its best; an agent's worktree that has none
 * in this session (added before it started) has none until it syncs.
 */
export function baseFor(registry: AgentRegistry, agent: string, session: SessionRow): string | null {
  return registry.baseOf(agent, session.id) ?? (agent === MAIN_AGENT ? session.bestCommit : null);
}

/** "main" (the repo's own worktree, `home`) first, then every registered agent. */
export function agentRoster(ledger: Ledger, registry: AgentRegistry, home: string, session: SessionRow | undefined): RosterEntry[] {
  const agents = [{ name: MAIN_AGENT, worktree: home }, ...registry.agents().filter((a) => a.name !== MAIN_AGENT)];
  return agents.map(({ name, worktree }) => {
    const base = session ? baseFor(registry, name, session) : null;
    return {
      name,
      worktree,
      ...(session ? ledger.agentCounts(session.id, name) : { inFlight: 0, kept: 0 }),
      base,
      behind: session !== undefined && base !== session.bestCommit,
    };
  });
}
