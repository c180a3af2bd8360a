// `ratchet worktree add|list|remove`: git worktrees for more agents, sharing this repo's ledger, pool and best.
import { existsSync, mkdirSync, realpathSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { AGENT_FILE, AGENT_NAME, resolveHome } from './core/agents/home.js';
import { AgentRegistry, endInstance, newInstance } from './core/agents/registry.js';
import { agentRoster } from './core/agents/roster.js';
import { Ledger, ledgerPath } from './core/ledger.js';
import { MAIN_AGENT } from './core/ledger/schema.js';
import { Git, runGit } from './core/git.js';
import { undecidedCandidates } from './core/parallel.js';
import { serverHolding } from './core/server-lock.js';

const say = (line: string) => process.stdout.write(`${line}\n`);
const fail = (line: string) => {
  process.stderr.write(`ratchet worktree: ${line}\n`);
  return 2;
};

export async function runWorktree(repo: string, action: string | undefined, name: string | undefined, opts: { path?: string; force?: boolean }): Promise<number> {
  if (action === 'list') return list(repo);
  if (action === 'remove') return remove(repo, name, opts.force === true);
  if (action !== 'add') return fail('usage: ratchet worktree add <name> [--path DIR] | ratchet worktree list | ratchet worktree remove <name> [--force]');
  if (!name || !AGENT_NAME.test(name) || name === MAIN_AGENT) {
    return fail(`give the new agent a name of lowercase letters, digits and dashes (up to 32), other than "${MAIN_AGENT}": ratchet worktree add <name>`);
  }
  const where = resolveHome(repo);
  if (where.linked) return fail(`${repo} is agent "${where.agent}"'s worktree; run this in the repo's main worktree, ${where.home}.`);
  if (!where.commonDir) return fail(`${repo} is not the top of a git repository; pass --repo with your project's path.`);
  const path = resolve(opts.path ?? join(dirname(repo), `${basename(repo)}-${name}`));
  if (existsSync(path)) return fail(`${path} already exists; pass --path with a new directory.`);

  mkdirSync(join(repo, '.ratchet'), { recursive: true });
  return withRegistry(repo, async (ledger, registry) => {
    const taken = registry.agent(name);
    if (taken && existsSync(taken.worktree)) return fail(`agent "${name}" already has a worktree at ${taken.worktree}; pick another name.`);
    const session = ledger.activeSession();
    const at = session?.bestCommit ?? (await runGit(repo, ['rev-parse', 'HEAD'])).stdout.toString().trim();
    const added = await runGit(repo, ['worktree', 'add', '--detach', path, at], { allowFail: true });
    if (added.code !== 0) return fail(`git worktree add failed: ${added.stderr.toString().trim()}`);
    const gitDir = (await runGit(path, ['rev-parse', '--absolute-git-dir'])).stdout.toString().trim();
    writeFileSync(join(gitDir, AGENT_FILE), `${name}\n`);
    registry.register(name, realpathSync(path));
    if (session) {
      registry.setBase(name, session.id, at);
      // The main worktree's agent stands on the best until it moves; recorded now, so another agent's keep cannot shift it.
      if (registry.baseOf(MAIN_AGENT, session.id) === null) registry.setBase(MAIN_AGENT, session.id, session.bestCommit);
    }
    const real = realpathSync(path);
    say(`Agent "${name}" has a worktree at ${real}, detached at ${session ? `the best commit ${at.slice(0, 7)} of session ${session.tag}` : `${at.slice(0, 7)} (no session yet: start one in ${repo})`}.`);
    say(`It shares this repo's ledger, device pool and branch${session ? ` ${session.branch}` : ''}: each candidate is carried onto the best when it is submitted, and only the branch's best moves.`);
    say('');
    say('Start an agent there:');
    say(`  Claude Code:  cd ${real} && claude mcp add ratchet -- ratchet serve && claude`);
    say(`                (with the server in the repo's .mcp.json, \`cd ${real} && claude\` is enough)`);
    say(`  Codex:        cd ${real} && ratchet codex-loop -- -c 'mcp_servers.ratchet.cwd="${real}"'`);
    say('');
    say('After another agent keeps a change, the sync tool (or revert) brings an agent\'s tree to the new best.');
    return 0;
  });
}

function list(repo: string): Promise<number> | number {
  const home = resolveHome(repo).home;
  if (!existsSync(ledgerPath(home))) return fail(`no ratchet ledger in ${home} yet; start a session first.`);
  return withRegistry(home, async (ledger, registry) => {
    for (const a of agentRoster(ledger, registry, home, ledger.activeSession())) {
      say(`${a.name}\t${a.worktree}${existsSync(a.worktree) ? '' : ' (missing)'}\tin flight ${a.inFlight}\tkept ${a.kept}${a.behind ? '\tbehind the best' : ''}`);
    }
    return 0;
  });
}

/**
 * Takes an agent's worktree away once its work is safe: refused while it has experiments in flight or awaiting its
 * decision, while a server still serves it, and (unless forced) while it holds files git ignores. Its edits in progress
 * are saved under a ref first; its experiments stay in the ledger as evidence.
 */
function remove(repo: string, name: string | undefined, force: boolean): Promise<number> | number {
  if (!name) return fail('name the agent whose worktree to remove: ratchet worktree remove <name> (ratchet worktree list shows them)');
  if (name === MAIN_AGENT) return fail(`"${MAIN_AGENT}" is the repo's own worktree, not an agent's; it cannot be removed.`);
  const home = resolveHome(repo).home;
  if (!existsSync(ledgerPath(home))) return fail(`no ratchet ledger in ${home}, so no agent worktrees either.`);
  return withRegistry(home, async (ledger, registry) => {
    const agent = registry.agent(name);
    if (!agent) return fail(`no agent named "${name}"; ratchet worktree list shows them.`);
    const session = ledger.activeSession();
    const inFlight = session ? ledger.agentCounts(session.id, name).inFlight : 0;
    if (inFlight) return fail(`agent "${name}" has ${inFlight} experiment(s) running or queued; let them end (ratchet worktree list shows them) or have the agent cancel them, then remove it.`);
    // Only its own agent may keep or revert its candidates: once it is gone, an undecided one would hold the session up.
    const undecided = session ? undecidedCandidates(ledger, session, 200).filter((e) => ledger.agentOf(e.id) === name) : [];
    if (undecided.length) {
      const ids = undecided.map((e) => `#${e.id}`).join(', ');
      return fail(`agent "${name}" has measured candidate(s) ${ids} awaiting keep or revert, which only it may decide; have it decide them (start its agent in ${agent.worktree}), then remove it.`);
    }
    const present = existsSync(agent.worktree);
    if (present) {
      const server = await serverHolding(agent.worktree);
      if (server) return fail(`a ratchet server (pid ${server.pid}) still serves ${agent.worktree}; stop that agent first, then remove it.`);
      // Ignored files (data, checkpoints, environments) are in no commit: removing the worktree would delete them for good.
      const { edited, ignored } = await worktreeStatus(agent.worktree);
      if (ignored.length && !force) {
        const shown = ignored.slice(0, 5).join(', ') + (ignored.length > 5 ? `, and ${ignored.length - 5} more` : '');
        return fail(`${agent.worktree} holds files git ignores, which would be deleted and cannot be saved under a ref: ${shown}. Move what you need, or pass --force to delete them.`);
      }
      const saved = edited ? await saveEdits(agent.worktree, name, session?.tag) : null;
      if (saved) say(`Its edits in progress are saved under ${saved} (git checkout ${saved} -- . brings them back).`);
      const removed = await runGit(home, ['worktree', 'remove', '--force', agent.worktree], { allowFail: true });
      if (removed.code !== 0) return fail(`git worktree remove failed: ${removed.stderr.toString().trim()}. Nothing was unregistered; fix that and run this again.`);
    }
    await runGit(home, ['worktree', 'prune'], { allowFail: true });
    registry.unregister(name);
    say(`Removed agent "${name}"${present ? ` and its worktree ${agent.worktree}` : ' (its worktree was already gone)'}. Its experiments stay in the ledger, under its name.`);
    return 0;
  });
}

/**
 * One look at the worktree: whether it has edits since its HEAD (untracked files too), and the paths git ignores there
 * (a folder once, as git lists it), ratchet's own state aside.
 */
async function worktreeStatus(worktree: string): Promise<{ edited: boolean; ignored: string[] }> {
  const lines = (await runGit(worktree, ['status', '--porcelain', '--ignored'])).stdout.toString().split('\n').filter(Boolean);
  const ignored = lines.filter((l) => l.startsWith('!! ')).map((l) => l.slice(3));
  return { edited: lines.some((l) => !l.startsWith('!! ')), ignored: ignored.filter((p) => p !== '.ratchet/' && !p.startsWith('.ratchet/')) };
}

/** The worktree's edits since its HEAD (untracked files too, ignored ones not), as a commit under a ref. */
async function saveEdits(worktree: string, name: string, tag: string | undefined): Promise<string> {
  const git = new Git(worktree);
  try {
    const head = (await runGit(worktree, ['rev-parse', 'HEAD'])).stdout.toString().trim();
    const snap = await git.snapshot(head, `ratchet: agent ${name}'s edits in progress when its worktree was removed`);
    const ref = `refs/ratchet/${tag ?? 'agents'}/removed-${name}-${Date.now()}`;
    await git.setRef(ref, snap.commit);
    return ref;
  } finally {
    git.close();
  }
}

/** The repo's ledger and its agents for the length of `fn`, as a short-lived writer that drives no run. */
async function withRegistry<T>(repo: string, fn: (ledger: Ledger, registry: AgentRegistry) => Promise<T>): Promise<T> {
  const ledger = new Ledger(ledgerPath(repo));
  const instance = newInstance();
  try {
    return await fn(ledger, new AgentRegistry(ledger.db, instance));
  } finally {
    endInstance(instance);
    ledger.close();
  }
}
