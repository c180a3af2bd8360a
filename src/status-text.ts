// The status as a person reads it: a few lines for `ratchet status`, and the compact text of the status tool.
import { parseConfig } from './core/config.js';
import { formatNumber } from './core/format.js';
import type { Status } from './core/views.js';

export interface StatusTextOptions {
  /** The session's decision rule, when the caller knows it (the status view does not carry it). */
  rule?: string | null;
  /** Leave out the `Next:` line (the status tool's summary already ends with it). */
  next?: boolean;
}

export function statusLines(s: Status, opts: StatusTextOptions = {}): string[] {
  const lines: string[] = [];
  if (s.session) {
    const x = s.session;
    lines.push(`Session ${x.tag} on ${x.branch}, started ${x.createdAt.replace('T', ' ').replace(/\.\d+Z$|Z$/, ' UTC')}`);
    lines.push(`Best: ${bestVsBaseline(s)}${opts.rule ? `; rule: ${opts.rule}` : ''}`);
    lines.push(`Experiments: ${experimentCounts(s.counts)}; ${s.runsSpent} run(s)`);
  } else {
    lines.push('No session yet.');
  }
  if (s.finished) lines.push(`Finished: ${s.finished.reason}${s.finished.at ? ` (${s.finished.at})` : ''}`);
  const caps = limitsText(s.limits);
  if (caps) lines.push(`Limits: ${caps}`);
  if (s.running) {
    const r = s.running;
    lines.push(`Running: experiment ${r.id}, ${r.phase} ${r.elapsedSeconds}s of ${r.budgetSeconds}s${r.lastLogLine ? ` | ${r.lastLogLine.slice(0, 120)}` : ''}`);
  }
  if (s.awaitingDecision !== null) lines.push(`Awaiting decision: experiment ${s.awaitingDecision}`);
  const p = s.parallel;
  if (p && p.slots > 1) {
    const flying = p.inFlight.map((e) => `#${e.id} ${e.phase} ${e.elapsedSeconds}s`).join(', ') || 'none';
    lines.push(`Parallel: ${p.inFlight.length} of ${p.slots} slot(s) busy (${flying})${p.queued.length ? `; queued ${p.queued.map((id) => `#${id}`).join(', ')}` : ''}${p.awaitingDecision.length ? `; awaiting a decision ${p.awaitingDecision.map((id) => `#${id}`).join(', ')}` : ''}`);
  }
  if (s.noise && (s.noise.sd !== null || s.noise.basis === 'cases')) {
    const mde = s.noise.minDetectableEffect;
    const basis = s.noise.basis === 'cases' ? 'binomial, from the case results' : `sd ${formatNumber(s.noise.sd!)} over ${s.noise.samples} calibration run(s)`;
    lines.push(`Noise: ${basis}${mde !== null ? `; smallest detectable effect ${formatNumber(mde)}` : ''}`);
    for (const suggestion of s.noise.suggestions) lines.push(`  To detect less: ${suggestion}`);
  }
  if (s.plateau?.reached && s.plateau.message) lines.push(`Plateau: ${s.plateau.message}`);
  lines.push(s.integrity.ok ? 'Integrity: ok' : `Integrity: ${s.integrity.findings.length} finding(s): ${s.integrity.findings.join('; ')}`);
  // The error names every bad key on lines of its own.
  if (!s.config.valid) lines.push(`Config: ${s.config.error ?? 'ratchet.json is invalid'}`);
  for (const a of s.advice) lines.push(`Advice: ${a}`);
  if (opts.next !== false) lines.push(`Next: ${s.next}`);
  return lines;
}

export function statusText(s: Status, opts: StatusTextOptions = {}): string {
  return `${statusLines(s, opts).join('\n')}\n`;
}

function bestVsBaseline(s: Status): string {
  const x = s.session!;
  const better = x.direction === 'minimize' ? 'lower is better' : 'higher is better';
  if (x.bestMetric === null) return `${x.metricName} not measured yet (${better})`;
  const where = x.bestExperimentId !== null ? ` (experiment ${x.bestExperimentId})` : '';
  if (x.baselineMetric === null) return `${x.metricName} ${formatNumber(x.bestMetric)}${where}, no baseline measured (${better})`;
  const delta = x.bestMetric - x.baselineMetric;
  const relative = x.baselineMetric !== 0 ? ` (${delta >= 0 ? '+' : ''}${Number(((100 * delta) / Math.abs(x.baselineMetric)).toPrecision(3))}%)` : '';
  const change = delta === 0 ? 'no change' : `${delta > 0 ? '+' : ''}${formatNumber(delta)}${relative}`;
  return `${x.metricName} ${formatNumber(x.bestMetric)}${where} vs baseline ${formatNumber(x.baselineMetric)}: ${change}, ${better}`;
}

function experimentCounts(counts: Record<string, number>): string {
  const entries = Object.entries(counts).filter(([, n]) => n > 0);
  const total = entries.reduce((sum, [, n]) => sum + n, 0);
  return entries.length ? `${total} (${entries.map(([state, n]) => `${n} ${state.replace('_', ' ')}`).join(', ')})` : '0';
}

/** Each cap that is set, as `what used of limit`; the deadline in hours and minutes. */
function limitsText(limits: Status['limits']): string | null {
  if (!limits) return null;
  const caps: [string, { used: number; limit: number | null; reached: boolean } | null, (n: number) => string][] = [
    ['experiments', limits.experiments, formatNumber],
    ['runs', limits.runs, formatNumber],
    ['time', limits.deadline, duration],
    ['crashes in a row', limits.consecutiveCrashes, formatNumber],
    ['cost', limits.cost, (n) => `${formatNumber(n)}${limits.cost ? ` ${limits.cost.unit}` : ''}`],
  ];
  const parts = caps
    .filter(([, cap]) => cap && cap.limit !== null)
    .map(([name, cap, show]) => `${name} ${show(cap!.used)} of ${show(cap!.limit!)}${cap!.reached ? ' (reached)' : ''}`);
  return parts.length ? parts.join(', ') : null;
}

function duration(seconds: number): string {
  const minutes = Math.floor(seconds / 60);
  return minutes < 60 ? `${minutes}m` : `${Math.floor(minutes / 60)}h ${String(minutes % 60).padStart(2, '0')}m`;
}

/** The decision rule of a session's pinned config, or null when it cannot be read. */
export function sessionRule(pinnedConfig: unknown): string | null {
  try {
    return parseConfig(pinnedConfig).decision.rule;
  } catch {
    return null;
  }
}
