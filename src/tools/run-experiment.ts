// run_experiment: check the edit surface, commit the candidate off the best commit, run it in the background.
import { z } from 'zod';
import { defineTool } from './define.js';
import { ExperimentViewSchema } from '../core/views.js';
import { DEFAULT_WAIT_SECONDS, MAX_WAIT_SECONDS } from '../core/loop.js';
import { describeExperiment, experimentFacts } from './describe.js';
import { cleanText } from '../core/arguments.js';

export const waitSecondsField = z
  .number({ error: `wait_seconds must be a number of seconds between 0 and ${MAX_WAIT_SECONDS}` })
  .min(0)
  .max(MAX_WAIT_SECONDS)
  .optional()
  .describe(`How long to wait for the result before returning "running" (default ${DEFAULT_WAIT_SECONDS}, at most ${MAX_WAIT_SECONDS}, under MCP client timeouts).`);

export const runExperiment = defineTool({
  name: 'run_experiment',
  title: 'Run an experiment',
  description:
    'Call after editing the editable files with ONE idea. Ratchet checks that only editable files changed and protected files match their pins, commits the change as a candidate on top of the best commit, ' +
    'and runs the configured command (never one you pass) under the time budget. Returns the result if it finishes within wait_seconds, else state "running": then call wait_experiment. ' +
    'A refused run leaves your files untouched and says which paths to undo. With `parallel` 1 (the default) it is not allowed while a run is in flight or a measured candidate awaits keep/revert; with more, candidates are accepted while others run (state "queued" beyond that many), and wait_seconds 0 returns at once so you can edit the next idea.',
  kind: 'write',
  idempotent: false,
  input: {
    description: cleanText(500, 'description', 'description is required: one line saying what this experiment changes, e.g. "raise LR to 0.04"')
      .trim()
      .min(1, { error: 'description must not be empty' })
      .max(500, { error: 'description must be at most 500 characters; put the detail in hypothesis' })
      .describe('One line: what changed, e.g. "increase matrix LR to 0.04". Goes into the commit and results.tsv.'),
    hypothesis: cleanText(4000, 'hypothesis').optional().describe('Why you expect it to help; recorded in the ledger and the commit message.'),
    wait_seconds: waitSecondsField,
  },
  output: { experiment: ExperimentViewSchema },
  async handler(args, { loop, progress }) {
    const started = await loop.runExperiment({ description: args.description, hypothesis: args.hypothesis });
    const experiment = started.state === 'running' ? await loop.waitExperiment(started.id, args.wait_seconds ?? DEFAULT_WAIT_SECONDS, progress) : started;
    return { summary: describeExperiment(experiment), experiment };
  },
  text: (r) => experimentFacts(r.experiment),
});
