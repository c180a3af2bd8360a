// ratchet.json: the zod schema (source of the shipped JSON Schema), loading, and errors that name the key.
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { RatchetError } from './errors.js';

export const CONFIG_FILE = 'ratchet.json';

const Command = z
  .union([z.string().trim().min(1), z.array(z.string().min(1)).min(1)])
  .describe('A shell string (run with /bin/sh -c) or an argv array (run directly).');

const Env = z.record(z.string(), z.string()).default({}).describe('Extra environment variables for the command.');

const MetricName = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_.-]*$/, 'use letters, digits, "_", "." or "-", starting with a letter or "_"');

const Regex = z.string().min(1).superRefine((source, ctx) => {
  try {
    const groups = new RegExp(`${source}|`).exec('')!.length - 1;
    if (groups < 1) ctx.addIssue({ code: 'custom', message: 'the pattern needs a capture group around the number, e.g. "loss=([0-9.]+)"' });
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: `not a valid regular expression: ${(err as Error).message}` });
  }
});

const ProgressRegex = z.string().min(1).superRefine((source, ctx) => {
  try {
    const names = Object.keys(new RegExp(`${source}|`).exec('')!.groups ?? {});
    if (!names.includes('value') || !names.includes('step')) {
      ctx.addIssue({ code: 'custom', message: 'the pattern needs named groups "value" and "step", e.g. "step (?<step>\\d+) .*val=(?<value>[0-9.]+)"' });
    }
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: `not a valid regular expression: ${(err as Error).message}` });
  }
});

const Constraint = z
  .object({
    metric: MetricName,
    max: z.number().optional(),
    min: z.number().optional(),
  })
  .strict()
  .refine((c) => c.max !== undefined || c.min !== undefined, { message: 'give "max", "min" or both' });

export const ConfigSchema = z
  .object({
    $schema: z.string().optional(),
    editable: z
      .array(z.string().min(1))
      .min(1, 'list at least one glob the agent may edit, e.g. ["train.py"]')
      .describe('Globs of the only paths the agent may change (the edit surface).'),
    protected: z
      .array(z.string().min(1))
      .default([])
      .describe('Globs of files pinned by hash at session start: evaluator, data prep, lock files. ratchet.json is always protected.'),
    run: z
      .object({
        command: Command,
        budgetSeconds: z.number().positive().describe('Hard wall-clock limit: SIGTERM to the process tree at this point.'),
        graceSeconds: z.number().min(0).default(10).describe('Seconds between SIGTERM and SIGKILL.'),
        env: Env,
        maxLogMegabytes: z.number().positive().default(256).describe('A run whose log grows past this is stopped as crashed (output flood).'),
        outputs: z
          .array(z.string().min(1))
          .default([])
          .describe('Globs of untracked or ignored run outputs (checkpoints, caches) deleted before each run, so no step ever reads a previous run\'s files.'),
      })
      .strict(),
    evaluate: z
      .object({
        command: Command,
        budgetSeconds: z.number().positive(),
        graceSeconds: z.number().min(0).default(10),
        env: Env,
      })
      .strict()
      .optional()
      .describe('Trusted step run after a successful run, with protected files at their pinned content. When set, the metric is read from its output only.'),
    metric: z
      .object({
        name: MetricName.describe('The metric to optimise, e.g. "val_bpb".'),
        direction: z.enum(['minimize', 'maximize']),
        pattern: Regex.optional().describe('Regex with one capture group for the value; default reads "<name>: <number>" or "METRIC <name>=<number>".'),
        secondary: z.array(MetricName).default([]).describe('Further metrics to record, e.g. "peak_vram_mb".'),
        constraints: z.array(Constraint).default([]).describe('A run that violates a constraint cannot be kept.'),
        progressPattern: ProgressRegex.optional().describe(
          'Regex with named groups "value" and "step" for intermediate values; default reads "progress <name>=<number> step=<n>". Used by decision.prune.',
        ),
      })
      .strict(),
    decision: z
      .object({
        rule: z
          .enum(['greedy', 'significant'])
          .default('significant')
          .describe('"significant": keep only a statistically clear improvement over the re-measured best. "greedy": Karpathy\'s rule, one run each, strictly better keeps.'),
        confidence: z.number().gt(0.5).lt(1).default(0.95).describe('Confidence of the interval a keep must clear (significant rule).'),
        minEffect: z.number().min(0).default(0).describe('Smallest improvement worth keeping, in metric units; the interval must clear it.'),
        maxRepeats: z.number().int().min(2).max(50).default(5).describe('Most candidate/best pairs measured for one experiment (significant rule).'),
        baselineRepeats: z
          .number()
          .int()
          .min(1)
          .max(50)
          .optional()
          .describe('Runs of the baseline at session start that calibrate the noise; default 3 under "significant", 1 under "greedy".'),
        prune: z.boolean().default(false).describe('Stop a candidate run whose intermediate values are clearly worse than the best\'s at the same step; it is recorded as pruned.'),
        pruneWarmup: z
          .number()
          .min(0)
          .max(1)
          .default(0.25)
          .describe('Fraction of the best\'s learning curve (by step) before any run may be pruned.'),
        plateauWindow: z.number().int().min(2).default(10).describe('status reports a plateau when this many experiments in a row brought no keep.'),
      })
      .strict()
      .prefault({})
      .describe('How keep decides. Omitted: the significant rule with its defaults.'),
    gpu: z
      .object({
        required: z.boolean().default(false).describe('Refuse to start a session when no GPU answers nvidia-smi.'),
        perRun: z.number().int().min(1).default(1).describe('GPUs given to each run through CUDA_VISIBLE_DEVICES.'),
      })
      .strict()
      .optional(),
  })
  .strict();

export type Config = z.infer<typeof ConfigSchema>;
export type CommandSpec = Config['run']['command'];

/** Runs that calibrate the noise at session start. */
export function baselineRepeatsOf(config: Config): number {
  return config.decision.baselineRepeats ?? (config.decision.rule === 'significant' ? 3 : 1);
}

/** Formats zod issues as "key.path: problem" lines a person can act on. */
export function describeIssues(error: z.ZodError): string[] {
  return error.issues.map((issue) => {
    const key = issue.path.length ? issue.path.join('.') : '(top level)';
    if (issue.code === 'unrecognized_keys') return `${key}: unknown key(s) ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
    return `${key}: ${issue.message}`;
  });
}

export function parseConfig(raw: unknown, source = CONFIG_FILE): Config {
  const parsed = ConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = describeIssues(parsed.error);
    throw new RatchetError(
      'config_invalid',
      `${source} is invalid:\n${problems.map((p) => `  - ${p}`).join('\n')}`,
      `Fix ${source} (the JSON Schema at node_modules/ratchet-mcp/schema/ratchet.schema.json lists every key), then call the tool again.`,
      { problems },
    );
  }
  return parsed.data;
}

export function loadConfig(repo: string): Config {
  const file = join(repo, CONFIG_FILE);
  if (!existsSync(file)) {
    throw new RatchetError(
      'config_missing',
      `No ${CONFIG_FILE} in ${repo}.`,
      'Run `ratchet init` in the repo to write a starter config, edit it, then start the session.',
    );
  }
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new RatchetError(
      'config_invalid',
      `${CONFIG_FILE} is not valid JSON: ${(err as Error).message}`,
      `Fix the JSON syntax in ${CONFIG_FILE}, then call the tool again.`,
    );
  }
  return parseConfig(raw);
}

/** The config's JSON Schema, generated from the zod schema so the two cannot drift. */
export function configJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(ConfigSchema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  return { ...schema, title: 'ratchet.json', description: 'Configuration of a ratchet auto-research session.' };
}

export function starterConfig(): Record<string, unknown> {
  return {
    $schema: './node_modules/ratchet-mcp/schema/ratchet.schema.json',
    editable: ['train.py'],
    protected: ['prepare.py', 'uv.lock'],
    run: { command: 'uv run train.py', budgetSeconds: 360, graceSeconds: 10 },
    metric: { name: 'val_bpb', direction: 'minimize', secondary: ['peak_vram_mb'], constraints: [] },
    decision: { rule: 'significant', confidence: 0.95, maxRepeats: 5 },
    gpu: { required: true, perRun: 1 },
  };
}
