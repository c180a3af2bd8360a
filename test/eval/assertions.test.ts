// Every assertion kind, passing and failing, on real output and a real working dir; commands and judges are real processes.
import { describe, it, expect, afterEach } from 'vitest';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkAssertions, type CheckOutcome } from '../../src/eval/assertions.js';
import { loadSuite } from '../../src/eval/suite.js';
import { caseYaml, makeSuiteRepo, type SuiteRepo } from './helpers.js';

let repo: SuiteRepo | undefined;
afterEach(() => repo?.cleanup());

/** Checks `output` against one case made of `assertions`; workDir starts with `files`. */
async function check(assertions: string[], output: string, opts: { suite?: string; files?: Record<string, string>; timeoutSeconds?: number } = {}): Promise<CheckOutcome> {
  repo = makeSuiteRepo({ 'evals/cases/c.yaml': caseYaml(assertions), ...(opts.suite ? { 'evals/suite.yaml': opts.suite } : {}) });
  const suite = loadSuite(repo.dir);
  const workDir = join(repo.dir, 'work');
  const scratch = join(repo.dir, 'scratch');
  mkdirSync(workDir);
  mkdirSync(scratch);
  for (const [name, content] of Object.entries(opts.files ?? {})) writeFileSync(join(workDir, name), content);
  return checkAssertions(suite.cases[0]!.assertions, output, {
    caseId: 'c',
    trial: 2,
    workDir,
    scratch,
    suiteDir: suite.dir,
    judge: suite.settings.judge,
    timeoutSeconds: opts.timeoutSeconds ?? 30,
  });
}

async function verdicts(assertions: string[], output: string, opts?: Parameters<typeof check>[2]): Promise<Record<string, boolean>> {
  const outcome = await check(assertions, output, opts);
  if (!outcome.ok) throw new Error(outcome.reason);
  return Object.fromEntries(outcome.results.map((r) => [r.name, r.pass]));
}

describe('text assertions', () => {
  it('contains and notContains, case-sensitive unless ignoreCase', async () => {
    const items = ['name: has\n    contains: Friday', 'name: has-lower\n    contains: friday', 'name: has-any\n    contains: friday\n    ignoreCase: true', 'name: clean\n    notContains: "As an AI"', 'name: dirty\n    notContains: "as an ai"\n    ignoreCase: true'];
    expect(await verdicts(items, 'Due Friday. As an AI, I think so.')).toEqual({ has: true, 'has-lower': false, 'has-any': true, clean: false, dirty: false });
    expect(await verdicts(items, 'Due Monday.')).toEqual({ has: false, 'has-lower': false, 'has-any': false, clean: true, dirty: true });
  });

  it('regex is multiline (RE2), with ignoreCase', async () => {
    const items = ['name: bullet\n    regex: "^- "', 'name: word\n    regex: "\\\\bdeadline\\\\b"\n    ignoreCase: true'];
    expect(await verdicts(items, 'Summary:\n- one\n- DEADLINE friday')).toEqual({ bullet: true, word: true });
    expect(await verdicts(items, 'Summary: -one, deadlines')).toEqual({ bullet: false, word: false });
  });

  it('maxWords counts whitespace-separated words; maxChars counts characters of the trimmed output', async () => {
    const items = ['maxWords: 3', 'maxChars: 5'];
    expect(await verdicts(items, '  one two\n\tthree  \n')).toEqual({ 'maxWords-1': true, 'maxChars-1': false });
    expect(await verdicts(items, 'ééééé\n')).toEqual({ 'maxWords-1': true, 'maxChars-1': true });
    expect(await verdicts(items, 'one two three four')).toEqual({ 'maxWords-1': false, 'maxChars-1': false });
  });
});

describe('JSON assertions', () => {
  const schema = 'jsonSchema:\n      type: object\n      required: [title]\n      additionalProperties: false\n      properties:\n        title: {type: string, minLength: 2, maxLength: 10}\n        score: {type: integer, minimum: 0, maximum: 5}\n        tags: {type: array, items: {enum: [a, b]}, maxItems: 2}';

  it('json passes on any JSON value and fails on prose or fenced JSON', async () => {
    expect(await verdicts(['json: true'], '{"a": 1}\n')).toEqual({ 'json-1': true });
    expect(await verdicts(['json: true'], '[1, 2]')).toEqual({ 'json-1': true });
    expect(await verdicts(['json: true'], '```json\n{"a": 1}\n```')).toEqual({ 'json-1': false });
  });

  it('jsonSchema checks type, required, properties, items, enum and the bounds', async () => {
    expect(await verdicts([schema], '{"title": "Notes", "score": 3, "tags": ["a", "b"]}')).toEqual({ 'jsonSchema-1': true });
    for (const bad of [
      'not json',
      '["title"]',
      '{"score": 3}',
      '{"title": "N"}',
      '{"title": "Notes that go on"}',
      '{"title": "Notes", "score": 2.5}',
      '{"title": "Notes", "score": 6}',
      '{"title": "Notes", "tags": ["c"]}',
      '{"title": "Notes", "tags": ["a", "b", "a"]}',
      '{"title": "Notes", "extra": 1}',
    ]) {
      const outcome = await check([schema], bad);
      expect(outcome.ok && outcome.results[0]!.pass, bad).toBe(false);
      expect(outcome.ok && outcome.results[0]!.detail, bad).toBeTruthy();
    }
  });
});

describe('working-dir assertions', () => {
  it('fileExists looks in the working dir', async () => {
    const items = ['name: summary\n    fileExists: summary.md', 'name: other\n    fileExists: sub/other.md'];
    expect(await verdicts(items, 'done', { files: { 'summary.md': '# hi' } })).toEqual({ summary: true, other: false });
  });

  it('command passes on exit 0, gets the output on stdin and in RATCHET_OUTPUT_FILE, and runs in the working dir', async () => {
    const items = [
      'name: stdin\n    command: "grep -q Friday"',
      'name: file\n    command: "grep -q Friday \\"$RATCHET_OUTPUT_FILE\\""',
      'name: cwd\n    command: "test -f notes.txt && test \\"$RATCHET_CASE $RATCHET_TRIAL\\" = \\"c 2\\""',
      'name: suite-dir\n    command: "test -f \\"$RATCHET_SUITE_DIR/cases/c.yaml\\""',
    ];
    expect(await verdicts(items, 'Due Friday', { files: { 'notes.txt': 'n' } })).toEqual({ stdin: true, file: true, cwd: true, 'suite-dir': true });
    expect(await verdicts(items, 'Due Monday')).toEqual({ stdin: false, file: false, cwd: false, 'suite-dir': true });
  });

  it('a command that runs past the timeout fails, and does not hold up the check', async () => {
    expect(await verdicts(['command: "sleep 30"', 'contains: x'], 'x', { timeoutSeconds: 0.5 })).toEqual({ 'command-1': false, 'contains-1': true });
  });
});

describe('judge', () => {
  // The judge sees the question, a blank line, then the output; it answers yes when the output names Friday.
  const suite = (answer: string) => `judge: "${answer}"\n`;
  const judgeScript = `read q; read blank; out=$(cat); case "$q|$blank|$out" in "Deadline?||"*Friday*) echo 'Yes, it does.';; *) echo no;; esac`;

  it('passes on yes and fails on no', async () => {
    const items = ['judge: "Deadline?"'];
    const opts = { suite: suite(judgeScript.replace(/"/g, '\\"')) };
    expect(await verdicts(items, 'It is due Friday.', opts)).toEqual({ 'judge-1': true });
    expect(await verdicts(items, 'It is due Monday.', opts)).toEqual({ 'judge-1': false });
  });

  it('a judge that answers neither, or fails, is a harness error, not a fail', async () => {
    const maybe = await check(['judge: "Deadline?"'], 'x', { suite: suite('echo maybe') });
    expect(maybe).toEqual({ ok: false, reason: 'assertion judge-1: the judge answered neither yes nor no: "maybe\\n"' });
    const broken = await check(['judge: "Deadline?"'], 'x', { suite: suite('echo oops >&2; exit 3') });
    expect(broken).toEqual({ ok: false, reason: 'assertion judge-1: the judge exited with code 3: oops' });
  });
});
