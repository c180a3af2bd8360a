// One experiment in full, for `ratchet show` and the dashboard: what it tried, how it ran, what it measured, its diff and its log.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { LoopContext } from './context.js';
import { runGit } from './git/run.js';
import type { ExperimentRow } from './ledger.js';
import { readLogPage } from './log-reader.js';
import { currentReport } from './repeats.js';
import { experimentView } from './reports.js';
import type { DecisionReport, ExperimentView } from './views.js';

/** A diff longer than this is cut: the page and the terminal stay usable, `git diff` shows the rest. */
export const MAX_DIFF_BYTES = 512 * 1024;
const LOG_TAIL_LINES = 50;

export interface DetailSample {
  /** The run that measured it: the experiment itself or one of its repeats. */
  run: number;
  /** Which commit the run measured: the candidate's, or the best's re-measured beside it. */
  side: 'candidate' | 'best';
  name: string;
  value: number;
  source: 'run' | 'evaluate';
  host: string;
}

export interface ExperimentDetail {
  experiment: ExperimentView;
  tag: string;
  metricName: string;
  direction: 'minimize' | 'maximize';
  /** The recorded verdict, or where a candidate still being measured stands. */
  verdict: DecisionReport | null;
  /** The effect's interval (improvement in the metric's direction), when there is one. */
  interval: [number, number] | null;
  samples: DetailSample[];
  /** Unified diff of the experiment's commit against its parent; empty when there is none (see diffNote). */
  diff: string;
  diffNote: string | null;
  /** The last lines of the run's log (the evaluate step's log is evaluateLogTail). */
  logTail: string;
  logPath: string;
  evaluateLogTail: string | null;
}

export async function experimentDetail(ctx: LoopContext, id: number): Promise<ExperimentDetail> {
  const e = ctx.requireExperiment(id);
  const session = ctx.ledger.session(e.sessionId)!;
  const config = ctx.configOf(session);
  let verdict = e.verdict;
  // A candidate still being measured shows where it stands; a decided one only what was recorded (greedy records none).
  if (!verdict && e.kind === 'candidate' && e.decision === null && (e.state === 'measured' || e.phase === 'repeats')) verdict = currentReport(ctx, e, session, config);
  const runDir = ctx.runDir(e.id);
  const evaluateLog = join(runDir, 'evaluate.log');
  const { diff, note } = await diffOf(ctx, e);
  return {
    experiment: experimentView(ctx, e),
    tag: session.tag,
    metricName: config.metric.name,
    direction: config.metric.direction,
    verdict,
    interval: verdict?.effectInterval ?? null,
    samples: samplesOf(ctx, e),
    diff,
    diffNote: note,
    logTail: await logTail(join(runDir, 'run.log')),
    logPath: join(runDir, 'run.log'),
    evaluateLogTail: existsSync(evaluateLog) ? await logTail(evaluateLog) : null,
  };
}

function samplesOf(ctx: LoopContext, e: ExperimentRow): DetailSample[] {
  const runs = e.kind === 'repeat' ? [e] : ctx.ledger.runsOf(e.id);
  const candidateCommit = e.kind === 'repeat' ? null : e.commit;
  return runs.flatMap((run) =>
    ctx.ledger.samples(run.id).map((s) => ({
      run: run.id,
      side: candidateCommit === null || run.commit === candidateCommit ? ('candidate' as const) : ('best' as const),
      name: s.name,
      value: s.value,
      source: s.source,
      host: s.host,
    })),
  );
}

/** The candidate's change as git shows it, with no external diff driver or textconv filter from the repo. */
async function diffOf(ctx: LoopContext, e: ExperimentRow): Promise<{ diff: string; note: string | null }> {
  if (e.kind === 'repeat') return { diff: '', note: `A repeat re-measures a commit of experiment #${e.repeatOf}; its diff is there (ratchet show ${e.repeatOf}).` };
  if (e.kind === 'baseline') return { diff: '', note: 'The baseline is the commit the session started from: there is no change to show.' };
  if (!e.commit) return { diff: '', note: e.state === 'refused' ? 'Refused before anything was committed: the change was never recorded.' : 'No commit was recorded for this experiment.' };
  const args = ['diff', '--no-ext-diff', '--no-textconv', '--no-color', '--src-prefix=a/', '--dst-prefix=b/', e.parentCommit, e.commit, '--'];
  // Read one byte past the cap at most: a huge change (a data file, generated code) is never held whole in memory.
  const r = await runGit(ctx.repo, args, { allowFail: true, maxStdoutBytes: MAX_DIFF_BYTES + 1 });
  if (r.code !== 0) {
    const tag = ctx.ledger.session(e.sessionId)?.tag ?? '<tag>';
    return { diff: '', note: `git could not diff ${e.parentCommit.slice(0, 7)}..${e.commit.slice(0, 7)} (${r.stderr.trim() || `exit ${r.code}`}). Restore the evidence refs from .ratchet/evidence-${tag}.bundle, then try again.` };
  }
  if (!r.truncated && r.stdout.length <= MAX_DIFF_BYTES) return { diff: r.stdout.toString('utf8'), note: null };
  const shown = r.stdout.subarray(0, r.stdout.lastIndexOf(0x0a, MAX_DIFF_BYTES) + 1).toString('utf8');
  return { diff: shown, note: `The diff is over ${MAX_DIFF_BYTES} bytes; the first ${Buffer.byteLength(shown)} are shown. For all of it: git diff ${e.parentCommit.slice(0, 12)} ${e.commit.slice(0, 12)}` };
}

async function logTail(path: string): Promise<string> {
  const page = await readLogPage(path, { limit: LOG_TAIL_LINES });
  return page.lines.map((l) => l.text).join('\n');
}
