// The tiny-lm demo: hyperparameter edits to a CPU language model, judged on val_bpb (lower is better).
import { fileURLToPath } from 'node:url';
import { round, type DemoExample } from './loop.js';

interface Decision {
  verdict: string;
  runsSpent: number;
  effect: number | null;
  effectInterval: [number, number] | null;
}

export const tinyLm: DemoExample = {
  name: 'tiny-lm',
  folder: fileURLToPath(new URL('../../examples/tiny-lm', import.meta.url)),
  generated: ['out'],
  editable: 'train.mjs',
  tamper: { path: 'evaluate.mjs', description: 'tweak the evaluator', edit: (text) => `${text}\n// a proposer tempted to soften the evaluator\n` },
  direction: 'minimize',
  defaultExperiments: 6,
  runNote: 'each run trains for about 15 s',
  metric: (value) => `val_bpb ${round(value)}`,
  report({ id, proposal, experiment, metricReport, action }) {
    const d = metricReport.structuredContent?.decision as Decision | null | undefined;
    const evidence = d
      ? ` ${d.verdict}, ${d.runsSpent} run(s)${d.effect !== null ? `, gain ${round(d.effect)}` : ''}${d.effectInterval ? ` [${round(d.effectInterval[0])}, ${round(d.effectInterval[1])}]` : ''}`
      : '';
    const metric = experiment.metric === null ? '—' : round(experiment.metric as number);
    return [`#${id} ${proposal.description.padEnd(46)} val_bpb ${metric}${evidence} → ${action}`];
  },
};
