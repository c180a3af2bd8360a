// With other agents' servers on the ledger, reads re-verify the whole chain at most every 30 s (another connection
// writes all the time), but a decision always verifies first: a row forged through another connection stops keep.
import Database from 'better-sqlite3';
import { describe, it, expect } from 'vitest';
import { ResearchLoop } from '../../src/core/loop.js';
import { AgentRegistry, endInstance, newInstance } from '../../src/core/agents/registry.js';
import { silentLogger } from '../../src/log.js';
import { makeRepo, TRAIN, EVALUATE, baseConfig, setConstant } from '../helpers/repo.js';
import { cleanedUpAfterEach, finished, rejection, startWithBaseline } from '../helpers/loop.js';

const { repos, loops } = cleanedUpAfterEach();

describe('integrity with several agents on one ledger', () => {
  it('keep verifies the chain in full before it decides, even right after a read skipped the full pass', async () => {
    const repo = makeRepo({ 'train.mjs': TRAIN, 'evaluate.mjs': EVALUATE }, baseConfig());
    repos.push(repo);
    const loop = new ResearchLoop({ repo: repo.dir, logger: silentLogger() });
    loops.push(loop);
    await loop.claim();
    await startWithBaseline(loop);
    // Another agent is registered: from now on this server expects another connection to write.
    const instance = newInstance();
    new AgentRegistry(loop.ledger.db, instance).register('b', '/nowhere');
    endInstance(instance);
    setConstant(repo, 'SCORE', '1.5'); // worse than the baseline: not keepable on its merits
    const e = await finished(loop, (await loop.runExperiment({ description: 'worse' })).id);
    expect(e.state).toBe('measured');
    await loop.status(); // a read: verifies in full (the first since the server started)

    // A forged metric, written through another connection, as a proposer could.
    const forger = new Database(loop.ledger.path);
    forger.prepare('UPDATE experiments SET metric = 0.1 WHERE id = ?').run(e.id);
    forger.close();
    await loop.status(); // a read within 30 s of the last full pass may not look yet
    const refused = await rejection(loop.keep({ id: e.id }));
    expect(refused.code).toBe('tampered');
    expect(refused.message).toContain(`experiments row ${e.id}`);
  });
});
