// One-line summaries of experiments and their compact facts, shared by the tools that report one.
import type { ExperimentView } from '../core/views.js';
import { formatNumber } from '../core/format.js';

/** Descriptions run to 500 characters; the agent wrote them, so a reminder is enough. */
export function shortText(text: string, max = 80): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

export function describeExperiment(e: ExperimentView): string {
  const head = `Experiment ${e.id} (${shortText(e.description)})`;
  switch (e.state) {
    case 'running':
    case 'queued':
      return `${head} is ${e.state}. Call wait_experiment {id: ${e.id}}.`;
    case 'measured':
      if (e.decision) return `${head} measured ${e.metric} and was ${e.decision}.`;
      return e.kind === 'baseline'
        ? `${head} measured ${e.metric}; it is the starting best. status (or read_metric {id: ${e.id}}) now says the smallest gain this session can detect, and which setting would detect less.`
        : `${head} measured ${e.metric}. Call read_metric {id: ${e.id}}, then keep or revert.`;
    case 'refused':
      return `${head} was refused: ${e.reason}.`;
    default:
      return `${head} ${e.state.replace('_', ' ')}: ${e.reason ?? 'no reason recorded'}. Fix it and run again, or revert.`;
  }
}

/** `key: value` lines with what the agent acts on; the structured content has every field. */
export function experimentFacts(e: ExperimentView): string[] {
  const lines = [`experiment: ${e.id}, ${e.kind}${e.repeatOf !== null ? ` of ${e.repeatOf}` : ''}, ${e.state}${e.decision ? `, ${e.decision}${e.forced ? ' (forced)' : ''}` : ''}`];
  if (e.metric !== null) {
    const secondary = Object.entries(e.secondary).map(([k, v]) => `${k} ${formatNumber(v)}`);
    lines.push(`metric: ${formatNumber(e.metric)}${e.runs > 1 ? ` (mean of ${e.runs} runs)` : ''}${secondary.length ? `; ${secondary.join(', ')}` : ''}`);
  }
  if (e.metricLines !== null && e.metricLines > 1) lines.push(`metric lines printed: ${e.metricLines} (more than one without an evaluate step is suspicious)`);
  if (e.commit) {
    const d = e.diffStats;
    lines.push(`commit: ${e.commit.slice(0, 7)} on ${e.parentCommit.slice(0, 7)}${d ? `; diff ${d.files} file(s) +${d.insertions} -${d.deletions}` : ''}`);
  }
  const ran = [
    e.durationSeconds !== null ? `${e.durationSeconds}s` : null,
    e.peakMemoryMb !== null ? `peak memory ${e.peakMemoryMb} MB` : null,
    e.peakGpuMemoryMb !== null ? `peak GPU memory ${e.peakGpuMemoryMb} MB` : null,
    e.gpuUtilizationPercent !== null ? `GPU utilization ${e.gpuUtilizationPercent}% (mean)` : null,
    e.exitCode !== null ? `exit ${e.exitCode}` : null,
    e.signal ? `signal ${e.signal}` : null,
    e.gpus?.length ? `GPUs ${e.gpus.join(',')}` : null,
  ].filter((x) => x !== null);
  if (ran.length) lines.push(`ran: ${ran.join(', ')}`);
  // A failure's reason is already in the summary; a decision's is not.
  if (e.reason && e.state === 'measured') lines.push(`reason: ${e.reason}`);
  if (e.workspace) lines.push(`workspace: ${e.workspace}`);
  return lines;
}
