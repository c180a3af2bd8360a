// read_metric: the measured result next to the current best, the statistical verdict, constraints, and a crash's log tail.
import { defineTool } from './define.js';
import { MetricReportSchema, type MetricReport } from '../core/views.js';
import { experimentFacts, shortText } from './describe.js';
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
  text: (report) => [...experimentFacts(report.experiment), ...metricFacts(report)],
});

/** Pass rates with their Wilson intervals, the paired counts, and the assertions that moved most. */
function pairedFacts(p: NonNullable<NonNullable<MetricReport['decision']>['paired']>): string[] {
  const pct = (n: number | null) => (n === null ? 'n/a' : n.toFixed(1));
  const rate = (side: { passRate: number | null; interval: [number, number] | null }) =>
    `${pct(side.passRate)}%${side.interval ? ` [${pct(side.interval[0])}, ${pct(side.interval[1])}]` : ''}`;
  const lines = [
    `paired${p.screening ? ' (screening against the best\'s last run)' : ''}: pass rate ${rate(p.candidate)} vs best ${rate(p.best)} (Wilson); ` +
      `${p.units} trial pairs: ${p.better} better, ${p.worse} worse; p(better) ${p.pBetter.toPrecision(2)}, p(worse) ${p.pWorse.toPrecision(2)}, per-look level ${p.alpha}`,
  ];
  const moved = p.assertions.filter((a) => a.change !== 'same');
  const show = (change: 'better' | 'worse') =>
    moved.filter((a) => a.change === change).slice(0, 5).map((a) => `${a.name} ${pct(a.best)}→${pct(a.candidate)}%`).join(', ');
  if (moved.some((a) => a.change === 'better')) lines.push(`assertions better: ${show('better')}`);
  if (moved.some((a) => a.change === 'worse')) lines.push(`assertions worse: ${show('worse')}`);
  return lines;
}

const round = (n: number | null) => (n === null ? 'n/a' : Number(n.toPrecision(6)));
const interval = (i: [number, number] | null) => (i ? ` [${round(i[0])}, ${round(i[1])}]` : '');
/** A crash's last lines in the text; the structured content has up to 50, read_log the rest. */
const TAIL_LINES_IN_TEXT = 20;

function metricFacts(r: MetricReport): string[] {
  const lines: string[] = [];
  const c = r.comparison;
  if (c && c.bestId !== null && c.bestId !== r.experiment.id) lines.push(`best: experiment ${c.bestId} at ${round(c.bestMetric)}; delta ${round(c.delta)} (${c.direction}, ${c.improved ? 'improved' : c.equal ? 'equal' : 'not improved'})`);
  if (r.constraints.length) {
    lines.push(`constraints: ${r.constraints.map((k) => `${k.metric} ${k.value ?? 'missing'}${k.min !== undefined ? ` >= ${k.min}` : ''}${k.max !== undefined ? ` <= ${k.max}` : ''} ${k.ok ? 'ok' : 'FAILED'}`).join('; ')}`);
  }
  const d = r.decision;
  if (d && d.rule === 'significant') {
    lines.push(
      `decision: ${d.verdict}; candidate ${round(d.candidate.mean)}${interval(d.candidate.interval)} n=${d.candidate.n}, best ${round(d.best.mean)}${interval(d.best.interval)} n=${d.best.n}; ` +
        `effect ${round(d.effect)}${interval(d.effectInterval)}; ${d.runsSpent} run(s)`,
    );
  }
  if (d?.paired) lines.push(...pairedFacts(d.paired));
  if (d) lines.push(`why: ${d.why}`);
  if (r.noise && (r.noise.sd !== null || r.noise.basis === 'cases')) {
    const basis = r.noise.basis === 'cases' ? 'from the case results (binomial)' : `sd ${round(r.noise.sd)} over ${r.noise.samples} calibration run(s)`;
    lines.push(`noise: ${basis}${r.noise.minDetectableEffect !== null ? `; smallest detectable effect ${round(r.noise.minDetectableEffect)}` : ''}`);
    for (const s of r.noise.suggestions) lines.push(`  to detect less: ${s}`);
  }
  if (r.logTail?.length) {
    const tail = r.logTail.slice(-TAIL_LINES_IN_TEXT).map((l) => shortText(l, 200));
    lines.push(`log tail (last ${tail.length} of ${r.logTail.length} line(s); read_log {id: ${r.experiment.id}} for more):`, ...tail);
  }
  return lines;
}
