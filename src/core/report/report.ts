// `ratchet report`'s files: report.md and a self-contained report.html, both rendered from the same sections.
import { existsSync } from 'node:fs';
import { RatchetError } from '../errors.js';
import { ledgerPath, type Ledger } from '../ledger.js';
import { chartPng, renderChartSvg } from './chart.js';
import { capsFromStatus, gatherReport, reportSession, type Caps, type ReportData } from './data.js';
import { reportSections, type Inline } from './sections.js';

export { capsFromStatus, gatherReport, reportSession, type Caps, type ReportData } from './data.js';
export { chartPng, chartSvg, renderChartSvg } from './chart.js';

// ---------------------------------------------------------------- markdown

/** Text that markdown would read as markup (or as HTML) is escaped; a line break inside a cell would end the row. */
function mdText(s: string): string {
  return s.replace(/\r?\n|\r/g, ' ').replace(/([\\`*_<>|])/g, '\\$1');
}

function mdInline(parts: Inline | Inline[]): string {
  return (Array.isArray(parts) ? parts : [parts])
    .map((p) => (typeof p === 'string' ? mdText(p) : 'strong' in p ? `**${mdText(p.strong)}**` : `\`${p.code.replace(/`/g, "'")}\``))
    .join('');
}

/** report.md; `chart` is where the image lies relative to it (progress.png beside it, or an MCP resource URI). */
export function reportMarkdown(data: ReportData, opts: { chart?: string } = {}): string {
  const out: string[] = [];
  for (const b of reportSections(data)) {
    if ('heading' in b) out.push(`${'#'.repeat(b.level)} ${mdText(b.heading)}`);
    else if ('paragraph' in b) out.push(mdInline(b.paragraph));
    else if ('list' in b) out.push(b.list.map((item) => `- ${mdInline(item)}`).join('\n'));
    else if ('table' in b) {
      const row = (cells: string[]) => `| ${cells.join(' | ')} |`;
      out.push([row(b.table.head.map(mdText)), row(b.table.head.map(() => '---')), ...b.table.rows.map((r) => row(r.map((c) => mdInline(c))))].join('\n'));
    } else out.push(`![progress: every run over experiment number](${opts.chart ?? 'progress.png'})`);
  }
  return `${out.join('\n\n')}\n`;
}

// ---------------------------------------------------------------- html

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

function htmlInline(parts: Inline | Inline[]): string {
  return (Array.isArray(parts) ? parts : [parts]).map((p) => (typeof p === 'string' ? esc(p) : 'strong' in p ? `<strong>${esc(p.strong)}</strong>` : `<code>${esc(p.code)}</code>`)).join('');
}

const CSS = `body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:1000px;margin:2rem auto;padding:0 1rem;color:#222;line-height:1.45}
h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
table{border-collapse:collapse;margin:.5rem 0}th,td{border:1px solid #ddd;padding:.3rem .6rem;text-align:left;vertical-align:top}
th{background:#f5f5f5}td:first-child{white-space:nowrap}code{background:#f3f3f3;padding:0 .2rem;border-radius:3px}
figure{margin:1rem 0}figure svg{max-width:100%;height:auto}`;

/** The SVG inlined in HTML needs no namespace declarations, and the page then holds no URL at all. */
function inlineSvg(svg: string): string {
  return svg.replace(/\s+xmlns(:xlink)?="[^"]*"/g, '').replace(/^<\?xml[^>]*>\s*/, '');
}

/** One self-contained page: inline CSS, the chart as inline SVG, nothing fetched from anywhere. */
export function reportHtml(data: ReportData, svg: string): string {
  const body: string[] = [];
  for (const b of reportSections(data)) {
    if ('heading' in b) body.push(`<h${b.level}>${esc(b.heading)}</h${b.level}>`);
    else if ('paragraph' in b) body.push(`<p>${htmlInline(b.paragraph)}</p>`);
    else if ('list' in b) body.push(`<ul>${b.list.map((item) => `<li>${htmlInline(item)}</li>`).join('')}</ul>`);
    else if ('table' in b) {
      const head = `<tr>${b.table.head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr>`;
      body.push(`<table>${head}${b.table.rows.map((r) => `<tr>${r.map((c) => `<td>${htmlInline(c)}</td>`).join('')}</tr>`).join('')}</table>`);
    } else body.push(`<figure>${inlineSvg(svg)}</figure>`);
  }
  return `<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>${esc(`ratchet report: ${data.tag}`)}</title><style>${CSS}</style></head>\n<body>\n${body.join('\n')}\n</body></html>\n`;
}

export interface ReportFiles {
  markdown: string;
  html: string;
  svg: string;
  png: Buffer;
  data: ReportData;
}

/** Everything `ratchet report` writes, for one session. */
export async function buildReport(ledger: Ledger, sessionId: number, opts: { caps?: Caps | null } = {}): Promise<ReportFiles> {
  const data = gatherReport(ledger, sessionId, opts);
  const svg = await renderChartSvg(data);
  return { data, svg, png: chartPng(svg), markdown: reportMarkdown(data), html: reportHtml(data, svg) };
}

/** The active session's report data, else the latest session's: what the MCP resources show. */
export async function currentReportData(repo: string, loop: { readonly ledger: Ledger; status(): Promise<unknown> }): Promise<ReportData> {
  const session = existsSync(ledgerPath(repo)) ? reportSession(loop.ledger) : undefined;
  if (!session) throw new RatchetError('no_session', 'There is no session to report on yet.', 'Call start_session; the report covers the active session, or else the latest one.');
  // Caps and how the session finished come from status, which speaks for the active session only.
  const caps = session.active ? capsFromStatus(await loop.status().catch(() => null)) : null;
  return gatherReport(loop.ledger, session.id, { caps });
}
