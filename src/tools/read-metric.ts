// read_metric: the measured result next to the current best, the statistical verdict, constraints, and a crash's log tail.
import { defineTool } from './define.js';
import { MetricReportSchema } from '../core/views.js';
import { experimentIdField } from './wait-experiment.js';

export const readMetric = defineTool({
  name: 'read_metric',
  title: 'Read an experiment\'s metric',
  description:
    'Call after an experiment finishes, before deciding. Shows the metric and secondary metrics, the comparison with the current best, the constraint checks, the duration, ' +
    'whether keep would accept it, and for a crash or timeout the last 50 log lines. Under the significant rule, `decision` has the verdict (improved / worse / inconclusive), ' +
    'n, mean and interval for the candidate and the re-measured best, the effect with its interval, and the runs spent; `noise` has the calibrated noise and the smallest detectable effect. ' +
    'Defaults to the latest experiment.',
  kind: 'read',
  idempotent: true,
  input: { id: experimentIdField.optional().describe('Experiment id; defaults to the latest.') },
  output: MetricReportSchema.shape,
  async handler(args, { loop }) {
    const report = await loop.readMetric(args.id);
    const e = report.experiment;
    const c = report.comparison;
    const summary =
      e.metric === null
        ? `Experiment ${e.id} is ${e.state}${e.reason ? `: ${e.reason}` : ''}.`
        : report.decision && report.decision.rule === 'significant'
          ? `Experiment ${e.id}: ${report.decision.verdict} after ${report.decision.runsSpent} run(s); ${report.metricName} ${round(report.decision.candidate.mean)} (n=${report.decision.candidate.n}) vs re-measured best ${round(report.decision.best.mean)} (n=${report.decision.best.n}), effect ${round(report.decision.effect)}${report.decision.effectInterval ? ` [${round(report.decision.effectInterval[0])}, ${round(report.decision.effectInterval[1])}]` : ''}; ${report.keepable ? 'keep would accept it' : 'keep would refuse it'}.`
          : `Experiment ${e.id}: ${report.metricName} ${e.metric}${c && c.bestMetric !== null && c.bestId !== e.id && c.delta !== null ? ` vs best ${c.bestMetric} (delta ${Number(c.delta!.toPrecision(6))}, ${c.improved ? 'improved' : 'not improved'})` : ''}; ${report.keepable ? 'keep would accept it' : 'keep would refuse it'}.`;
    return { summary, ...report };
  },
});

const round = (n: number | null) => (n === null ? 'n/a' : Number(n.toPrecision(6)));
