// A few lines that bring an agent back into a session: tag, best against baseline, experiments, the last outcomes, the next step.
import { formatNumber } from '../core/format.js';
import type { ExperimentView } from '../core/views.js';
import { finishedOf, type SessionState } from './state.js';

const DESCRIPTION_CHARS = 80;

/** Null without an active session: there is nothing to resume. */
export function summaryLines(state: SessionState): string[] | null {
  const { status } = state;
  const session = status.session;
  if (!session) return null;
  const finished = finishedOf(state);
  const lines = [`ratchet session "${session.tag}" on branch ${session.branch}: ${finished ? `finished (${finished.reason})` : 'active'}.`];
  lines.push(bestLine(session.metricName, session.direction, session.bestMetric, session.bestExperimentId, session.baselineMetric));
  const total = Object.values(status.counts).reduce((a, b) => a + b, 0);
  const byState = Object.entries(status.counts)
    .map(([s, n]) => `${n} ${s.replace('_', ' ')}`)
    .join(', ');
  lines.push(`Experiments: ${total}${byState ? ` (${byState})` : ''}; ${status.runsSpent} run(s) in all.`);
  if (state.recent.length) lines.push(`Latest: ${state.recent.map(outcome).join('; ')}.`);
  if (!status.integrity.ok) lines.push(`Integrity: ${status.integrity.findings.length} finding(s); keep is refused until the user runs \`ratchet verify\` and \`ratchet integrity --accept\`.`);
  lines.push(`Next: ${status.next}`);
  return lines;
}

function bestLine(metric: string, direction: 'minimize' | 'maximize', best: number | null, bestId: number | null, baseline: number | null): string {
  if (best === null || baseline === null) return `${metric} (${direction}): no baseline measured yet.`;
  const gain = direction === 'minimize' ? baseline - best : best - baseline;
  const change = gain === 0 ? 'no gain yet' : `${formatNumber(Math.abs(gain))} ${gain > 0 ? 'better' : 'worse'}`;
  return `${metric} (${direction}): best ${formatNumber(best)}${bestId !== null ? ` (#${bestId})` : ''} against baseline ${formatNumber(baseline)}, ${change}.`;
}

function outcome(e: ExperimentView): string {
  const text = e.description.length > DESCRIPTION_CHARS ? `${e.description.slice(0, DESCRIPTION_CHARS - 1)}…` : e.description;
  const metric = e.metric === null ? '' : ` ${formatNumber(e.metric)}`;
  return `#${e.id} ${JSON.stringify(text)}${metric} → ${e.decision ?? e.state.replace('_', ' ')}`;
}
