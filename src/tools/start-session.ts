// start_session: branch ratchet/<tag> from HEAD, pin protected files, launch the baseline.
import { z } from 'zod';
import { defineTool } from './define.js';
import { ExperimentViewSchema, SessionViewSchema } from '../core/views.js';

export const startSession = defineTool({
  name: 'start_session',
  title: 'Start a research session',
  description:
    'Call once at the beginning, after reading ratchet.json. Creates the branch ratchet/<tag> from HEAD, pins the hashes of the protected files, and starts the baseline run in the background. ' +
    'Returns the baseline experiment id: follow it with wait_experiment. Refuses while a session is active (unless replace: true), a tag that exists, and a working tree with uncommitted changes outside the edit surface.',
  kind: 'write',
  idempotent: false,
  input: {
    tag: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, { error: 'tag must be 1-64 letters, digits, ".", "_" or "-", e.g. "nov23"' })
      .optional()
      .describe('Session name; the branch is ratchet/<tag>. Defaults to a free date tag such as "nov23".'),
    replace: z.boolean().optional().describe('End the active session and start a new one (the old one stays recorded). Without it, start_session is refused while a session is active.'),
  },
  output: {
    session: SessionViewSchema,
    baseline: ExperimentViewSchema,
    warnings: z.array(z.string()).describe('Config globs that match no file (usually typos worth fixing before a long run), and a missing sandbox.'),
    sandbox: z
      .object({ kind: z.enum(['bwrap', 'none']), mode: z.enum(['auto', 'required', 'off']), why: z.string(), install: z.string().nullable() })
      .describe('The isolation each run and evaluate step gets, and why.'),
    configChanged: z.array(z.string()).nullable().describe('Top-level ratchet.json keys that differ from the previous session\'s; null for the first session.'),
  },
  async handler(args, { loop }) {
    const { session, baseline, warnings, sandbox, configChanged } = await loop.startSession({ tag: args.tag, replace: args.replace });
    return {
      warnings,
      sandbox,
      configChanged,
      summary: `Session ${session.tag} started on ${session.branch}${session.bestCommit !== session.baseCommit ? ' (your uncommitted edits to editable files became the baseline commit)' : ''}; baseline is experiment ${baseline.id} (${baseline.state}). Runs are ${sandbox.kind === 'none' ? 'NOT sandboxed' : `sandboxed (${sandbox.kind})`}.${configChanged?.length ? ` ratchet.json differs from the previous session in: ${configChanged.join(', ')}.` : ''} Call wait_experiment {id: ${baseline.id}}; once it is measured, status says the smallest gain this session can detect and which setting would detect less.${warnings.length ? ` Warnings: ${warnings.join(' ')}` : ''}`,
      session,
      baseline,
    };
  },
  // The summary has the sandbox and the warnings already.
  text: ({ session, sandbox }) => [
    `metric: ${session.metricName}, ${session.direction}; base commit ${session.baseCommit.slice(0, 7)}`,
    ...(sandbox.install ? [`sandbox install: ${sandbox.install}`] : []),
  ],
});
