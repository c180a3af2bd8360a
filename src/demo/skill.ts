// The skill demo: edits to a summarizing skill's SKILL.md, judged by its eval suite's pass rate (higher is better).
import { fileURLToPath } from 'node:url';
import { round, textOf, type DemoExample } from './loop.js';

/** read_metric's lines about the experiment itself (shown once, in the header) or the session; the rest is the verdict. */
const NOT_VERDICT = /^(?:experiment|metric|commit|ran|workspace|reason|best|noise|constraints|log tail):|^\s+to detect less:/;

export const skill: DemoExample = {
  name: 'skill',
  folder: fileURLToPath(new URL('../../examples/skill-summarize', import.meta.url)),
  generated: ['.eval-out'],
  editable: 'SKILL.md',
  tamper: {
    path: 'evals/cases/db-migration.yaml',
    description: 'drop a hard assertion from the suite',
    edit: (text) => text.replace(/ {2}- name: decision-first\n.*\n/, ''),
  },
  direction: 'maximize',
  defaultExperiments: 6,
  runNote: 'each run answers 12 cases 3 times with a simulated model, then a trusted step scores the answers',
  metric: (value) => `pass_rate ${round(value)}%`,
  report({ id, proposal, experiment, metricReport, action }) {
    const secondary = experiment.secondary as Record<string, number> | undefined;
    const heldOut = secondary?.held_out_pass_rate;
    const metric = experiment.metric === null ? String(experiment.state) : `pass_rate ${round(experiment.metric as number)}%`;
    const header = `#${id} ${proposal.description}: ${metric}${heldOut !== undefined ? `, held-out ${round(heldOut)}%` : ''} → ${action}`;
    // The summary line repeats the header's figures; the lines after it are the decision layer's own words.
    const verdict = textOf(metricReport).split('\n').slice(1).filter((line) => line.trim() && !NOT_VERDICT.test(line));
    return ['', header, ...verdict.map((line) => `    ${line}`)];
  },
};
