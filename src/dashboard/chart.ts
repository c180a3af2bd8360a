// The session's chart for the dashboard: the report's chartSvg where it is built, else a placeholder that says why.
import type { Ledger } from '../core/ledger.js';

type ChartSvg = (ledger: Ledger, sessionId: number) => Promise<string>;

// Resolved at run time so the dashboard builds and runs whether or not the report's chart module is there yet.
const CHART_MODULE = '../core/report/chart.js';
let loaded: Promise<ChartSvg | null> | null = null;

function chartModule(): Promise<ChartSvg | null> {
  loaded ??= import(CHART_MODULE).then(
    (m: { chartSvg?: ChartSvg }) => (typeof m.chartSvg === 'function' ? m.chartSvg : null),
    () => null,
  );
  return loaded;
}

export interface Chart {
  svg: string;
  /** Why the chart is a placeholder, else null. */
  note: string | null;
}

export async function sessionChart(ledger: Ledger, sessionId: number): Promise<Chart> {
  const chartSvg = await chartModule();
  if (!chartSvg) return { svg: placeholder('The chart needs ratchet\'s report module, which this build lacks.'), note: 'chart module missing' };
  try {
    return { svg: await chartSvg(ledger, sessionId), note: null };
  } catch (err) {
    return { svg: placeholder(`The chart could not be drawn: ${(err as Error).message}`), note: (err as Error).message };
  }
}

function placeholder(text: string): string {
  const escaped = text.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="640" height="120" viewBox="0 0 640 120"><rect width="640" height="120" fill="#f6f6f4" stroke="#ccc"/><text x="320" y="64" font-family="sans-serif" font-size="14" text-anchor="middle" fill="#555">${escaped}</text></svg>`;
}
