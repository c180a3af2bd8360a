// One-line summaries of experiments, shared by the tools that report one.
import type { ExperimentView } from '../core/views.js';

export function describeExperiment(e: ExperimentView): string {
  const head = `Experiment ${e.id} (${e.description})`;
  switch (e.state) {
    case 'running':
    case 'queued':
      return `${head} is ${e.state}. Call wait_experiment {id: ${e.id}}.`;
    case 'measured':
      if (e.decision) return `${head} measured ${e.metric} and was ${e.decision}.`;
      return e.kind === 'baseline'
        ? `${head} measured ${e.metric}; it is the starting best.`
        : `${head} measured ${e.metric}. Call read_metric {id: ${e.id}}, then keep or revert.`;
    case 'refused':
      return `${head} was refused: ${e.reason}.`;
    default:
      return `${head} ${e.state.replace('_', ' ')}: ${e.reason ?? 'no reason recorded'}. Fix it and run again, or revert.`;
  }
}
