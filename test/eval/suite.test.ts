// Suite loading: defaults, paths beside the case or in its folder, and every problem named by file:line:col with what to do.
import { describe, it, expect, afterEach } from 'vitest';
import { join } from 'node:path';
import { loadSuite } from '../../src/eval/suite.js';
import { isRatchetError } from '../../src/core/errors.js';
import { caseYaml, makeSuiteRepo, type SuiteRepo } from './helpers.js';

let repo: SuiteRepo | undefined;
afterEach(() => repo?.cleanup());

function problemsOf(files: Record<string, string>): string[] {
  repo = makeSuiteRepo(files);
  try {
    loadSuite(repo.dir);
  } catch (err) {
    if (!isRatchetError(err)) throw err;
    expect(err.hint).toContain('Fix each file');
    return err.details?.problems as string[];
  }
  throw new Error('the suite loaded');
}

describe('loading a suite', () => {
  it('applies defaults, sorts cases by id, names assertions <kind>-<n> and resolves prompt and files', () => {
    repo = makeSuiteRepo({
      'evals/cases/b.yaml': caseYaml(['contains: x', 'regex: "^- "', 'name: short\n    maxWords: 5', 'contains: y']),
      'evals/cases/a.json': JSON.stringify({ promptFile: 'prompt.md', files: ['notes.txt'], heldOut: true, assertions: [{ json: true }] }),
      'evals/cases/a/prompt.md': 'From the folder.',
      'evals/cases/a/notes.txt': 'notes',
      'evals/cases/README.md': 'not a case',
    });
    const suite = loadSuite(repo.dir);
    expect(suite.settings).toMatchObject({ skill: join(repo.dir, 'SKILL.md'), trials: 3, concurrency: 4, timeoutSeconds: 300 });
    expect(suite.settings.agent).toBeUndefined();
    expect(suite.cases.map((c) => c.id)).toEqual(['a', 'b']);
    const [a, b] = suite.cases;
    expect(a).toMatchObject({ prompt: 'From the folder.', heldOut: true, files: [{ source: join(repo.dir, 'evals/cases/a/notes.txt'), target: 'notes.txt' }] });
    expect(b!.assertions.map((x) => x.name)).toEqual(['contains-1', 'regex-1', 'short', 'contains-2']);
  });

  it('reads suite.yaml settings, with the skill relative to the repo', () => {
    repo = makeSuiteRepo({
      'evals/suite.yaml': 'skill: skills/notes\nagent: "my-agent --fast"\ntrials: 5\nconcurrency: 2\ntimeoutSeconds: 1.5\njudge: "judge-cmd"\n',
      'evals/cases/one.yml': caseYaml(['judge: "Is it short?"']),
    });
    expect(loadSuite(repo.dir).settings).toEqual({ skill: join(repo.dir, 'skills/notes'), agent: 'my-agent --fast', trials: 5, concurrency: 2, timeoutSeconds: 1.5, judge: 'judge-cmd' });
  });

  it('says where to put cases when the suite folder is missing or empty', () => {
    repo = makeSuiteRepo({ 'other.txt': '' });
    expect(() => loadSuite(repo!.dir)).toThrow(/No eval suite at evals: evals\/cases\/ does not exist/);
    repo.write('evals/cases/.keep', '');
    expect(() => loadSuite(repo!.dir)).toThrow(/evals\/cases: holds no case files/);
  });
});

describe('suite problems name file:line:col', () => {
  it('a bad value, an unknown key (a typo), and a regex the engine cannot run', () => {
    const problems = problemsOf({
      'evals/cases/deadline.yaml': ['prompt: "Summarize."', 'assertions:', '  - contains: Friday', '    ignorecase: true', '  - notContains: "As an AI"', '  - regex: "(?<=a)b"', '  - maxWords: -3', ''].join('\n'),
    });
    expect(problems[0]).toMatch(/^evals\/cases\/deadline\.yaml:4:5: assertions\[0\]\.ignorecase is not a known key; check its spelling \(known here: name, ignoreCase, contains/);
    expect(problems[1]).toMatch(/^evals\/cases\/deadline\.yaml:6:12: assertions\[2\]\.regex uses lookaround/);
    expect(problems[2]).toBe('evals/cases/deadline.yaml:7:15: assertions[3].maxWords must be a positive whole number');
    expect(problems).toHaveLength(3);
  });

  it('an assertion with no kind or two kinds, ignoreCase where it means nothing, and json: false', () => {
    const problems = problemsOf({
      'evals/cases/c.yaml': caseYaml(['name: lonely', 'contains: a\n    maxChars: 3', 'maxChars: 3\n    ignoreCase: true', 'json: false']),
    });
    expect(problems).toEqual([
      expect.stringMatching(/^evals\/cases\/c\.yaml:3:5: assertions\[0\] needs one assertion kind: contains, notContains/),
      'evals/cases/c.yaml:4:5: assertions[1] has contains and maxChars; give each its own list item',
      'evals/cases/c.yaml:7:17: assertions[2].ignoreCase applies only to contains, notContains and regex',
      expect.stringMatching(/^evals\/cases\/c\.yaml:8:11: assertions\[3\]\.json must be true/),
    ]);
  });

  it('prompt and promptFile together or neither, no assertions, and a missing key at the mapping that lacks it', () => {
    expect(problemsOf({ 'evals/cases/both.yaml': 'prompt: a\npromptFile: p.md\nassertions: [{contains: a}]\n' })).toEqual([
      'evals/cases/both.yaml:1:1: has both prompt and promptFile; keep one',
    ]);
    repo!.cleanup();
    expect(problemsOf({ 'evals/cases/none.yaml': '# a comment\nheldOut: true\n' })).toEqual([
      'evals/cases/none.yaml:2:1: assertions is required',
    ]);
    repo!.cleanup();
    expect(problemsOf({ 'evals/cases/empty.yaml': 'prompt: a\nassertions: []\n' })).toEqual([
      'evals/cases/empty.yaml:2:13: assertions needs at least one assertion: a case without one would always pass',
    ]);
  });

  it('YAML and JSON syntax errors, with the position of the parser', () => {
    const problems = problemsOf({
      'evals/cases/yaml-bad.yaml': 'prompt: a\nassertions:\n  - contains: [x\n',
      'evals/cases/json-bad.json': '{\n  "prompt": "a",\n  "assertions": [ {"contains": "x"} \n}\n',
      'evals/cases/dup.yaml': 'prompt: a\nprompt: b\nassertions: [{contains: a}]\n',
    });
    expect(problems).toEqual([
      expect.stringMatching(/^evals\/cases\/dup\.yaml:2:1: is not valid YAML or JSON: Map keys must be unique/),
      'evals/cases/json-bad.json:4:1: is not valid YAML or JSON: Flow sequence in block collection must be sufficiently indented and end with a ]',
      'evals/cases/yaml-bad.yaml:4:1: is not valid YAML or JSON: Flow sequence in block collection must be sufficiently indented and end with a ]',
    ]);
  });

  it('case ids that are not names, a repeated id, repeated assertion names, and a judge with no judge command', () => {
    const problems = problemsOf({
      'evals/cases/has space.yaml': caseYaml(['contains: a']),
      'evals/cases/twice.yaml': caseYaml(['contains: a']),
      'evals/cases/twice.json': JSON.stringify({ prompt: 'a', assertions: [{ contains: 'a' }] }),
      'evals/cases/names.yaml': caseYaml(['name: contains-2\n    contains: a', 'contains: b', 'name: "has space"\n    contains: c', 'judge: "Short?"']),
    });
    expect(problems).toEqual([
      expect.stringMatching(/^evals\/cases\/has space\.yaml: the case id "has space" \(the file name\) may use only letters/),
      expect.stringMatching(/^evals\/cases\/names\.yaml:6:11: assertions\[2\]\.name must use only letters, digits/),
      'evals/cases/twice.yaml: repeats the case id "twice" of evals/cases/twice.json; rename one of them',
    ]);
    repo!.write('evals/cases/names.yaml', caseYaml(['name: contains-2\n    contains: a', 'contains: b', 'contains: c', 'judge: "Short?"']));
    repo!.write('evals/cases/has space.yaml', '');
    const again = (() => {
      try {
        loadSuite(repo!.dir);
      } catch (err) {
        return (err as { details: { problems: string[] } }).details.problems;
      }
      return [];
    })();
    expect(again).toEqual([
      'evals/cases/has space.yaml: the case id "has space" (the file name) may use only letters, digits, ".", "_" and "-"; rename the file',
      'evals/cases/names.yaml:6:5: assertions[2] is named "contains-2" like an earlier assertion; give it its own name',
      expect.stringMatching(/^evals\/cases\/names\.yaml:7:12: assertions\[3\]\.judge needs a judge command: set judge: in suite\.yaml/),
      'evals/cases/twice.yaml: repeats the case id "twice" of evals/cases/twice.json; rename one of them',
    ]);
  });

  it('files and promptFile that are not there, or escape the suite', () => {
    const problems = problemsOf({
      'evals/cases/f.yaml': 'promptFile: missing.md\nfiles:\n  - notes.txt\n  - ../../secret\nassertions: [{fileExists: /etc/passwd}]\n',
    });
    expect(problems).toEqual([
      'evals/cases/f.yaml:4:5: files[1] must be a path inside the suite, relative and without ".."',
      'evals/cases/f.yaml:5:27: assertions[0].fileExists must be a path inside the suite, relative and without ".."',
    ]);
    repo!.write('evals/cases/f.yaml', 'promptFile: missing.md\nfiles:\n  - notes.txt\nassertions: [{contains: a}]\n');
    expect(() => loadSuite(repo!.dir)).toThrow(
      /evals\/cases\/f\.yaml:1:13: promptFile names missing\.md, which is not in evals\/cases\/ or evals\/cases\/f\/; add the file or fix the path\n.*f\.yaml:3:5: files\[0\] names notes\.txt/,
    );
  });

  it('suite.yaml: unknown keys, out-of-range numbers, and two settings files', () => {
    const problems = problemsOf({
      'evals/suite.yaml': 'trails: 3\nconcurrency: 0\ntimeoutSeconds: -1\n',
      'evals/cases/a.yaml': caseYaml(['contains: a']),
    });
    expect(problems).toEqual([
      'evals/suite.yaml:1:1: trails is not a known key; check its spelling (known here: skill, agent, trials, concurrency, timeoutSeconds, judge)',
      'evals/suite.yaml:2:14: concurrency must be a whole number from 1 to 64',
      'evals/suite.yaml:3:17: timeoutSeconds must be above 0',
    ]);
    repo!.write('evals/suite.yaml', '');
    repo!.write('evals/suite.json', '{}');
    expect(() => loadSuite(repo!.dir)).toThrow(/evals: has evals\/suite\.yaml and evals\/suite\.json; keep one/);
  });

  it('a jsonSchema with a keyword outside the subset', () => {
    const problems = problemsOf({
      'evals/cases/s.yaml': caseYaml(['jsonSchema:\n      type: object\n      properties:\n        title: {type: string, pattern: "x"}']),
    });
    expect(problems).toEqual([expect.stringMatching(/^evals\/cases\/s\.yaml:6:31: assertions\[0\]\.jsonSchema\.properties\.title\.pattern is not a known key; check its spelling \(known here: type, required/)]);
  });
});
