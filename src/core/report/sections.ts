// The report's content, once, as plain blocks: report.md and report.html are two renderings of the same sections.
import type { Crash, ExperimentSummary, Interval, ReportData } from './data.js';

export type Inline = string | { strong: string } | { code: string };
export type Block =
  | { heading: string; level: 1 | 2 | 3 }
  | { paragraph: Inline[] }
  | { list: Inline[][] }
  | { table: { head: string[]; rows: Inline[][] } }
  | { chart: true };

export function duration(seconds: number): string {
  if (seconds < 90) return `${Math.round(seconds)} s`;
  const minutes = Math.round(seconds / 60);
  if (minutes < 90) return `${minutes} min`;
  return `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, '0')} min`;
}

const percent = (part: number, whole: number) => (whole > 0 ? `${Math.round((100 * part) / whole)}%` : '—');

export function reportSections(data: ReportData): Block[] {
  const num = (n: number | null | undefined) => (n === null || n === undefined ? '—' : n.toFixed(data.decimals));
  const signed = (n: number | null) => (n === null ? '—' : `${n > 0 ? '+' : ''}${n.toFixed(data.decimals)}`);
  const interval = (i: Interval | null) => (i ? `[${num(i[0])}, ${num(i[1])}]` : '—');
  const withInterval = (mean: number | null, i: Interval | null) => `${num(mean)}${i ? ` ${interval(i)}` : ''}`;
  const blocks: Block[] = [{ heading: `Morning report: session ${data.tag}`, level: 1 }];

  blocks.push({ paragraph: headline(data, num) });
  const facts: Inline[][] = [];
  if (data.baseline) facts.push([`Baseline #${data.baseline.id}: ${withInterval(data.baseline.mean, data.baseline.interval)} over ${data.noise?.samples ?? 0} calibration run(s).`]);
  if (data.best && data.best.id !== data.baseline?.id) facts.push([`Best #${data.best.id} (${data.best.description}): ${withInterval(data.best.mean, data.best.interval)}, on branch `, { code: data.branch }, '.']);
  facts.push([
    data.intervalConfidence !== null
      ? `Intervals: ${(data.intervalConfidence * 100).toFixed(1)}% per look, from the session's pooled noise, as the significant rule decided with them.`
      : 'Rule: greedy (one run each, strictly better keeps), so there are no intervals; a keep may be noise.',
  ]);
  blocks.push({ list: facts });

  blocks.push({ heading: 'Time', level: 2 });
  blocks.push({
    table: {
      head: ['Wall time', 'Running', 'Idle', 'Ideas', 'Ideas per hour', 'Runs'],
      rows: [
        [
          duration(data.wallSeconds),
          `${duration(data.runningSeconds)} (${percent(data.runningSeconds, data.wallSeconds)})`,
          `${duration(Math.max(0, data.wallSeconds - data.runningSeconds))} (${percent(data.wallSeconds - data.runningSeconds, data.wallSeconds)})`,
          String(data.ideas),
          data.wallSeconds > 0 ? (data.ideas / (data.wallSeconds / 3600)).toFixed(1) : '—',
          String(data.runs),
        ],
      ],
    },
  });
  blocks.push({ paragraph: [`From ${data.startedAt} to ${data.endedAt}${data.active ? ' (still active)' : ''}. Running is time with an experiment in flight; idle is the rest (the agent reading, editing or stuck). Ideas are the agent's candidates, refusals included; runs include repeats and calibration.`] });

  blocks.push({ heading: 'Kept changes', level: 2 });
  if (data.kept.length) {
    blocks.push({
      table: {
        head: ['#', 'Change', data.metricName, 'Effect', 'Effect interval', 'Runs'],
        rows: data.kept.map((k) => [`${k.id}`, k.outcome === 'keep (forced)' ? `${k.description} (forced: ${k.reason ?? 'no reason'})` : k.description, num(k.metric), signed(k.effect), interval(k.effectInterval), String(k.runs)]),
      },
    });
    blocks.push({ paragraph: ['Effect is the improvement over the best at the time, positive when better.'] });
  } else blocks.push({ paragraph: ['No change was kept: the branch still holds the baseline.'] });

  blocks.push({ heading: 'Tried and rejected', level: 2 });
  if (data.rejected.length) {
    blocks.push({ paragraph: ['Grouped by what each description names: its words without numbers, filler words and change verbs ("increase", "lower"), the first two kept.'] });
    blocks.push({
      list: data.rejected.map((g) => [{ strong: g.topic }, ` (${g.items.length}): `, g.items.map((x) => rejectedLine(x, signed, interval)).join('; ')]),
    });
  } else blocks.push({ paragraph: ['Nothing was rejected.'] });

  blocks.push({ heading: 'Crashes', level: 2 });
  if (data.crashes.length) {
    blocks.push({ table: { head: ['#', 'Change', 'What happened', 'Cause'], rows: data.crashes.map((c) => crashRow(c)) } });
  } else blocks.push({ paragraph: ['No run crashed or ran out of time.'] });

  if (data.refusals.length) {
    blocks.push({ heading: 'Refusals', level: 2 });
    blocks.push({ list: data.refusals.map((r) => [`#${r.id} ${r.description}: ${r.reason ?? 'no reason recorded'}`]) });
  }

  blocks.push({ heading: 'Noise', level: 2 });
  const n = data.noise;
  blocks.push({
    list: n
      ? [
          [`Calibration: ${n.samples} run(s) of the baseline, sd ${n.sd === null ? '— (one run)' : num(n.sd)}.`],
          [`Pooled over every group of repeated runs: sd ${num(n.pooledSd)} (${n.df} degrees of freedom).`],
          [n.minDetectableEffect !== null ? `Smallest improvement the session detects 80% of the time: ${num(n.minDetectableEffect)}.` : 'No smallest detectable improvement: it needs the significant rule and a noise figure.'],
          [`Figures are written to ${data.decimals} decimals: one digit past the calibration noise (six when it is unknown or zero).`],
        ]
      : [['No baseline was measured.']],
  });

  blocks.push({ heading: 'Plateau', level: 2 });
  blocks.push({
    paragraph: [
      `${data.plateau.sinceKeep} experiment(s) since the last keep; status reports a plateau after ${data.plateau.window}.${data.plateau.reached ? ' The session reached it.' : ''}`,
    ],
  });

  blocks.push({ heading: 'Caps', level: 2 });
  blocks.push(capsBlock(data));

  blocks.push({ heading: 'Progress', level: 2 });
  blocks.push({ chart: true });
  return blocks;
}

function headline(data: ReportData, num: (n: number | null) => string): Inline[] {
  const better = data.direction === 'minimize' ? 'lower is better' : 'higher is better';
  const base = data.baseline?.mean ?? null;
  const best = data.best?.mean ?? null;
  if (base === null) return [{ strong: `${data.metricName}: no baseline yet` }, ` (${better}).`];
  const change =
    data.improvement !== null && data.improvement > 0
      ? `improved by ${num(data.improvement)}${base !== 0 ? ` (${((100 * data.improvement) / Math.abs(base)).toFixed(2)}%)` : ''}`
      : 'no improvement kept';
  return [{ strong: `${data.metricName} ${num(base)} → ${num(best)}` }, ` (${better}): ${change}, over ${data.ideas} idea(s) and ${data.runs} run(s) in ${duration(data.wallSeconds)}.`];
}

function rejectedLine(x: ExperimentSummary, signed: (n: number | null) => string, interval: (i: Interval | null) => string): string {
  const what = x.outcome === 'discard' ? x.verdict ?? 'discarded' : x.outcome;
  const effect = x.effect !== null ? ` ${signed(x.effect)}${x.effectInterval ? ` ${interval(x.effectInterval)}` : ''}` : '';
  return `#${x.id} ${x.description} (${what}${effect})`;
}

function crashRow(c: Crash): Inline[] {
  const cause = [c.reason ?? c.exit, c.lastLogLine ? `last log line: ${c.lastLogLine}` : null].filter(Boolean).join('; ') || 'no reason recorded';
  return [`${c.id}`, c.description, c.outcome === 'timeout' ? 'timed out' : 'crashed', cause];
}

function capsBlock(data: ReportData): Block {
  const caps = data.caps;
  if (!caps) return { paragraph: ['No caps reported: the session is not the active one, or its status has no limits.'] };
  const items: Inline[][] = [];
  items.push([caps.finished ? `Finished: ${caps.finished.reason}${caps.finished.at ? ` (at ${caps.finished.at})` : ''}.` : 'Not finished: no cap was reached and no one stopped it.']);
  for (const [name, value] of Object.entries(caps.limits ?? {})) {
    const v = value as { used?: unknown; limit?: unknown } | null;
    items.push([v && typeof v === 'object' && 'used' in v ? `${name}: ${String(v.used)} of ${v.limit === null || v.limit === undefined ? 'no limit' : String(v.limit)}` : `${name}: ${JSON.stringify(value)}`]);
  }
  return { list: items };
}
