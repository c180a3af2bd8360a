// ratchet verify: an honest session reproduces; a forged metric, a tampered row or an unmeasured branch tip does not.
import Database from 'better-sqlite3';
import { describe, it, expect } from 'vitest';
import { join } from 'node:path';
import { ResearchLoop } from '../../src/core/loop.js';
import { LoopContext } from '../../src/core/context.js';
import { compareSamples } from '../../src/core/verify.js';
import { verifySession } from '../../src/core/verify-session.js';
import { silentLogger } from '../../src/log.js';
import { makeRepo, TRAIN, EVALUATE, baseConfig, setConstant } from '../helpers/repo.js';
import { cleanedUpAfterEach, finished, startWithBaseline } from '../helpers/loop.js';

const { repos, loops } = cleanedUpAfterEach();

async function keptSession() {
  const repo = makeRepo({ 'train.mjs': TRAIN, 'evaluate.mjs': EVALUATE }, baseConfig({ evaluate: { command: 'node evaluate.mjs', budgetSeconds: 20 } }));
  repos.push(repo);
  const loop = new ResearchLoop({ repo: repo.dir, logger: silentLogger() });
  await startWithBaseline(loop);
  setConstant(repo, 'SCORE', '0.5');
  const e = await finished(loop, (await loop.runExperiment({ description: 'better' })).id);
  await loop.keep({ id: e.id });
  await loop.settle();
  loop.close();
  const ctx = new LoopContext({ repo: repo.dir, logger: silentLogger() });
  loops.push({ settle: async () => {}, close: () => ctx.closeLedger() } as unknown as ResearchLoop);
  return { repo, ctx, kept: e };
}

describe('ratchet verify', () => {
  it('re-measures the kept chain of an honest session and finds every commit reproduced', async () => {
    const { ctx, kept } = await keptSession();
    const result = await verifySession(ctx, { runs: 1 });
    expect(result.checks.map((c) => c.status)).toEqual(['reproduced', 'reproduced']);
    expect(result.checks[0]!.experimentId).toBe(kept.id);
    expect(result.checks[0]!.remeasured).toEqual([0.5]);
    expect(result.ok).toBe(true);
  });

  it('catches a forged metric written into the ledger', async () => {
    const { repo, ctx, kept } = await keptSession();
    ctx.closeLedger();
    const db = new Database(join(repo.dir, '.ratchet', 'ratchet.db'));
    db.prepare("UPDATE samples SET value = 0.001 WHERE experiment_id = ? AND name = 'score'").run(kept.id);
    db.close();
    const result = await verifySession(ctx, { runs: 1 });
    expect(result.ok).toBe(false);
    expect(result.checks[0]!.status).toBe('not reproduced');
    expect(result.checks[0]!.why).toContain('0.001');
    expect(result.ledgerFindings.join('\n')).toContain('samples row');
  });

  it('catches a branch tip that the ledger never measured', async () => {
    const { repo, ctx } = await keptSession();
    setConstant(repo, 'SCORE', '0.1');
    repo.git('add', '-A');
    const forged = repo.git('commit-tree', repo.git('write-tree'), '-p', 'ratchet/t1', '-m', 'never measured');
    repo.git('update-ref', 'refs/heads/ratchet/t1', forged);
    const result = await verifySession(ctx, { runs: 1 });
    expect(result.ok).toBe(false);
    expect(result.checks[0]!.commit).toBe(forged);
    expect(result.checks[0]!.why).toContain('never kept');
  });

  it('compares samples under the session noise: within the allowance reproduces, beyond it does not', () => {
    const rule = baseConfig().decision as never;
    const decision = { rule: 'significant', confidence: 0.95, minEffect: 0, maxRepeats: 5, ...(rule as object) } as never;
    expect(compareSamples([1.0, 1.02, 0.98], [1.01], 0.02, decision).ok).toBe(true);
    expect(compareSamples([1.0, 1.02, 0.98], [1.5], 0.02, decision).ok).toBe(false);
    expect(compareSamples([2, 2], [2], null, decision).ok).toBe(true);
    expect(compareSamples([2, 2], [2.0001], null, decision).ok).toBe(false);
  });
});
