// --collect writes what the agent did; --score scores it without running any agent, and prints what one-shot prints.
import { describe, it, expect, afterEach } from 'vitest';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { caseYaml, makeSuiteRepo, type SuiteRepo } from './helpers.js';

let repo: SuiteRepo | undefined;
afterEach(() => repo?.cleanup());

const AGENT = [
  'if [ "$RATCHET_CASE" = broken ]; then exit 4; fi',
  'echo "{\\"tokens\\": 10}" > "$RATCHET_USAGE_FILE"',
  'if [ "$RATCHET_TRIAL" = 2 ]; then echo "draft" > summary.md; fi',
  'echo "Due Friday, trial $RATCHET_TRIAL"',
].join('; ');

function suiteFiles(): Record<string, string> {
  return {
    'SKILL.md': 'skill',
    'evals/suite.yaml': `trials: 2\nagent: '${AGENT}'\n`,
    'evals/cases/broken.yaml': caseYaml(['contains: Friday']),
    'evals/cases/notes.yaml': caseYaml(['contains: Friday', 'fileExists: summary.md', 'name: summary-text\n    command: "grep -q draft summary.md"', 'maxWords: 4']),
    'evals/cases/secret.yaml': caseYaml(['contains: Monday'], 'heldOut: true\n'),
  };
}

describe('--collect then --score', () => {
  it('prints the same lines as one run that does both, without running the agent or needing the skill to score', async () => {
    repo = makeSuiteRepo(suiteFiles());
    const oneShot = await repo.eval();
    expect(oneShot.code).toBe(0);

    const collected = await repo.eval({ collect: 'out' });
    expect(collected.code).toBe(0);
    expect(collected.stdout).toBe('collected 6 case-trials into out (2 errors)\n');
    expect(collected.stderr).toContain('broken trial 1 is an error: the agent exited with code 4');
    const trial = join(repo.dir, 'out', 'notes', '2');
    expect(readFileSync(join(trial, 'output.txt'), 'utf8')).toBe('Due Friday, trial 2\n');
    expect(JSON.parse(readFileSync(join(trial, 'trial.json'), 'utf8'))).toEqual({ status: 'ok', usage: { tokens: 10 } });
    expect(readFileSync(join(trial, 'files', 'summary.md'), 'utf8')).toBe('draft\n');
    expect(JSON.parse(readFileSync(join(repo.dir, 'out', 'broken', '1', 'trial.json'), 'utf8'))).toMatchObject({ status: 'error' });

    // The evaluate step has the suite but runs no agent: an agent flag that would leave a mark must not.
    rmSync(join(repo.dir, 'SKILL.md'));
    const marker = join(repo.dir, 'agent-ran');
    const scored = await repo.eval({ score: 'out', agent: `touch '${marker}'; echo x` });
    expect(scored.code).toBe(0);
    expect(scored.stdout).toBe(oneShot.stdout);
    expect(scored.stdout).toMatch(/errors: 2\ntokens: 40\nheld_out_pass_rate: 0\n$/);
    expect(existsSync(marker)).toBe(false);

    // --json reads the same collection.
    repo.write('SKILL.md', 'skill');
    expect(JSON.parse((await repo.eval({ score: 'out', json: true })).stdout)).toEqual(JSON.parse((await repo.eval({ json: true })).stdout));
  });

  it('scores a missing or tampered record as an error, never a pass', async () => {
    repo = makeSuiteRepo(suiteFiles());
    await repo.eval({ collect: 'out', split: 'train' });
    rmSync(join(repo.dir, 'out', 'notes', '1'), { recursive: true });
    writeFileSync(join(repo.dir, 'out', 'notes', '2', 'output.txt'), '  \n');
    const r = await repo.eval({ score: 'out', split: 'train' });
    expect(r.stdout).toMatch(/^case broken 1 error\ncase broken 2 error\ncase notes 1 error\ncase notes 2 error\n/);
    expect(r.stderr).toContain('notes trial 1 is an error: was not collected (no readable trial.json)');
    expect(r.stderr).toContain('notes trial 2 is an error: the agent printed nothing on stdout');
    expect(r.code).toBe(1);
  });

  it('refuses a --collect folder it did not write and a --score folder nothing was collected into', async () => {
    repo = makeSuiteRepo({ ...suiteFiles(), 'mine/keep.txt': 'precious' });
    const collect = await repo.eval({ collect: 'mine' });
    expect(collect.code).toBe(2);
    expect(collect.stderr).toContain('mine already holds files that --collect did not write');
    expect(readFileSync(join(repo.dir, 'mine', 'keep.txt'), 'utf8')).toBe('precious');
    const score = await repo.eval({ score: 'mine' });
    expect(score.code).toBe(2);
    expect(score.stderr).toContain('Next: Run `ratchet eval --collect mine` first');

    // A folder an earlier --collect wrote is emptied and written again.
    expect((await repo.eval({ collect: 'out', split: 'held-out' })).code).toBe(0);
    expect(existsSync(join(repo.dir, 'out', 'secret', '1'))).toBe(true);
    await repo.eval({ collect: 'out', split: 'train' });
    expect(existsSync(join(repo.dir, 'out', 'secret'))).toBe(false);
  });
});
