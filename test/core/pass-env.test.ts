// run.passEnv: named variables of the server's environment reach the run step, never evaluate, and never the config or ledger.
import { describe, it, expect, afterEach } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ResearchLoop } from '../../src/core/loop.js';
import { silentLogger } from '../../src/log.js';
import { makeRepo, baseConfig } from '../helpers/repo.js';
import { cleanedUpAfterEach, startWithBaseline } from '../helpers/loop.js';

const { repos, loops } = cleanedUpAfterEach();
afterEach(() => {
  delete process.env.RATCHET_TEST_SECRET;
  delete process.env.RATCHET_TEST_OTHER;
});

describe('run.passEnv', () => {
  it('passes the named variables to the run only; others and evaluate see none, and the value is stored nowhere', async () => {
    process.env.RATCHET_TEST_SECRET = 'sk-test-123';
    process.env.RATCHET_TEST_OTHER = 'not-listed';
    const repo = makeRepo(
      {
        'train.mjs': 'console.log(`run sees ${process.env.RATCHET_TEST_SECRET ?? "none"} ${process.env.RATCHET_TEST_OTHER ?? "none"}`);\n',
        'evaluate.mjs': 'console.log(`evaluate sees ${process.env.RATCHET_TEST_SECRET ?? "none"}`); console.log("score: 1");\n',
      },
      baseConfig({
        run: { command: 'node train.mjs', budgetSeconds: 20, graceSeconds: 1, passEnv: ['RATCHET_TEST_SECRET', 'RATCHET_TEST_UNSET'] },
        evaluate: { command: 'node evaluate.mjs', budgetSeconds: 20 },
      }),
    );
    repos.push(repo);
    const loop = new ResearchLoop({ repo: repo.dir, logger: silentLogger() });
    loops.push(loop);
    const baseline = await startWithBaseline(loop);
    expect(baseline.state).toBe('measured');
    const run = await loop.readLog({ id: baseline.id, phase: 'run' });
    expect(run.lines.map((l) => l.text).join('\n')).toContain('run sees sk-test-123 none');
    const evaluate = await loop.readLog({ id: baseline.id, phase: 'evaluate' });
    expect(evaluate.lines.map((l) => l.text).join('\n')).toContain('evaluate sees none');
    await loop.settle();
    expect(readFileSync(join(repo.dir, '.ratchet', 'ratchet.db')).includes(Buffer.from('sk-test-123'))).toBe(false);
  });
});
