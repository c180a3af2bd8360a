// read_metric: the measured result next to the current best, constraints, and a crash's log tail.
import { defineTool } from './define.js';
import { MetricReportSchema } from '../core/views.js';
import { experimentIdField } from './wait-experiment.js';

export const readMetric = defineTool({
  name: 'read_metric',
  title: 'Read an experiment\'s metric',
  description:
    'Call after an experiment finishes, before deciding. Shows the metric and secondary metrics, the comparison with the current best (delta, improved), the constraint checks, the duration, ' +
    'whether keep would accept it, and for a crash or timeout the last 50 log lines. Defaults to the latest experiment.',
  kind: 'read',
  idempotent: true,
  input: { id: experimentIdField.optional().describe('Experiment id; defaults to the latest.') },
  output: MetricReportSchema.shape,
  async handler(args, { loop }) {
    const report = loop.readMetric(args.id);
    const e = report.experiment;
    const c = report.comparison;
    const summary =
      e.metric === null
        ? `Experiment ${e.id} is ${e.state}${e.reason ? `: ${e.reason}` : ''}.`
        : `Experiment ${e.id}: ${report.metricName} ${e.metric}${c && c.bestMetric !== null && c.bestId !== e.id && c.delta !== null ? ` vs best ${c.bestMetric} (delta ${Number(c.delta!.toPrecision(6))}, ${c.improved ? 'improved' : 'not improved'})` : ''}; ${report.keepable ? 'keep would accept it' : 'keep would refuse it'}.`;
    return { summary, ...report };
  },
});
