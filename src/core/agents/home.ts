// Where a server keeps its state: the repo's own .ratchet/, or, in an agent's worktree, the main worktree's, so that
// several agents share one ledger, one pool and one best.
import { existsSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { MAIN_AGENT } from '../ledger/schema.js';

/** Written by `ratchet worktree add` into the worktree's private git directory: the agent's name. */
export const AGENT_FILE = 'ratchet-agent';

export const AGENT_NAME = /^[a-z0-9][a-z0-9-]{0,31}$/;

export interface Home {
  /** The main worktree: its .ratchet/ holds the ledger every agent writes. */
  home: string;
  /** This server's agent: "main" in the main worktree, the registered name in an agent's worktree. */
  agent: string;
  /** True in an agent's worktree (a linked git worktree whose HEAD ratchet keeps detached at the agent's base). */
  linked: boolean;
  /** The repository's common git directory, one for every worktree: it names the repo's cross-process locks. */
  commonDir: string | null;
}

/**
 * Resolved from git's own files, without spawning git: a linked worktree's `.git` is a file naming its private git
 * directory, which holds `commondir` (the shared one) and, for an agent, ratchet's marker with its name.
 */
export function resolveHome(repo: string): Home {
  const own = (commonDir: string | null): Home => ({ home: repo, agent: MAIN_AGENT, linked: false, commonDir });
  const dotGit = join(repo, '.git');
  let stat;
  try {
    stat = statSync(dotGit);
  } catch {
    return own(null);
  }
  if (stat.isDirectory()) return own(realOrSelf(dotGit));
  const gitDir = /^gitdir:\s*(.+?)\s*$/m.exec(read(dotGit) ?? '')?.[1];
  if (!gitDir) return own(null);
  const privateDir = resolve(repo, gitDir);
  const common = read(join(privateDir, 'commondir'))?.trim();
  const commonDir = common ? realOrSelf(resolve(privateDir, common)) : null;
  const agent = read(join(privateDir, AGENT_FILE))?.trim();
  // Only a worktree that `ratchet worktree add` made (marker present, a main worktree beside the common dir) joins it.
  if (!agent || !AGENT_NAME.test(agent) || agent === MAIN_AGENT || !commonDir || basename(commonDir) !== '.git') return own(commonDir);
  const home = dirname(commonDir);
  if (!existsSync(home)) return own(commonDir);
  return { home, agent, linked: true, commonDir };
}

function read(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

function realOrSelf(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}
