// The session: start one (branch, pinned rules, baseline), and check on every call that git still agrees with it.
import { hostname } from 'node:os';
import { join } from 'node:path';
import { CONFIG_FILE, loadConfig, type Config } from './config.js';
import type { LoopContext } from './context.js';
import type { Driver } from './driver.js';
import type { SandboxReport } from './executor/executor.js';
import { globMatcher } from './globs.js';
import type { ExperimentRow, SessionRow } from './ledger.js';
import * as refusals from './refusals.js';
import { sessionFinished } from './limits.js';
import { discoverFor, tooFewDevices } from './pool/run-pool.js';
import { commitCandidate, pinProtected, savePinnedContent, scanSurface, type Pin } from './surface.js';

export interface StartedSession {
  session: SessionRow;
  baseline: ExperimentRow;
  warnings: string[];
  sandbox: SandboxReport;
  /** Top-level config keys that differ from the previous session's, when there was one. */
  configChanged: string[] | null;
}

export async function startSession(ctx: LoopContext, driver: Driver, input: { tag?: string; replace?: boolean }): Promise<StartedSession> {
  const config = loadConfig(ctx.repo);
  await ctx.git.assertUsable();
  const sandbox = await ctx.executorFor(config).sandbox();
  if (config.sandbox === 'required' && sandbox.kind === 'none') throw refusals.sandboxRequired(sandbox);
  const inFlight = ctx.ledger.unfinishedExperiments()[0];
  if (inFlight) throw refusals.busy(inFlight.id);
  const active = ctx.ledger.activeSession();
  const undecided = active ? ctx.awaitingDecision(active) : undefined;
  if (active && undecided) throw refusals.awaitingDecisionBeforeSession(undecided.id, active.tag);
  if (active && !input.replace) throw refusals.sessionActive(active.tag);
  const ended = active ? sessionFinished(ctx, active, ctx.configOf(active)) : null;
  if (active && ended) throw refusals.finishedSessionNotReplaced(active.tag, ended);

  const tag = input.tag ?? (await freeDefaultTag(ctx));
  const branch = `ratchet/${tag}`;
  if (!(await ctx.git.isValidBranchName(branch))) throw refusals.invalidTag(tag);
  if (ctx.ledger.sessionByTag(tag) || (await ctx.git.refExists(`refs/heads/${branch}`))) throw refusals.tagTaken(tag);
  await requireGpuIfConfigured(ctx, config);

  await ctx.git.excludeFromGit('/.ratchet/');
  const head = await ctx.git.head();
  // Hashed once: nothing below writes a file on disk (the branch and the baseline commit are built from git objects).
  const pins = await pinProtected(ctx.repo, config.protected);
  const scan = await scanSurface({ repo: ctx.repo, git: ctx.git, baseCommit: head, editable: config.editable, protectedGlobs: config.protected, outputs: config.run.outputs, pins });
  // A pin taken now would bless an uncommitted protected file that the baseline commit lacks.
  const isProtected = globMatcher([CONFIG_FILE, ...config.protected]);
  const violations = [...scan.violations];
  for (const c of scan.changed) {
    if (isProtected(c.path) && !violations.some((v) => v.path === c.path)) violations.push({ path: c.path, reason: 'protected_changed', detail: 'protected file with uncommitted changes' });
  }
  if (violations.length) throw refusals.uncommittedOutsideSurface(violations);

  let best = head;
  if (scan.changed.length) {
    // Edits inside the surface become the baseline commit, so the baseline measures exactly what the branch holds.
    best = (await commitCandidate({ git: ctx.git, parent: head, scan, message: `ratchet: baseline for ${tag} (edits present at session start)` })).commit;
  }
  await ctx.git.createBranch(branch, best);
  await savePinnedContent(ctx.repo, pins, join(ctx.stateDir, 'pins'));
  // The rules live in git objects; the ledger's copy is a cache that every decision checks against them.
  const pinnedCommit = await ctx.git.commitBlobs({
    files: { 'ratchet.json': `${JSON.stringify(config, null, 2)}\n`, 'pins.json': `${JSON.stringify(pins, null, 2)}\n` },
    message: `ratchet: rules pinned for session ${tag}`,
  });
  await ctx.git.setRef(`refs/ratchet/${tag}/pinned`, pinnedCommit);

  const previous = active ?? ctx.ledger.latestSession();
  const session = ctx.ledger.createSession({ tag, branch, baseCommit: head, bestCommit: best, config, pins, pinnedCommit });
  ctx.registry.setBase(ctx.agent, session.id, best);
  await ctx.pinned(session);
  ctx.log.info({ tag, branch, best, sandbox: sandbox.kind }, 'session started');
  const baseline = ctx.createOwnExperiment({ sessionId: session.id, kind: 'baseline', commit: best, parentCommit: best, description: 'baseline', host: hostname() });
  await ctx.git.setRef(`refs/ratchet/${tag}/${baseline.id}`, best);
  const started = await driver.launch(baseline, config, 'run');
  const warnings = await globWarnings(ctx, config, pins);
  if (sandbox.kind === 'none') warnings.push(`Runs are not sandboxed: ${sandbox.why}${sandbox.install ? ` Install one with \`${sandbox.install}\`.` : ''}`);
  if (warnings.length) ctx.log.warn({ warnings }, 'start_session warnings');
  return {
    session: ctx.ledger.session(session.id)!,
    baseline: started,
    warnings,
    sandbox,
    configChanged: previous ? changedKeys(ctx.configOf(previous), config) : null,
  };
}

function changedKeys(before: Config, after: Config): string[] {
  const keys = new Set([...Object.keys(before), ...Object.keys(after)]);
  return [...keys].filter((k) => JSON.stringify((before as Record<string, unknown>)[k]) !== JSON.stringify((after as Record<string, unknown>)[k])).sort();
}

/** A glob that matches nothing is usually a typo, and a protected one then pins nothing. */
async function globWarnings(ctx: LoopContext, config: Config, pins: Pin[]): Promise<string[]> {
  const files = await ctx.git.listFiles();
  const warnings: string[] = [];
  for (const glob of config.protected) {
    const matches = globMatcher([glob]);
    if (!pins.some((p) => matches(p.path))) warnings.push(`protected glob "${glob}" matches no file, so it pins nothing; check it for a typo.`);
  }
  for (const glob of config.editable) {
    const matches = globMatcher([glob]);
    if (!files.some((f) => matches(f))) warnings.push(`editable glob "${glob}" matches no file yet; the agent can only create files there.`);
  }
  return warnings;
}

/**
 * HEAD must be on the session branch, and the branch at the session's best commit. A keep that
 * moved the branch but crashed before the ledger recorded it is completed here.
 */
export async function requireOnBranch(ctx: LoopContext, session: SessionRow, completeKeep: (session: SessionRow, tip: string) => boolean): Promise<void> {
  await ctx.git.assertUsable();
  // An agent's worktree cannot check out the branch the main worktree has; its HEAD stays detached at its base.
  const branch = await ctx.git.currentBranch();
  if (!ctx.linked && branch !== session.branch) throw refusals.notOnBranch(branch, session.branch);
  const tip = await ctx.git.resolve(`refs/heads/${session.branch}`);
  if (tip !== session.bestCommit && tip !== null && completeKeep(session, tip)) return;
  if (tip !== session.bestCommit) throw refusals.branchMoved(session.branch, tip, session.bestCommit);
}

async function freeDefaultTag(ctx: LoopContext): Promise<string> {
  const d = new Date();
  const base = `${d.toLocaleString('en-US', { month: 'short' }).toLowerCase()}${d.getDate()}`;
  for (let i = 1; ; i++) {
    const tag = i === 1 ? base : `${base}-${i}`;
    if (!ctx.ledger.sessionByTag(tag) && !(await ctx.git.refExists(`refs/heads/ratchet/${tag}`))) return tag;
  }
}

/** A session whose config requires GPUs starts only where the pool can give each run gpu.perRun devices. */
async function requireGpuIfConfigured(ctx: LoopContext, config: Config): Promise<void> {
  if (!config.gpu?.required) return;
  const found = await discoverFor(ctx, config);
  if (found.devices.length < config.gpu.perRun) throw tooFewDevices(config.gpu.perRun, found);
}
