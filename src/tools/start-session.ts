// start_session: branch ratchet/<tag> from HEAD, pin protected files, launch the baseline.
import { z } from 'zod';
import { defineTool } from './define.js';
import { ExperimentViewSchema, SessionViewSchema } from '../core/views.js';

export const startSession = defineTool({
  name: 'start_session',
  title: 'Start a research session',
  description:
    'Call once at the beginning, after reading ratchet.json. Creates the branch ratchet/<tag> from HEAD, pins the hashes of the protected files, and starts the baseline run in the background. ' +
    'Returns the baseline experiment id: follow it with wait_experiment. Refuses a tag that exists and a working tree with uncommitted changes outside the edit surface.',
  kind: 'write',
  idempotent: false,
  input: {
    tag: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, { error: 'tag must be 1-64 letters, digits, ".", "_" or "-", e.g. "nov23"' })
      .optional()
      .describe('Session name; the branch is ratchet/<tag>. Defaults to a free date tag such as "nov23".'),
  },
  output: {
    session: SessionViewSchema,
    baseline: ExperimentViewSchema,
    warnings: z.array(z.string()).describe('Config globs that match no file: usually typos worth fixing before a long run.'),
  },
  async handler(args, { loop }) {
    const { session, baseline, warnings } = await loop.startSession({ tag: args.tag });
    return {
      warnings,
      summary: `Session ${session.tag} started on ${session.branch}${session.bestCommit !== session.baseCommit ? ' (your uncommitted edits to editable files became the baseline commit)' : ''}; baseline is experiment ${baseline.id} (${baseline.state}). Call wait_experiment {id: ${baseline.id}}.${warnings.length ? ` Warnings: ${warnings.join(' ')}` : ''}`,
      session,
      baseline,
    };
  },
});
