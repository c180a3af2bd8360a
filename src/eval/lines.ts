// The output of `ratchet eval`: `case`/`assert` lines and summary lines, or the same as one JSON document.
// The server reads the lines back with core/cases.ts parseCases (and the summary as ordinary metric lines).

export type TrialStatus = 'pass' | 'fail' | 'error';

export interface CaseLine {
  case: string;
  /** 1-based. */
  trial: number;
  status: TrialStatus;
  /** Empty for an error: an error prints no assert lines. */
  assertions: { name: string; status: 'pass' | 'fail' }[];
  /** Why the case-trial is an error (--json only; the lines never carry prose). */
  reason?: string;
}

/** The summary, keyed as printed. */
export interface EvalSummary {
  pass_rate: number;
  cases_passed: number;
  errors: number;
  tokens?: number;
  cost_usd?: number;
  held_out_pass_rate?: number;
}

export interface EvalOutput {
  /** By case id, then trial. */
  cases: CaseLine[];
  summary: EvalSummary;
}

const SUMMARY_KEYS = ['pass_rate', 'cases_passed', 'errors', 'tokens', 'cost_usd', 'held_out_pass_rate'] as const;

export function formatLines(out: EvalOutput): string {
  const lines: string[] = [];
  for (const c of out.cases) {
    lines.push(`case ${c.case} ${c.trial} ${c.status}`);
    for (const a of c.assertions) lines.push(`assert ${c.case} ${c.trial} ${a.name} ${a.status}`);
  }
  for (const key of SUMMARY_KEYS) {
    const value = out.summary[key];
    if (value !== undefined) lines.push(`${key}: ${formatNumber(key, value)}`);
  }
  return `${lines.join('\n')}\n`;
}

export function formatJson(out: EvalOutput): string {
  return `${JSON.stringify({ cases: out.cases, ...out.summary }, null, 2)}\n`;
}

/** Rates to 2 decimals and dollars to 6, so a line never prints as 33.333333333333336. */
function formatNumber(key: (typeof SUMMARY_KEYS)[number], value: number): string {
  const places = key === 'cost_usd' ? 6 : key === 'tokens' || key === 'errors' ? 0 : 2;
  return String(Number(value.toFixed(places)));
}

/** Percentages as printed: 100 × part / whole, 0 when there is no whole. */
export function percent(part: number, whole: number): number {
  return whole === 0 ? 0 : Number(((100 * part) / whole).toFixed(2));
}
