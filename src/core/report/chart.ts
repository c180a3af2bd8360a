// progress.png and progress.svg: every run over experiment number, as Karpathy's notebook draws it, plus the noise and the intervals.
import { Resvg } from '@resvg/resvg-js';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import type { Ledger } from '../ledger.js';
import { gatherReport, type Caps, type ReportData, type RunPoint } from './data.js';

const WIDTH = 900;
const HEIGHT = 450;
/** PNG pixels per SVG unit: about the notebook's 150 dpi. */
export const PNG_ZOOM = 2;
const FONT = 'DejaVu Sans, Liberation Sans, Arial, Helvetica, sans-serif';
const LABEL_CHARS = 45;
/**
 * Points drawn at most. Past it the discarded runs and re-measurements are thinned evenly (kept runs and the baseline
 * always drawn): at 5,000 runs this halves the SVG (1.6 MB to 0.7 MB), and no eye tells 5,000 grey dots from 2,000.
 */
export const MAX_POINTS = 2_000;

/** Every point when there are few; else all kept and baseline points and an even share of the rest. */
export function thinned(points: { experiment: number; value: number; category: Category }[]): { drawn: typeof points; left: number } {
  if (points.length <= MAX_POINTS) return { drawn: points, left: 0 };
  const always = points.filter((p) => p.category === 'kept' || p.category === 'baseline (calibration)');
  const rest = points.filter((p) => p.category !== 'kept' && p.category !== 'baseline (calibration)');
  const room = Math.max(0, MAX_POINTS - always.length);
  const stride = rest.length / Math.max(1, room);
  const sampled = room ? Array.from({ length: Math.min(room, rest.length) }, (_, i) => rest[Math.floor(i * stride)]!) : [];
  const drawn = [...always, ...sampled].sort((a, b) => a.experiment - b.experiment);
  return { drawn, left: points.length - drawn.length };
}

// The notebook's colours: faint grey for discarded runs, green with a dark edge for kept ones, a darker green for the best.
const CATEGORIES = ['kept', 'discarded', 'baseline (calibration)', 'best re-measured'] as const;
const COLOURS = ['#2ecc71', '#c8c8c8', '#34495e', '#9ec5e8'];

type Category = (typeof CATEGORIES)[number];

function categoryOf(p: RunPoint): Category {
  if (p.side === 'baseline') return 'baseline (calibration)';
  if (p.side === 'best') return 'best re-measured';
  return p.outcome === 'keep' || p.outcome === 'keep (forced)' ? 'kept' : 'discarded';
}

/** The y range: all of the improving side, and the worse side up to a span past the baseline, so one diverged run cannot flatten the rest. */
function yDomain(data: ReportData): { domain: [number, number] | null; hidden: number } {
  const values = data.points.map((p) => p.value);
  const baseline = data.baseline?.mean ?? null;
  if (!values.length || baseline === null) return { domain: null, hidden: 0 };
  const sd = data.noise?.sd ?? 0;
  const best = data.best?.mean ?? baseline;
  const span = Math.max(Math.abs(baseline - best), 4 * sd, Math.abs(baseline) * 1e-6, 1e-12);
  const minimize = data.direction === 'minimize';
  // Folded, not spread: a spread of a whole night's values overflows the stack past about 130,000 runs.
  const worst = minimize ? largest(values) : smallest(values);
  const limit = minimize ? Math.min(worst, baseline + span) : Math.max(worst, baseline - span);
  const edge = minimize ? Math.max(limit, baseline + sd) : Math.min(limit, baseline - sd);
  const intervals = data.experiments.flatMap((x) => (x.candidateRuns > 1 ? x.interval ?? [] : []));
  const far = minimize ? Math.min(smallest(values), smallest(intervals), best) : Math.max(largest(values), largest(intervals), best);
  const [lo, hi] = minimize ? [far, edge] : [edge, far];
  const margin = (hi - lo) * 0.08 || Math.abs(hi) * 0.01 || 1;
  const domain: [number, number] = [lo - margin, hi + margin];
  const hidden = values.filter((v) => v < domain[0] || v > domain[1]).length;
  return { domain, hidden };
}

/** The running best as a step line: one point per keep, carried on to the last experiment. */
function runningBest(data: ReportData): { experiment: number; best: number }[] {
  const steps: { experiment: number; best: number }[] = [];
  for (const x of data.experiments) {
    const kept = x.outcome === 'keep' || x.outcome === 'keep (forced)';
    if (kept && x.metric !== null) steps.push({ experiment: x.id, best: x.metric });
  }
  const last = data.experiments.at(-1);
  if (steps.length && last && last.id > steps.at(-1)!.experiment) steps.push({ experiment: last.id, best: steps.at(-1)!.best });
  return steps;
}

export function chartSpec(data: ReportData): TopLevelSpec {
  const { domain, hidden } = yDomain(data);
  const y = { type: 'quantitative' as const, title: `${data.metricName} (${data.direction === 'minimize' ? 'lower' : 'higher'} is better)`, scale: { zero: false, ...(domain ? { domain } : {}) } };
  const x = { field: 'experiment', type: 'quantitative' as const, title: 'Experiment #', scale: { nice: false, padding: 12 }, axis: { tickMinStep: 1, format: 'd' } };
  const ran = data.experiments.filter((e) => e.outcome !== 'refused').length;
  const keeps = data.kept.length;
  const crashed = data.crashes.length;
  const { drawn, left } = thinned(data.points.map((p) => ({ experiment: p.experiment, value: p.value, category: categoryOf(p) })));
  const notes = [
    left ? `${drawn.length} of ${drawn.length + left} runs drawn (discarded runs thinned evenly; every kept one shown)` : null,
    data.noise?.sd ? 'band: baseline ± 1 sd' : null,
    data.intervalConfidence !== null ? `bars: ${(data.intervalConfidence * 100).toFixed(1)}% intervals of repeated experiments` : null,
    crashed ? `${crashed} crashed or timed out (no figure)` : null,
    hidden ? `${hidden} run(s) beyond the worse edge not shown` : null,
  ].filter(Boolean);
  const band = data.baseline?.mean != null && data.noise?.sd ? [{ lo: data.baseline.mean - data.noise.sd, hi: data.baseline.mean + data.noise.sd }] : [];
  const intervals = data.experiments.flatMap((e) => (e.interval && e.candidateRuns > 1 ? [{ experiment: e.id, lo: e.interval[0], hi: e.interval[1], kept: e.outcome === 'keep' || e.outcome === 'keep (forced)' }] : []));
  const labels = data.kept.map((k) => ({ experiment: k.id, value: k.metric, label: k.description.length > LABEL_CHARS ? `${k.description.slice(0, LABEL_CHARS - 3)}...` : k.description }));
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    width: WIDTH,
    height: HEIGHT,
    background: 'white',
    title: { text: `ratchet ${data.tag}: ${ran} experiment${ran === 1 ? '' : 's'}, ${keeps} kept improvement${keeps === 1 ? '' : 's'}`, subtitle: notes.length ? notes.join(' · ') : undefined, anchor: 'start' },
    config: { font: FONT, axis: { gridOpacity: 0.35, labelFontSize: 11, titleFontSize: 13 }, title: { fontSize: 16, subtitleFontSize: 11, subtitleColor: '#555' }, view: { stroke: '#ddd' } },
    layer: [
      { name: 'noise_band', data: { values: band }, mark: { type: 'rect', color: '#34495e', opacity: 0.08, clip: true }, encoding: { y: { field: 'lo', ...y }, y2: { field: 'hi' } } },
      {
        name: 'intervals',
        data: { values: intervals },
        mark: { type: 'rule', strokeWidth: 1.5, clip: true },
        encoding: { x, y: { field: 'lo', ...y }, y2: { field: 'hi' }, color: { condition: { test: 'datum.kept', value: '#27ae60' }, value: '#aaaaaa' } },
      },
      { name: 'running_best', data: { values: runningBest(data) }, mark: { type: 'line', interpolate: 'step-after', color: '#27ae60', strokeWidth: 2, opacity: 0.75, clip: true }, encoding: { x, y: { field: 'best', ...y } } },
      {
        name: 'runs',
        data: { values: drawn },
        mark: { type: 'point', filled: true, clip: true },
        encoding: {
          x,
          y: { field: 'value', ...y },
          color: { field: 'category', type: 'nominal', scale: { domain: [...CATEGORIES], range: COLOURS }, legend: { title: null, orient: 'top-right', fillColor: 'white', padding: 6, labelLimit: 240 } },
          size: { condition: { test: "datum.category === 'kept'", value: 70 }, value: 22 },
          stroke: { condition: { test: "datum.category === 'kept'", value: '#000' }, value: null },
          strokeWidth: { value: 0.6 },
          opacity: { condition: { test: "datum.category === 'discarded'", value: 0.7 }, value: 1 },
        },
      },
      {
        name: 'labels',
        data: { values: labels },
        // Not clipped: a label of the last keeps may run past the plot, and the SVG grows to hold it.
        mark: { type: 'text', align: 'left', baseline: 'bottom', angle: -30, dx: 6, dy: -6, fontSize: 10, color: '#1a7a3a' },
        encoding: { x, y: { field: 'value', ...y }, text: { field: 'label' } },
      },
    ],
  } as TopLevelSpec;
}

/** The chart as SVG from data already gathered. Rendered headless: no canvas, no browser. */
export async function renderChartSvg(data: ReportData): Promise<string> {
  // Vega-Lite and Vega log warnings with console.warn; a chart is no reason to write to the server's stderr.
  const quiet = vega.logger(vega.None);
  const view = new vega.View(vega.parse(compile(chartSpec(data), { logger: quiet }).spec), { renderer: 'none', logger: quiet });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

export async function chartSvg(ledger: Ledger, sessionId: number, opts: { caps?: Caps | null } = {}): Promise<string> {
  return renderChartSvg(gatherReport(ledger, sessionId, { ...opts, logs: false }));
}

/** resvg options shared by the PNG and the tests that look at its pixels: the system's fonts, on white. */
export function rasterOptions(): ConstructorParameters<typeof Resvg>[1] {
  return { fitTo: { mode: 'zoom', value: PNG_ZOOM }, background: 'white', font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans', sansSerifFamily: 'DejaVu Sans' } };
}

export function chartPng(svg: string): Buffer {
  return new Resvg(svg, rasterOptions()).render().asPng();
}

const largest = (xs: number[]): number => xs.reduce((a, b) => (b > a ? b : a), -Infinity);
const smallest = (xs: number[]): number => xs.reduce((a, b) => (b < a ? b : a), Infinity);
