// Loads an eval suite folder (suite.yaml + cases/*.yaml|json) into checked cases, or one error listing every problem by file:line:col.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, extname, join, relative, resolve } from 'node:path';
import { RatchetError } from '../core/errors.js';
import { SafeRegex } from '../core/safe-regex.js';
import { CaseSchema, ID_PATTERN, parseWith, problemAt, SuiteSettingsSchema, type AssertionInput, type AssertionKind, type JsonSchema } from './schema.js';
import { readSource, type SourceFile, type SuiteProblem } from './yaml-source.js';

export type Assertion =
  | { kind: 'contains' | 'notContains'; name: string; text: string; ignoreCase: boolean }
  | { kind: 'regex'; name: string; regex: SafeRegex }
  | { kind: 'maxWords' | 'maxChars'; name: string; limit: number }
  | { kind: 'json'; name: string }
  | { kind: 'jsonSchema'; name: string; schema: JsonSchema }
  | { kind: 'fileExists'; name: string; path: string }
  | { kind: 'command'; name: string; command: string }
  | { kind: 'judge'; name: string; question: string };

export interface EvalCase {
  id: string;
  /** The case file as shown in messages. */
  shown: string;
  prompt: string;
  /** Input files or folders, copied into the working dir under `target`. */
  files: { source: string; target: string }[];
  heldOut: boolean;
  assertions: Assertion[];
}

export interface SuiteSettings {
  /** Absolute path of the skill file or folder (it need not exist until an agent runs). */
  skill: string;
  agent?: string;
  trials: number;
  concurrency: number;
  timeoutSeconds: number;
  judge?: string;
}

export interface Suite {
  dir: string;
  settings: SuiteSettings;
  /** Sorted by id. */
  cases: EvalCase[];
}

export const DEFAULTS = { skill: 'SKILL.md', trials: 3, concurrency: 4, timeoutSeconds: 300 } as const;
const EXTENSIONS = ['.yaml', '.yml', '.json'];

export function loadSuite(repo: string, suiteArg = 'evals'): Suite {
  const dir = resolve(repo, suiteArg);
  const shown = (path: string) => relative(repo, path) || '.';
  const casesDir = join(dir, 'cases');
  if (!isDirectory(casesDir)) {
    throw new RatchetError(
      'config_invalid',
      `No eval suite at ${shown(dir)}: ${shown(casesDir)}/ does not exist.`,
      `Write one case per file as ${shown(casesDir)}/<case-id>.yaml (prompt and assertions), or pass the suite folder: ratchet eval DIR.`,
    );
  }
  const problems: SuiteProblem[] = [];
  const settingsFiles = EXTENSIONS.map((ext) => join(dir, `suite${ext}`)).filter((f) => existsSync(f));
  if (settingsFiles.length > 1) problems.push({ where: shown(dir), message: `has ${settingsFiles.map(shown).join(' and ')}; keep one` });
  const settings = readSettings(repo, settingsFiles[0], shown, problems);
  const cases = readCases(casesDir, shown, settings, problems);
  if (cases.length === 0 && problems.length === 0) problems.push({ where: shown(casesDir), message: 'holds no case files (<case-id>.yaml, .yml or .json)' });
  if (problems.length) throw suiteError(problems);
  return { dir, settings, cases };
}

/** One error for the whole suite, so a person fixes every problem in one pass. */
export function suiteError(problems: SuiteProblem[]): RatchetError {
  const lines = problems.map((p) => `${p.where}: ${p.message}`);
  return new RatchetError(
    'config_invalid',
    `The eval suite is invalid:\n${lines.map((l) => `  ${l}`).join('\n')}`,
    'Fix each file at the line and column named, then run ratchet eval again.',
    { problems: lines },
  );
}

function readSettings(repo: string, file: string | undefined, shown: (p: string) => string, problems: SuiteProblem[]): SuiteSettings {
  const defaults: SuiteSettings = { skill: resolve(repo, DEFAULTS.skill), trials: DEFAULTS.trials, concurrency: DEFAULTS.concurrency, timeoutSeconds: DEFAULTS.timeoutSeconds };
  if (!file) return defaults;
  const source = readSource(file, shown(file));
  if (source.problems.length) {
    problems.push(...source.problems);
    return defaults;
  }
  // An empty suite.yaml means "all defaults".
  if (source.value === null) return defaults;
  const parsed = parseWith(SuiteSettingsSchema, source, 'suite');
  problems.push(...parsed.problems);
  const s = parsed.value ?? {};
  return {
    skill: resolve(repo, s.skill ?? DEFAULTS.skill),
    agent: s.agent,
    trials: s.trials ?? DEFAULTS.trials,
    concurrency: s.concurrency ?? DEFAULTS.concurrency,
    timeoutSeconds: s.timeoutSeconds ?? DEFAULTS.timeoutSeconds,
    judge: s.judge,
  };
}

function readCases(casesDir: string, shown: (p: string) => string, settings: SuiteSettings, problems: SuiteProblem[]): EvalCase[] {
  const byId = new Map<string, string>();
  const cases: EvalCase[] = [];
  for (const name of readdirSync(casesDir).sort()) {
    const file = join(casesDir, name);
    if (!EXTENSIONS.includes(extname(name)) || isDirectory(file)) continue;
    const id = basename(name, extname(name));
    if (!ID_PATTERN.test(id)) {
      problems.push({ where: shown(file), message: `the case id "${id}" (the file name) may use only letters, digits, ".", "_" and "-"; rename the file` });
      continue;
    }
    const other = byId.get(id);
    if (other) {
      problems.push({ where: shown(file), message: `repeats the case id "${id}" of ${other}; rename one of them` });
      continue;
    }
    byId.set(id, shown(file));
    const c = readCase(id, file, shown, settings, problems);
    if (c) cases.push(c);
  }
  return cases.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

function readCase(id: string, file: string, shown: (p: string) => string, settings: SuiteSettings, problems: SuiteProblem[]): EvalCase | null {
  const source = readSource(file, shown(file));
  const parsed = source.problems.length ? { problems: source.problems } : parseWith(CaseSchema, source, 'case');
  const raw = parsed.value;
  if (!raw) {
    problems.push(...parsed.problems);
    return null;
  }
  const before = problems.length;
  // Paths are tried beside the case file, then in its own folder cases/<case-id>/.
  const bases = [join(file, '..'), join(file, '..', id)];
  const locate = (path: string, key: (string | number)[], what: string): string | null => {
    const found = bases.map((b) => join(b, path)).find((p) => existsSync(p));
    if (!found) problems.push(problemAt(source, key, `names ${path}, which is not in ${bases.map((b) => `${shown(b)}/`).join(' or ')}; ${what}`));
    return found ?? null;
  };
  let prompt = raw.prompt ?? '';
  if (raw.promptFile !== undefined) {
    const path = locate(raw.promptFile, ['promptFile'], 'add the file or fix the path');
    if (path && isDirectory(path)) problems.push(problemAt(source, ['promptFile'], 'names a folder; name the prompt file'));
    else if (path) prompt = readFileSync(path, 'utf8');
  }
  const files: EvalCase['files'] = [];
  (raw.files ?? []).forEach((f, i) => {
    const path = locate(f, ['files', i], 'add it or fix the path');
    const target = basename(f);
    if (files.some((x) => x.target === target)) problems.push(problemAt(source, ['files', i], `copies to ${target} like an earlier entry; give each file its own name`));
    else if (path) files.push({ source: path, target });
  });
  const assertions = namedAssertions(raw.assertions, source, settings, problems);
  return problems.length > before ? null : { id, shown: shown(file), prompt, files, heldOut: raw.heldOut === true, assertions };
}

function namedAssertions(inputs: AssertionInput[], source: SourceFile, settings: SuiteSettings, problems: SuiteProblem[]): Assertion[] {
  const counts = new Map<AssertionKind, number>();
  const names = new Set<string>();
  return inputs.map((input, i) => {
    const a = toAssertion(input, (kind) => {
      const n = (counts.get(kind) ?? 0) + 1;
      counts.set(kind, n);
      return `${kind}-${n}`;
    });
    if (names.has(a.name)) problems.push(problemAt(source, ['assertions', i], `is named "${a.name}" like an earlier assertion; give it its own name`));
    names.add(a.name);
    if (a.kind === 'judge' && !settings.judge) {
      problems.push(problemAt(source, ['assertions', i, 'judge'], 'needs a judge command: set judge: in suite.yaml (it gets the question and the output, and prints yes or no)'));
    }
    return a;
  });
}

function toAssertion(a: AssertionInput, defaultName: (kind: AssertionKind) => string): Assertion {
  const ignoreCase = a.ignoreCase === true;
  const named = (kind: AssertionKind) => a.name ?? defaultName(kind);
  if (a.contains !== undefined) return { kind: 'contains', name: named('contains'), text: a.contains, ignoreCase };
  if (a.notContains !== undefined) return { kind: 'notContains', name: named('notContains'), text: a.notContains, ignoreCase };
  if (a.regex !== undefined) return { kind: 'regex', name: named('regex'), regex: SafeRegex.compile(a.regex, { multiline: true, ignoreCase }) };
  if (a.maxWords !== undefined) return { kind: 'maxWords', name: named('maxWords'), limit: a.maxWords };
  if (a.maxChars !== undefined) return { kind: 'maxChars', name: named('maxChars'), limit: a.maxChars };
  if (a.json !== undefined) return { kind: 'json', name: named('json') };
  if (a.jsonSchema !== undefined) return { kind: 'jsonSchema', name: named('jsonSchema'), schema: a.jsonSchema };
  if (a.fileExists !== undefined) return { kind: 'fileExists', name: named('fileExists'), path: a.fileExists };
  if (a.command !== undefined) return { kind: 'command', name: named('command'), command: a.command };
  return { kind: 'judge', name: named('judge'), question: a.judge ?? '' };
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}
