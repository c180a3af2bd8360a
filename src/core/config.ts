// ratchet.json: the zod schema (source of the shipped JSON Schema), loading, and errors that name the key.
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import picomatch from 'picomatch';
import { RatchetError } from './errors.js';
import { SafeRegex, RegexProblem } from './safe-regex.js';

export const CONFIG_FILE = 'ratchet.json';

/** Upper bounds: a typo (an extra zero) fails loudly instead of holding a GPU for a month. */
export const LIMITS = {
  budgetSeconds: 7 * 24 * 3600,
  graceSeconds: 600,
  maxLogMegabytes: 10240,
  repeats: 50,
  plateauWindow: 1000,
  gpusPerRun: 64,
  cpuSlots: 1024,
  parallel: 64,
  keepCrashed: 100,
  /** Globs, inputs, metric names, constraints: far more than any real config lists. */
  listItems: 1000,
  /** limits.maxExperiments and limits.maxRuns. */
  caps: 10_000_000,
  /** limits.deadline as a duration: 30 days. */
  deadlineSeconds: 30 * 24 * 3600,
  /** limits.maxCost amounts and prices. */
  money: 1e12,
  /** Any single string: commands, globs, patterns, env values. */
  stringChars: 64 * 1024,
} as const;

// execve and git take C strings: a NUL byte would silently cut a command, an env value or a path.
const Text = z
  .string()
  .max(LIMITS.stringChars, `longer than ${LIMITS.stringChars} characters`)
  .refine((s) => !s.includes('\0'), 'contains a NUL byte (\\u0000); remove it');

const Command = z
  .union([Text.trim().min(1), z.array(Text.min(1)).min(1).max(LIMITS.listItems)])
  .describe('A shell string (run with /bin/sh -c) or an argv array (run directly).');

const EnvName = Text.regex(/^[^=]+$/, 'an environment variable name must be non-empty and contain no "="');
const Env = z.record(EnvName, Text).default({}).describe('Extra environment variables for the command.');

const Budget = z.number().positive().max(LIMITS.budgetSeconds, `at most ${LIMITS.budgetSeconds} seconds (7 days)`);
const Grace = z.number().min(0).max(LIMITS.graceSeconds, `at most ${LIMITS.graceSeconds} seconds`);

const Globs = z.array(Text.min(1)).max(LIMITS.listItems);

/** A device in gpu.pool: an nvidia-smi index, or a GPU-/MIG- UUID as `nvidia-smi -L` prints it. */
const GpuId = z.union([
  z.number().int().min(0).max(LIMITS.listItems),
  Text.regex(/^(GPU|MIG)-[A-Za-z0-9/-]+$/, 'give an nvidia-smi index (0, 1, ...) or a UUID from `nvidia-smi -L` ("GPU-..." or "MIG-...")'),
]);

const MetricName = Text.regex(/^[A-Za-z_][A-Za-z0-9_.-]*$/, 'use letters, digits, "_", "." or "-", starting with a letter or "_"').max(200);

/** The regex compiled by the linear-time engine, or the problem as a zod issue on the key. */
function compiledOrIssue(source: string, ctx: z.RefinementCtx): SafeRegex | null {
  try {
    return SafeRegex.compile(source, { multiline: true });
  } catch (err) {
    if (!(err instanceof RegexProblem)) throw err;
    ctx.addIssue({ code: 'custom', message: err.message });
    return null;
  }
}

const Regex = Text.min(1).superRefine((source, ctx) => {
  const regex = compiledOrIssue(source, ctx);
  if (regex && regex.groupCount < 1) ctx.addIssue({ code: 'custom', message: 'the pattern needs a capture group around the number, e.g. "loss=([0-9.]+)"' });
});

const ProgressRegex = Text.min(1).superRefine((source, ctx) => {
  const regex = compiledOrIssue(source, ctx);
  if (regex && !(regex.groupNames.includes('value') && regex.groupNames.includes('step'))) {
    ctx.addIssue({ code: 'custom', message: 'the pattern needs named groups "value" and "step", e.g. "step (?<step>\\d+) .*val=(?<value>[0-9.]+)"' });
  }
});

/** A repo-relative path: no absolute path, no "..", nothing that leaves the repo. */
const RepoPath = Text.min(1).superRefine((path, ctx) => {
  if (path.startsWith('/') || /^[A-Za-z]:[\\/]/.test(path) || path.startsWith('\\')) {
    ctx.addIssue({ code: 'custom', message: `"${path}" is absolute; give a path relative to the repo root, e.g. "data"` });
  } else if (path.split(/[\\/]/).some((segment) => segment === '..')) {
    ctx.addIssue({ code: 'custom', message: `"${path}" contains ".."; give a path inside the repo, e.g. "data"` });
  } else if (path.split('/').some((segment) => segment === '.git' || segment === '.ratchet')) {
    ctx.addIssue({ code: 'custom', message: `"${path}" is inside .git or .ratchet, which runs never see` });
  }
});

/** A duration such as "8h", "90m" or "1h30m": the parts add up. */
const DURATION = /^(?:\d+(?:\.\d+)?[smhd])+$/;
const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };
// A date-time needs its zone: a bare local time means a different moment on another machine.
const ISO_DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})$/;

/** Seconds in a duration such as "1h30m", or null when the text is not one. */
export function durationSeconds(text: string): number | null {
  if (!DURATION.test(text)) return null;
  let total = 0;
  for (const [, n, unit] of text.matchAll(/(\d+(?:\.\d+)?)([smhd])/g)) total += Number(n) * UNIT_SECONDS[unit!]!;
  return total;
}

const Deadline = Text.superRefine((text, ctx) => {
  const seconds = durationSeconds(text);
  if (seconds !== null) {
    if (seconds <= 0 || seconds > LIMITS.deadlineSeconds) ctx.addIssue({ code: 'custom', message: `"${text}" must be more than 0 and at most 30 days ("30d")` });
  } else if (!ISO_DATE_TIME.test(text) || !Number.isFinite(Date.parse(text))) {
    ctx.addIssue({ code: 'custom', message: `"${text}" is neither a duration from the session start ("8h", "90m", "1h30m") nor an ISO date-time with a zone ("2026-12-02T07:00:00Z")` });
  }
});

const Money = z.number().positive().max(LIMITS.money, `at most ${LIMITS.money}`);

const Limits = z
  .object({
    maxExperiments: z
      .number()
      .int()
      .min(1)
      .max(LIMITS.caps, `at most ${LIMITS.caps}`)
      .optional()
      .describe('Candidates the session may run (repeats and refusals do not count); past it run_experiment is refused.'),
    maxRuns: z
      .number()
      .int()
      .min(1)
      .max(LIMITS.caps, `at most ${LIMITS.caps}`)
      .optional()
      .describe('Runs the session may spend, every one counted: baseline calibration, repeats and re-measurements of the best. An experiment already started finishes its repeats.'),
    deadline: Deadline.optional().describe('When the session ends: a duration from its start ("8h", "90m", "1h30m") or an ISO date-time with a zone ("2026-12-02T07:00:00Z").'),
    maxConsecutiveCrashes: z
      .number()
      .int()
      .min(1)
      .max(LIMITS.listItems, `at most ${LIMITS.listItems}`)
      .optional()
      .describe('Crashed or timed-out experiments in a row that end the session (something is broken that the agent is not fixing).'),
    maxCost: z
      .discriminatedUnion('source', [
        z
          .object({
            amount: Money.describe('The most the session may cost.'),
            source: z.literal('gpu-hours'),
            pricePerGpuHour: Money.describe('Price of one GPU for one hour; a run without GPUs counts as one.'),
          })
          .strict(),
        z
          .object({
            amount: Money.describe('The most the session may cost, in the metric\'s unit.'),
            source: z.literal('metric'),
            metric: MetricName.describe('A metric the runs print (listed in metric.secondary), summed over every run.'),
          })
          .strict(),
      ])
      .optional()
      .describe('Cost cap: run durations x GPUs x price ("gpu-hours"), or the sum of a cost metric the runs print ("metric").'),
  })
  .strict()
  .optional()
  .describe('Caps on the night: past any of them run_experiment is refused and status says the session is finished. A run already going finishes; keep and revert stay allowed.');

export const NOTIFY_EVENTS = ['keep', 'crash_streak', 'plateau', 'cap_reached', 'session_end'] as const;

const Notify = z
  .object({
    command: Text.trim().min(1).describe('Shell command (run with /bin/sh -c in the repo) that gets each event as JSON on stdin, with RATCHET_EVENT and RATCHET_SUMMARY set; killed after 10 s.'),
    events: z.array(z.enum(NOTIFY_EVENTS)).min(1).optional().describe('Events to send; default all of them.'),
  })
  .strict()
  .optional()
  .describe('A command told about keeps, crash streaks, plateaus, caps reached and the session\'s end. Its failures are logged and never disturb the loop.');

const Constraint = z
  .object({
    metric: MetricName,
    // zod 4's number() already refuses Infinity and NaN, so bounds here are finite.
    max: z.number().optional(),
    min: z.number().optional(),
  })
  .strict()
  .refine((c) => c.max !== undefined || c.min !== undefined, { message: 'give "max", "min" or both' });

export const ConfigSchema = z
  .object({
    $schema: z.string().optional(),
    editable: Globs.min(1, 'list at least one glob the agent may edit, e.g. ["train.py"]').describe('Globs of the only paths the agent may change (the edit surface).'),
    protected: Globs.default([])
      .describe('Globs of files pinned by hash at session start: evaluator, data prep, lock files. ratchet.json is always protected.'),
    run: z
      .object({
        command: Command,
        budgetSeconds: Budget.describe('Hard wall-clock limit: SIGTERM to the process tree at this point. At most 7 days.'),
        graceSeconds: Grace.default(10).describe('Seconds between SIGTERM and SIGKILL, at most 600.'),
        env: Env,
        maxLogMegabytes: z
          .number()
          .positive()
          .max(LIMITS.maxLogMegabytes, `at most ${LIMITS.maxLogMegabytes} (10 GiB)`)
          .default(256)
          .describe('A run whose log grows past this is stopped as crashed (output flood). At most 10240.'),
        outputs: Globs.default([]).describe(
          'Globs of files the run writes in its workspace (checkpoints, predictions) that the evaluate step may read: they are copied read-only into its fresh workspace. Nothing else of the run reaches evaluate.',
        ),
        inputs: z
          .array(RepoPath)
          .max(LIMITS.listItems)
          .default([])
          .describe(
            'Repo-relative paths of untracked inputs the run and evaluate need, such as a data folder, a virtual environment or a model cache. ' +
              'They are made available read-only in each run\'s workspace instead of being copied. Must not overlap the editable globs or the outputs.',
          ),
        network: z.boolean().default(true).describe('Whether the run may use the network (in the sandbox). The evaluate step never has network.'),
        passEnv: z
          .array(EnvName)
          .max(LIMITS.listItems)
          .default([])
          .describe(
            'Names of variables passed from the server\'s environment to the run step, when set there (never to evaluate): the credentials an agent under test needs, such as ANTHROPIC_API_KEY or CLAUDE_CODE_OAUTH_TOKEN. The values never enter ratchet.json or the ledger.',
          ),
      })
      .strict()
      .superRefine((run, ctx) => {
        for (const [i, input] of (run.inputs ?? []).entries()) {
          const output = (run.outputs ?? []).find((glob) => mayOverlap(input, glob));
          if (output) ctx.addIssue({ code: 'custom', path: ['inputs', i], message: `"${input}" overlaps run.outputs glob "${output}", which the run writes; list it in one of the two only` });
        }
      }),
    evaluate: z
      .object({
        command: Command,
        budgetSeconds: Budget.describe('Hard wall-clock limit of the evaluate step, at most 7 days.'),
        graceSeconds: Grace.default(10).describe('Seconds between SIGTERM and SIGKILL, at most 600.'),
        env: Env,
      })
      .strict()
      .optional()
      .describe('Trusted step run after a successful run, with protected files at their pinned content. When set, the metric is read from its output only.'),
    metric: z
      .object({
        name: MetricName.describe('The metric to optimise, e.g. "val_bpb".'),
        direction: z.enum(['minimize', 'maximize']),
        pattern: Regex.optional().describe(
          'Regex (RE2 syntax: no backreferences or lookaround) with one capture group for the value; default reads "<name>: <number>" or "METRIC <name>=<number>".',
        ),
        secondary: z.array(MetricName).max(LIMITS.listItems).default([]).describe('Further metrics to record, e.g. "peak_vram_mb".'),
        constraints: z.array(Constraint).max(LIMITS.listItems).default([]).describe('A run that violates a constraint cannot be kept.'),
        progressPattern: ProgressRegex.optional().describe(
          'Regex (RE2 syntax) with named groups "value" and "step" for intermediate values; default reads "progress <name>=<number> step=<n>". Used by decision.prune.',
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
        maxRepeats: z.number().int().min(2).max(LIMITS.repeats).default(5).describe('Most candidate/best pairs measured for one experiment (significant rule).'),
        baselineRepeats: z
          .number()
          .int()
          .min(1)
          .max(LIMITS.repeats)
          .optional()
          .describe('Runs of the baseline at session start that calibrate the noise; default 3 under "significant", 1 under "greedy".'),
        prune: z.boolean().default(false).describe('Stop a candidate run whose intermediate values are clearly worse than the best\'s at the same step; it is recorded as pruned.'),
        pruneWarmup: z
          .number()
          .min(0)
          .max(1)
          .default(0.25)
          .describe('Fraction of the best\'s learning curve (by step) before any run may be pruned.'),
        plateauWindow: z.number().int().min(2).max(LIMITS.plateauWindow).default(10).describe('status reports a plateau when this many experiments in a row brought no keep.'),
      })
      .strict()
      .prefault({})
      .describe('How keep decides. Omitted: the significant rule with its defaults.'),
    gpu: z
      .object({
        required: z.boolean().default(false).describe('Refuse to start a session when no GPU answers nvidia-smi.'),
        perRun: z.number().int().min(1).max(LIMITS.gpusPerRun).default(1).describe('GPUs given to each run through CUDA_VISIBLE_DEVICES.'),
        pool: z
          .union([z.literal('all'), z.array(GpuId).min(1).max(LIMITS.listItems)])
          .optional()
          .describe(
            'The devices runs may lease: "all" (the default), or a list of nvidia-smi indices and GPU-/MIG- UUIDs. A MIG instance is leased by its own UUID. ' +
              'A CUDA_VISIBLE_DEVICES set for the server narrows it further.',
          ),
      })
      .strict()
      .optional()
      .describe('Each run leases whole devices (GPUs or MIG instances) for as long as it goes, and sees only those.'),
    pool: z
      .object({
        cpuSlots: z
          .number()
          .int()
          .min(1)
          .max(LIMITS.cpuSlots, `at most ${LIMITS.cpuSlots}`)
          .optional()
          .describe('Runs without a GPU (CPU jobs, skill evals) that may go at once; each leases one slot. Default: "parallel".'),
      })
      .strict()
      .optional()
      .describe('The pool runs lease from. GPUs are set under gpu; this holds the CPU slots.'),
    parallel: z
      .number()
      .int()
      .min(1)
      .max(LIMITS.parallel, `at most ${LIMITS.parallel}`)
      .default(1)
      .describe(
        'Experiments that may run at once. 1 (the default) is the one-at-a-time loop. More: run_experiment accepts new candidates while others run, the ones beyond this wait in a queue (first in, first out), and a candidate whose best was overtaken meanwhile is carried onto the new best and measured again before it can be kept.',
      ),
    sandbox: z
      .enum(['auto', 'required', 'off'])
      .default('auto')
      .describe(
        '"auto": run each step in an OS sandbox where one works (bubblewrap on Linux), else run without and say so. ' +
          '"required": refuse to start without a working sandbox. "off": never sandbox.',
      ),
    workspaces: z
      .object({
        keepCrashed: z
          .number()
          .int()
          .min(0)
          .max(LIMITS.keepCrashed)
          .default(5)
          .describe('Workspaces of crashed runs kept for inspection (read_log and status say where); older ones are removed.'),
      })
      .strict()
      .prefault({})
      .describe('The per-run workspaces that runs and evaluate steps execute in.'),
    limits: Limits,
    notify: Notify,
  })
  .strict()
  .superRefine((config, ctx) => {
    // Guarded: zod still runs this refinement when some keys above have issues of their own.
    for (const [i, input] of (config.run?.inputs ?? []).entries()) {
      const glob = (config.editable ?? []).find((g) => mayOverlap(input, g));
      if (glob) {
        ctx.addIssue({ code: 'custom', path: ['run', 'inputs', i], message: `"${input}" overlaps editable glob "${glob}"; inputs are read-only, so keep them outside the edit surface` });
      }
    }
    const cost = config.limits?.maxCost;
    if (cost?.source === 'metric' && !(config.metric?.secondary ?? []).includes(cost.metric)) {
      ctx.addIssue({ code: 'custom', path: ['limits', 'maxCost', 'metric'], message: `"${cost.metric}" is not recorded; add it to metric.secondary so each run's value is kept` });
    }
  });

/**
 * Whether `glob` could match `path` or a file under it, compared segment by segment:
 * a "**" segment can reach anything, and a glob that stops above `path` is treated as reaching into it.
 */
export function mayOverlap(path: string, glob: string): boolean {
  const pathSegments = path.replace(/\/+$/, '').split('/').filter((s) => s !== '' && s !== '.');
  const globSegments = glob.replace(/^\.\//, '').split('/').filter((s) => s !== '');
  for (let i = 0; i < pathSegments.length; i++) {
    const g = globSegments[i];
    if (g === undefined) return true; // the glob names an ancestor of the path
    if (g === '**') return true;
    if (!picomatch.isMatch(pathSegments[i] as string, g, { dot: true })) return false;
  }
  return true; // the path is matched, or files under it may be
}

export type Config = z.infer<typeof ConfigSchema>;
export type CommandSpec = Config['run']['command'];

/** Runs that calibrate the noise at session start. */
export function baselineRepeatsOf(config: Config): number {
  return config.decision.baselineRepeats ?? (config.decision.rule === 'significant' ? 3 : 1);
}

/** Formats zod issues as "key.path: problem" lines a person can act on. */
export function describeIssues(error: z.ZodError): string[] {
  return error.issues.map((issue) => {
    const key = issue.path.length ? issue.path.map((segment) => printable(String(segment))).join('.') : '(top level)';
    if (issue.code === 'unrecognized_keys') return `${key}: unknown key(s) ${issue.keys.map((k) => `"${printable(k)}"`).join(', ')}`;
    // A bad record key (an env name): say what is wrong with the name, not just that it is invalid.
    if (issue.code === 'invalid_key') return `${key}: ${issue.issues.map((inner) => inner.message).join('; ')}`;
    return `${key}: ${issue.message}`;
  });
}

/** Control characters escaped, so a key with a NUL byte still prints as one readable line. */
function printable(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
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
