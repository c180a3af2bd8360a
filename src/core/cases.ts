// Case-by-case results a metric step printed (`ratchet eval`'s format): what the paired pass-rate test compares.

export type CaseOutcome = 'pass' | 'fail' | 'error';

/** One trial of one case in one run, with its assertions (none for an error: the harness failed, nothing was checked). */
export interface CaseTrial {
  case: string;
  trial: number;
  outcome: CaseOutcome;
  asserts: Record<string, boolean>;
}

/** One run's case trials, in the order the ledger recorded the runs. */
export interface RunCases {
  run: number;
  trials: CaseTrial[];
}

const CASE_LINE = /^case (\S+) (\d+) (pass|fail|error)\s*$/;
const ASSERT_LINE = /^assert (\S+) (\d+) (\S+) (pass|fail)\s*$/;
/** More than any real suite prints per run; a flood stops being parsed rather than filling the ledger. */
export const MAX_CASE_TRIALS = 10_000;

/**
 * The `case <id> <trial> pass|fail|error` and `assert <id> <trial> <name> pass|fail` lines of a step's output, or
 * null when it printed none. A repeated line replaces the earlier one; an assert line without its case line is dropped.
 */
export function parseCases(text: string): CaseTrial[] | null {
  const trials = new Map<string, CaseTrial>();
  const asserts: [string, string, boolean][] = [];
  for (const raw of text.split(/\r\n|\r|\n/)) {
    if (!raw.startsWith('case ') && !raw.startsWith('assert ')) continue;
    const c = CASE_LINE.exec(raw);
    if (c) {
      const key = `${c[1]}\0${Number(c[2])}`;
      if (!trials.has(key) && trials.size >= MAX_CASE_TRIALS) continue;
      trials.set(key, { case: c[1]!, trial: Number(c[2]), outcome: c[3] as CaseOutcome, asserts: {} });
      continue;
    }
    const a = ASSERT_LINE.exec(raw);
    if (a) asserts.push([`${a[1]}\0${Number(a[2])}`, a[3]!, a[4] === 'pass']);
  }
  if (!trials.size) return null;
  for (const [key, name, passed] of asserts) {
    const t = trials.get(key);
    if (t && t.outcome !== 'error') t.asserts[name] = passed;
  }
  return [...trials.values()];
}

/** How many assertions each case has: the most any of its trials reported (an error trial reports none). */
export function assertionCounts(runs: RunCases[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const r of runs) {
    for (const t of r.trials) counts.set(t.case, Math.max(counts.get(t.case) ?? 1, Object.keys(t.asserts).length));
  }
  return counts;
}

/** A trial's score: its passed assertions (all of a case without assert lines is one pass/fail); an error scores 0. */
export function trialScore(t: CaseTrial): number {
  if (t.outcome === 'error') return 0;
  const names = Object.keys(t.asserts);
  if (!names.length) return t.outcome === 'pass' ? 1 : 0;
  return names.filter((n) => t.asserts[n]).length;
}

/** Passes and checks of each assertion over some runs (an error trial counts as failing its case's every known assertion). */
export function assertionTallies(runs: RunCases[]): Map<string, { passed: number; total: number }> {
  const names = new Map<string, Set<string>>();
  for (const r of runs) for (const t of r.trials) for (const n of Object.keys(t.asserts)) (names.get(t.case) ?? names.set(t.case, new Set()).get(t.case)!).add(n);
  const tallies = new Map<string, { passed: number; total: number }>();
  for (const r of runs) {
    for (const t of r.trials) {
      for (const n of names.get(t.case) ?? []) {
        const key = `${t.case}/${n}`;
        const tally = tallies.get(key) ?? { passed: 0, total: 0 };
        tally.total++;
        if (t.asserts[n]) tally.passed++;
        tallies.set(key, tally);
      }
    }
  }
  return tallies;
}
