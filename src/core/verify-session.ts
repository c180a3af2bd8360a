// Verifies a whole session: the branch's kept commits, newest first, each re-measured and compared with the ledger.
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import type { LoopContext } from './context.js';
import { noiseOf } from './decision.js';
import { ledgerPath } from './ledger.js';
import { verifyCommit, type CommitCheck } from './verify.js';
import { RatchetError } from './errors.js';

export interface SessionVerification {
  tag: string;
  branch: string;
  tip: string | null;
  checks: CommitCheck[];
  ledgerFindings: string[];
  ok: boolean;
}

export async function verifySession(ctx: LoopContext, input: { tag?: string; runs: number; onCheck?: (c: CommitCheck) => void }): Promise<SessionVerification> {
  if (!existsSync(ledgerPath(ctx.repo))) throw new RatchetError('no_session', `No ledger in ${ctx.repo}.`, 'Run verify in a repo where ratchet ran a session (pass --repo).');
  const session = input.tag ? ctx.ledger.sessionByTag(input.tag) : ctx.ledger.activeSession() ?? ctx.ledger.latestSession();
  if (!session) throw new RatchetError('no_session', input.tag ? `No session "${input.tag}" in the ledger.` : 'The ledger has no session.', 'Pass --tag with a session tag (list_experiments shows them), or run a session first.');
  const { config } = await ctx.pinned(session);
  const ledgerFindings = ctx.ledger.verifyChain().map((f) => `ledger ${f.table} row ${f.rowId}: ${f.what}`);
  const tip = await ctx.git.resolve(`refs/heads/${session.branch}`);
  const commits = tip ? await ctx.git.firstParentChain(tip, session.baseCommit) : [];
  const measurements = ctx.ledger.measurements(session.id, config.metric.name);
  const noise = noiseOf(measurements);
  const checks: CommitCheck[] = [];
  for (const commit of commits) {
    const kept = ctx.ledger.keptExperimentFor(session.id, commit);
    const expected = measurements.filter((m) => m.commit === commit).map((m) => m.value);
    if (!kept && commit === session.baseCommit) continue; // the session started from edits: its base was never measured itself
    if (!kept) {
      const check: CommitCheck = { commit, experimentId: null, status: 'not reproduced', recorded: expected, remeasured: [], why: 'the branch holds a commit that the ledger never kept (moved outside ratchet?)' };
      checks.push(check);
      input.onCheck?.(check);
      continue;
    }
    const check = await verifyCommit(
      { git: ctx.git, executor: ctx.executorFor(config), scratchDir: join(ctx.stateDir, 'verify'), cacheDir: ctx.cacheDir, hidden: [ctx.repo], repo: ctx.repo },
      { commit, experimentId: kept?.id ?? null, config, expected, noiseSd: Number.isFinite(noise.sd) && noise.df > 0 ? noise.sd : null, runs: input.runs },
    );
    checks.push(check);
    input.onCheck?.(check);
  }
  return { tag: session.tag, branch: session.branch, tip, checks, ledgerFindings, ok: ledgerFindings.length === 0 && checks.every((c) => c.status === 'reproduced') };
}
