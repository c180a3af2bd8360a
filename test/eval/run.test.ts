// runEval with real agent commands: lines and rates, errors apart from fails, trials, the concurrency limit, timeouts, splits, --json, flags.
import { describe, it, expect, afterEach } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseCases } from '../../src/core/cases.js';
import { caseYaml, makeSuiteRepo, printing, type SuiteRepo } from './helpers.js';

let repo: SuiteRepo | undefined;
afterEach(() => repo?.cleanup());

describe('ratchet eval runs and scores', () => {
  it('prints case and assert lines by case then trial, then the rates', async () => {
    repo = makeSuiteRepo({
      'SKILL.md': 'skill',
      'evals/suite.yaml': `trials: 2\nagent: "${printing('- Due Friday').replace(/"/g, '\\"')}"\n`,
      'evals/cases/b-short.yaml': caseYaml(['maxWords: 2', 'name: bullet\n    regex: "^- "']),
      'evals/cases/a-deadline.yaml': caseYaml(['contains: Friday', 'notContains: Monday']),
    });
    const r = await repo.eval();
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(
      [
        'case a-deadline 1 pass',
        'assert a-deadline 1 contains-1 pass',
        'assert a-deadline 1 notContains-1 pass',
        'case a-deadline 2 pass',
        'assert a-deadline 2 contains-1 pass',
        'assert a-deadline 2 notContains-1 pass',
        'case b-short 1 fail',
        'assert b-short 1 maxWords-1 fail',
        'assert b-short 1 bullet pass',
        'case b-short 2 fail',
        'assert b-short 2 maxWords-1 fail',
        'assert b-short 2 bullet pass',
        'pass_rate: 75',
        'cases_passed: 50',
        'errors: 0',
        '',
      ].join('\n'),
    );
  });

  it('a failing agent is an error, not a fail: no assert lines, and its assertions count against pass_rate', async () => {
    repo = makeSuiteRepo({
      'SKILL.md': 'skill',
      // The hard case crashes; the easy one passes. A crash must not look better than a fail.
      'evals/suite.yaml': `trials: 1\nagent: 'if [ "$RATCHET_CASE" = hard ]; then echo boom >&2; exit 3; fi; echo ok'\n`,
      'evals/cases/easy.yaml': caseYaml(['contains: ok']),
      'evals/cases/hard.yaml': caseYaml(['contains: ok', 'maxWords: 5', 'maxChars: 10']),
    });
    const r = await repo.eval();
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('case easy 1 pass\nassert easy 1 contains-1 pass\ncase hard 1 error\npass_rate: 25\ncases_passed: 50\nerrors: 1\n');
    expect(r.stderr).toBe('ratchet eval: hard trial 1 is an error: the agent exited with code 3: boom\n');
  });

  it('empty output, a timeout (the whole process group killed) and a command that cannot start are errors; all errors exit 1', async () => {
    repo = makeSuiteRepo({ 'SKILL.md': 'skill', 'evals/cases/c.yaml': caseYaml(['notContains: x']) });
    const empty = await repo.eval({ agent: 'cat > /dev/null; echo "   "', trials: '1' });
    expect(empty.stdout).toBe('case c 1 error\npass_rate: 0\ncases_passed: 0\nerrors: 1\n');
    expect(empty.stderr).toContain('c trial 1 is an error: the agent printed nothing on stdout');
    expect(empty.code).toBe(1);
    expect(empty.stderr).toContain('every case-trial was an error');

    const pidFile = join(repo.dir, 'child.pid');
    const slow = await repo.eval({ agent: `sleep 60 & echo $! > '${pidFile}'; echo partial; wait`, trials: '1', timeout: '0.5' });
    expect(slow.stdout).toContain('case c 1 error\n');
    expect(slow.stderr).toContain('the agent was killed at the timeout of 0.5 s');
    expect(isRunning(Number(readFileSync(pidFile, 'utf8')))).toBe(false);

    const missing = await repo.eval({ agent: 'no-such-agent-command-here', trials: '1' });
    expect(missing.stderr).toMatch(/the agent exited with code 127: .*no-such-agent-command-here/);
  });

  it('runs each case --trials times with RATCHET_CASE, RATCHET_TRIAL, RATCHET_SKILL and the prompt on stdin, in a fresh dir holding the files', async () => {
    repo = makeSuiteRepo({
      'skills/notes/SKILL.md': 'skill',
      'evals/suite.yaml': 'skill: skills/notes\n',
      'evals/cases/c.yaml': 'promptFile: prompt.md\nfiles: [notes.txt]\nassertions:\n  - contains: "c|"\n',
      'evals/cases/c/prompt.md': 'Summarize notes.txt',
      'evals/cases/c/notes.txt': 'the notes',
    });
    const log = join(repo.dir, 'runs.log');
    // Each run leaves a mark in its working dir: a fresh dir never holds an earlier run's mark.
    const agent = `p=$(cat); n=$(cat notes.txt); [ -e mark ] && echo reused; touch mark; echo "$RATCHET_CASE|$RATCHET_TRIAL|$RATCHET_SKILL|$p|$n" | tee -a '${log}'`;
    const r = await repo.eval({ agent, trials: '3', concurrency: '1' });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^case c 1 pass\n.*\ncase c 2 pass\n.*\ncase c 3 pass\n/);
    const runs = readFileSync(log, 'utf8').trim().split('\n').sort();
    expect(runs).toEqual([1, 2, 3].map((t) => `c|${t}|${join(repo!.dir, 'skills/notes')}|Summarize notes.txt|the notes`));
  });

  it('never runs more case-trials at once than --concurrency, and does reach it', async () => {
    repo = makeSuiteRepo({ 'SKILL.md': 'skill', 'evals/cases/a.yaml': caseYaml(['contains: ok']), 'evals/cases/b.yaml': caseYaml(['contains: ok']) });
    const dir = join(repo.dir, 'running');
    // Each agent marks itself running, waits (up to a while) for one more than the limit to be running, records how
    // many were, and leaves. Honoured, the limit is never exceeded; unlimited, the third arrives and is counted.
    const agent = (limit: number) =>
      `mkdir -p '${dir}'; touch '${dir}'/"$RATCHET_CASE-$RATCHET_TRIAL"; i=0; ` +
      `while set -- '${dir}'/*; [ $# -le ${limit} ] && [ $i -lt 10 ]; do sleep 0.1; i=$((i+1)); done; ` +
      `set -- '${dir}'/*; echo $# >> '${repo!.dir}/seen.${limit}'; rm '${dir}'/"$RATCHET_CASE-$RATCHET_TRIAL"; echo ok`;
    for (const limit of [1, 2, 3]) {
      const trials = limit === 1 ? 1 : 3; // at limit 1 every agent waits out its while
      const r = await repo.eval({ agent: agent(limit), trials: String(trials), concurrency: String(limit) });
      expect(r.code).toBe(0);
      const seen = readFileSync(join(repo.dir, `seen.${limit}`), 'utf8').trim().split('\n').map(Number);
      expect(seen).toHaveLength(2 * trials);
      expect(Math.max(...seen)).toBe(limit);
    }
  });

  it('sums the usage agents report in RATCHET_USAGE_FILE, and prints no usage when none is reported', async () => {
    repo = makeSuiteRepo({ 'SKILL.md': 'skill', 'evals/cases/c.yaml': caseYaml(['contains: ok']) });
    const r = await repo.eval({ agent: `echo '{"tokens": 100, "costUsd": 0.0125}' > "$RATCHET_USAGE_FILE"; echo ok`, trials: '2' });
    expect(r.stdout).toMatch(/errors: 0\ntokens: 200\ncost_usd: 0.025\n$/);
    const none = await repo.eval({ agent: 'echo ok', trials: '2' });
    expect(none.stdout).toMatch(/errors: 0\n$/);
  });
});

describe('held-out cases', () => {
  const files = {
    'SKILL.md': 'skill',
    'evals/suite.yaml': `trials: 1\nagent: 'if [ "$RATCHET_CASE" = secret ]; then echo no; else echo yes; fi'\n`,
    'evals/cases/open.yaml': caseYaml(['contains: yes']),
    'evals/cases/secret.yaml': caseYaml(['contains: yes', 'contains: no'], 'heldOut: true\n'),
  };

  it('with --split all (the default) are scored apart and never printed as lines', async () => {
    repo = makeSuiteRepo(files);
    const r = await repo.eval();
    expect(r.stdout).toBe('case open 1 pass\nassert open 1 contains-1 pass\npass_rate: 100\ncases_passed: 100\nerrors: 0\nheld_out_pass_rate: 50\n');
  });

  it('--split train leaves them out entirely; --split held-out prints only them', async () => {
    repo = makeSuiteRepo(files);
    expect((await repo.eval({ split: 'train' })).stdout).toBe('case open 1 pass\nassert open 1 contains-1 pass\npass_rate: 100\ncases_passed: 100\nerrors: 0\n');
    expect((await repo.eval({ split: 'held-out' })).stdout).toBe(
      'case secret 1 fail\nassert secret 1 contains-1 fail\nassert secret 1 contains-2 pass\npass_rate: 50\ncases_passed: 0\nerrors: 0\n',
    );
  });

  it('a split with no cases exits 1 and says what to do', async () => {
    repo = makeSuiteRepo({ ...files, 'evals/cases/secret.yaml': caseYaml(['contains: yes']) });
    const r = await repo.eval({ split: 'held-out' });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('the suite has no held-out cases');
  });
});

describe('--json and flags', () => {
  it('--json prints the same content as one document as the lines say', async () => {
    repo = makeSuiteRepo({ 'SKILL.md': 'skill', 'evals/suite.yaml': 'agent: "echo Friday"\ntrials: 2\n', 'evals/cases/c.yaml': caseYaml(['contains: Friday', 'maxChars: 3']) });
    const lines = await repo.eval();
    const json = await repo.eval({ json: true });
    const doc = JSON.parse(json.stdout);
    expect(doc).toEqual({
      cases: [1, 2].map((trial) => ({ case: 'c', trial, status: 'fail', assertions: [{ name: 'contains-1', status: 'pass' }, { name: 'maxChars-1', status: 'fail' }] })),
      pass_rate: 50,
      cases_passed: 0,
      errors: 0,
    });
    const fromLines = parseCases(lines.stdout)!.map((t) => ({ case: t.case, trial: t.trial, status: t.outcome, assertions: Object.entries(t.asserts).map(([name, ok]) => ({ name, status: ok ? 'pass' : 'fail' })) }));
    expect(doc.cases).toEqual(fromLines);
  });

  it('--agent beats suite.yaml; --trials, --concurrency and --timeout beat it too; bad values exit 2', async () => {
    repo = makeSuiteRepo({ 'SKILL.md': 'skill', 'evals/suite.yaml': 'agent: "echo suite"\ntrials: 1\n', 'evals/cases/c.yaml': caseYaml(['contains: flag']) });
    expect((await repo.eval({ agent: 'echo flag', trials: '2' })).stdout).toMatch(/^case c 1 pass\n.*\ncase c 2 pass\n/);
    for (const [flags, message] of [
      [{ trials: '0' }, '--trials must be a whole number from 1 to 100'],
      [{ concurrency: 'many' }, '--concurrency must be a whole number from 1 to 64'],
      [{ timeout: '-1' }, '--timeout must be a number of seconds above 0'],
      [{ split: 'test' }, '--split must be one of train, held-out, all'],
      [{ agent: ' ' }, '--agent is empty'],
      [{ collect: 'a', score: 'b' }, '--collect and --score cannot be used together'],
    ] as const) {
      const r = await repo.eval(flags);
      expect(r.code, message).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr).toContain(message);
      expect(r.stderr).toContain('Next: ');
    }
  });

  it('a bad suite or a missing skill exits 2 before any agent runs', async () => {
    repo = makeSuiteRepo({ 'evals/cases/c.yaml': caseYaml(['contains: a']) });
    const marker = join(repo.dir, 'ran');
    const noSkill = await repo.eval({ agent: `touch '${marker}'; echo a` });
    expect(noSkill.code).toBe(2);
    expect(noSkill.stderr).toContain('The skill under test, SKILL.md, does not exist.');
    repo.write('SKILL.md', 'skill');
    repo.write('evals/cases/c.yaml', caseYaml(['contain: a']));
    const bad = await repo.eval({ agent: `touch '${marker}'; echo a` });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('evals/cases/c.yaml:3:5: assertions[0].contain is not a known key');
    expect(existsSync(marker)).toBe(false);
  });
});

function isRunning(pid: number): boolean {
  try {
    // A zombie waiting for its reaper is dead already.
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}
