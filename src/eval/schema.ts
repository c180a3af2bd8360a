// The zod schemas of suite.yaml and of a case file, and their issues worded as "path must be …" for a person to fix.
import { z } from 'zod';
import { regexProblem } from '../core/safe-regex.js';
import { formatPath, type KeyPath, type SourceFile, type SuiteProblem } from './yaml-source.js';

export const ASSERTION_KINDS = ['contains', 'notContains', 'regex', 'maxWords', 'maxChars', 'json', 'jsonSchema', 'fileExists', 'command', 'judge'] as const;
export type AssertionKind = (typeof ASSERTION_KINDS)[number];

/** Case ids and assertion names go into space-separated output lines, so they hold no spaces. */
export const ID_PATTERN = /^[A-Za-z0-9._-]+$/;

export const LIMITS = { trials: 100, concurrency: 64, timeoutSeconds: 86_400, count: 1_000_000 } as const;

/** The message for a value of the wrong type; a missing value reads as "is required". */
function expected(message: string) {
  return { error: (issue: { input?: unknown }) => (issue.input === undefined ? 'is required' : message) };
}

const Text = z.string(expected('must be text')).trim().min(1, { error: 'must not be empty' });
const AnyText = z.string(expected('must be text')).min(1, { error: 'must not be empty' });

function whole(min: number, max: number, error = `must be a whole number from ${min} to ${max}`) {
  return z.number({ error }).int({ error }).min(min, { error }).max(max, { error });
}

const RelativePath = Text.refine((p) => !p.startsWith('/') && !p.split(/[\\/]/).includes('..'), {
  error: 'must be a path inside the suite, relative and without ".."',
});

const SUITE_SHAPE = {
  skill: Text.optional(),
  agent: Text.optional(),
  trials: whole(1, LIMITS.trials).optional(),
  concurrency: whole(1, LIMITS.concurrency).optional(),
  timeoutSeconds: z
    .number({ error: `must be a number of seconds above 0, at most ${LIMITS.timeoutSeconds}` })
    .positive({ error: 'must be above 0' })
    .max(LIMITS.timeoutSeconds, { error: `must be at most ${LIMITS.timeoutSeconds} (a day)` })
    .optional(),
  judge: Text.optional(),
};
export const SuiteSettingsSchema = z.strictObject(SUITE_SHAPE, expected('must be a mapping of settings (skill, agent, trials, …)'));
export type SuiteSettingsInput = z.infer<typeof SuiteSettingsSchema>;

const TYPE_NAMES = ['string', 'number', 'integer', 'boolean', 'object', 'array', 'null'] as const;
const TypeName = z.enum(TYPE_NAMES, { error: `must be one of ${TYPE_NAMES.join(', ')}` });
const Bound = z.number(expected('must be a number'));
const Count = whole(0, LIMITS.count, 'must be a whole number of at least 0');

export interface JsonSchema {
  type?: (typeof TYPE_NAMES)[number] | (typeof TYPE_NAMES)[number][];
  required?: string[];
  properties?: Record<string, JsonSchema>;
  additionalProperties?: boolean;
  items?: JsonSchema;
  enum?: unknown[];
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
  minimum?: number;
  maximum?: number;
  title?: string;
  description?: string;
}

const JSON_SCHEMA_SHAPE = {
  type: z.union([TypeName, z.array(TypeName).min(1)], { error: `must be a type name (${TYPE_NAMES.join(', ')}) or a list of them` }).optional(),
  required: z.array(z.string(expected('must be a property name')), expected('must be a list of property names')).optional(),
  get properties() {
    return z.record(z.string(), JsonSchemaSchema, expected('must be a mapping of property name to schema')).optional();
  },
  additionalProperties: z.boolean(expected('must be true or false')).optional(),
  get items() {
    return JsonSchemaSchema.optional();
  },
  enum: z.array(z.unknown(), expected('must be a list of allowed values')).min(1, { error: 'must list at least one value' }).optional(),
  minLength: Count.optional(),
  maxLength: Count.optional(),
  minItems: Count.optional(),
  maxItems: Count.optional(),
  minimum: Bound.optional(),
  maximum: Bound.optional(),
  title: z.string().optional(),
  description: z.string().optional(),
};
const JsonSchemaSchema: z.ZodType<JsonSchema> = z.strictObject(JSON_SCHEMA_SHAPE, expected('must be a JSON Schema mapping such as {type: object}'));

const ASSERTION_SHAPE = {
  name: z.string(expected('must be text')).regex(ID_PATTERN, { error: 'must use only letters, digits, ".", "_" and "-" (it is printed in space-separated lines)' }).optional(),
  ignoreCase: z.boolean(expected('must be true or false')).optional(),
  contains: AnyText.optional(),
  notContains: AnyText.optional(),
  regex: AnyText.optional(),
  maxWords: whole(1, LIMITS.count, 'must be a positive whole number').optional(),
  maxChars: whole(1, LIMITS.count, 'must be a positive whole number').optional(),
  json: z.literal(true, { error: 'must be true (the output parses as JSON); remove the assertion to drop the check' }).optional(),
  jsonSchema: JsonSchemaSchema.optional(),
  fileExists: RelativePath.optional(),
  command: Text.optional(),
  judge: Text.optional(),
};

const AssertionSchema = z.strictObject(ASSERTION_SHAPE, expected(`must be a mapping with one assertion kind (${ASSERTION_KINDS.join(', ')})`)).superRefine((a, ctx) => {
  const kinds = ASSERTION_KINDS.filter((k) => a[k] !== undefined);
  if (kinds.length !== 1) {
    const message = kinds.length === 0 ? `needs one assertion kind: ${ASSERTION_KINDS.join(', ')}` : `has ${kinds.join(' and ')}; give each its own list item`;
    ctx.addIssue({ code: 'custom', message, path: [] });
  }
  if (a.ignoreCase !== undefined && !kinds.some((k) => k === 'contains' || k === 'notContains' || k === 'regex')) {
    ctx.addIssue({ code: 'custom', message: 'applies only to contains, notContains and regex', path: ['ignoreCase'] });
  }
  const problem = a.regex === undefined ? null : regexProblem(a.regex);
  if (problem) ctx.addIssue({ code: 'custom', message: problem, path: ['regex'] });
});
export type AssertionInput = z.infer<typeof AssertionSchema>;

const CASE_SHAPE = {
  prompt: AnyText.optional(),
  promptFile: RelativePath.optional(),
  files: z.array(RelativePath, expected('must be a list of paths')).max(1000, { error: 'must list at most 1000 paths' }).optional(),
  heldOut: z.boolean(expected('must be true or false')).optional(),
  assertions: z
    .array(AssertionSchema, expected('must be a list of assertions'))
    .min(1, { error: 'needs at least one assertion: a case without one would always pass' }),
};
export const CaseSchema = z.strictObject(CASE_SHAPE, expected('must be a mapping with prompt and assertions')).superRefine((c, ctx) => {
  if ((c.prompt === undefined) === (c.promptFile === undefined)) {
    ctx.addIssue({ code: 'custom', message: c.prompt === undefined ? 'needs a prompt or a promptFile' : 'has both prompt and promptFile; keep one', path: [] });
  }
});
export type CaseInput = z.infer<typeof CaseSchema>;

/** The schema's value, or the problems located in `source`. */
export function parseWith<T>(schema: z.ZodType<T>, source: SourceFile, kind: 'suite' | 'case'): { value?: T; problems: SuiteProblem[] } {
  const parsed = schema.safeParse(source.value, { error: genericMessage });
  if (parsed.success) return { value: parsed.data, problems: [] };
  const problems = parsed.error.issues.flatMap((issue) => describeIssue(issue, source, kind));
  return { problems: problems.sort((x, y) => position(x.where) - position(y.where)) };
}

/** A problem at `path` in `source`, worded like the schema's own. */
export function problemAt(source: SourceFile, path: KeyPath, message: string): SuiteProblem {
  return { where: source.locate(path), message: path.length ? `${formatPath(path)} ${message}` : message };
}

/** Line and column of "file:line:col" as one sortable number, so problems read top to bottom. */
function position(where: string): number {
  const m = /:(\d+):(\d+)$/.exec(where);
  return m ? Number(m[1]) * 100_000 + Number(m[2]) : 0;
}

function genericMessage(issue: z.core.$ZodRawIssue): string | undefined {
  if (issue.code === 'invalid_type') return issue.input === undefined ? 'is required' : `must be ${TYPE_WORDS[issue.expected] ?? issue.expected}`;
  if (issue.code === 'invalid_value') return `must be one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`;
  return undefined;
}

const TYPE_WORDS: Record<string, string> = { string: 'text', number: 'a number', boolean: 'true or false', object: 'a mapping', array: 'a list' };

function describeIssue(issue: z.core.$ZodIssue, source: SourceFile, kind: 'suite' | 'case'): SuiteProblem[] {
  const path = issue.path.map((s) => (typeof s === 'symbol' ? String(s) : s));
  if (issue.code === 'unrecognized_keys') {
    const known = Object.keys(shapeAt(path, kind)).join(', ');
    return issue.keys.map((key) => ({
      where: source.locate(path, { key }),
      message: `${formatPath(path, key)} is not a known key; check its spelling (known here: ${known})`,
    }));
  }
  // Union members fail together; their messages repeat each other, so one is enough.
  if (issue.code === 'invalid_union' && !issue.message) return [problemAt(source, path, 'has the wrong form')];
  return [problemAt(source, path, issue.message)];
}

function shapeAt(path: KeyPath, kind: 'suite' | 'case'): object {
  if (kind === 'suite') return SUITE_SHAPE;
  if (path.includes('jsonSchema')) return JSON_SCHEMA_SHAPE;
  if (path[0] === 'assertions') return ASSERTION_SHAPE;
  return CASE_SHAPE;
}
