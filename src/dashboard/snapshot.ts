// What the dashboard shows, read from the ledger as another reader would: sessions, experiments, chart, status and the current run.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { LoopContext } from '../core/context.js';
import { experimentDetail, type ExperimentDetail } from '../core/experiment-detail.js';
import { ledgerPath, type ExperimentRow } from '../core/ledger.js';
import { readLogPage } from '../core/log-reader.js';
import { ResearchLoop } from '../core/loop.js';
import { activeRun, noiseReport, progressOf, sessionView, toView } from '../core/reports.js';
import type { Noise, SessionView, Status } from '../core/views.js';
import { sessionChart, type Chart } from './chart.js';

/** The table shows the newest experiments; a night of thousands stays a page that loads at once. */
export const MAX_TABLE_ROWS = 1000;
const RUNNING_LOG_LINES = 20;

export interface TableRow {
  id: number;
  kind: string;
  state: string;
  decision: string | null;
  forced: boolean;
  verdict: string | null;
  effect: number | null;
  interval: [number, number] | null;
  metric: number | null;
  runs: number;
  description: string;
  reason: string | null;
  durationSeconds: number | null;
  peakMemoryMb: number | null;
}

export interface RunningView {
  id: number;
  /** The run in progress: the experiment itself or its current repeat. */
  runId: number;
  description: string;
  phase: string;
  elapsedSeconds: number;
  budgetSeconds: number;
  logTail: string[];
}

export interface Snapshot {
  version: number;
  repo: string;
  sessions: { id: number; tag: string; active: boolean; createdAt: string }[];
  tag: string | null;
  session: SessionView | null;
  active: boolean;
  experiments: TableRow[];
  totalExperiments: number;
  /** svg is null when it is the one this watcher was sent last (same key): a long night's chart is large. */
  chart: (Omit<Chart, 'svg'> & { key: string; svg: string | null }) | null;
  /** The status tool's answer; it speaks of the active session. */
  status: Status | null;
  noise: Noise | null;
  running: RunningView | null;
  message: string | null;
}

/**
 * Reads only: the ledger through its own connection, the status through a ResearchLoop that never
 * claims the repo (as `ratchet status` does), so a `ratchet serve` driving the repo is not disturbed.
 */
export class DashboardData {
  private ctx: LoopContext;
  private loop: ResearchLoop;
  private version = 0;
  /** Drawing the chart is the costly part of a snapshot; each session's is redrawn only when what it plots changed. */
  private charts = new Map<number, { key: string; value: Promise<Chart> }>();

  constructor(readonly repo: string, log: Logger) {
    this.ctx = new LoopContext({ repo, logger: log });
    this.loop = new ResearchLoop({ repo, logger: log, observer: true });
  }

  /** A counter that moves whenever another process commits to the ledger (SQLite's data_version), or once it appears. */
  currentVersion(): number {
    if (!this.ready()) return 0;
    if (this.version === 0 || this.ctx.ledger.externallyModified()) this.version++;
    return this.version;
  }

  async snapshot(tag: string | null): Promise<Snapshot> {
    const empty: Snapshot = { version: this.currentVersion(), repo: this.repo, sessions: [], tag: null, session: null, active: false, experiments: [], totalExperiments: 0, chart: null, status: null, noise: null, running: null, message: null };
    const status = await this.loop.status();
    if (!this.ready()) return { ...empty, status, message: 'No session has run in this repo yet: the agent starts one with start_session. This page updates when it does.' };
    const ledger = this.ctx.ledger;
    const sessions = ledger.sessionList();
    const session = (tag === null ? undefined : ledger.sessionByTag(tag)) ?? ledger.activeSession() ?? ledger.latestSession();
    if (!session) return { ...empty, status, message: 'No session has run in this repo yet: the agent starts one with start_session.' };
    const { rows, total } = ledger.listExperiments(session.id, { limit: MAX_TABLE_ROWS });
    const repeats = ledger.repeatCounts(session.id);
    const config = this.ctx.configOf(session);
    return {
      ...empty,
      sessions,
      tag: session.tag,
      session: sessionView(this.ctx, session),
      active: session.active,
      experiments: rows.map((e) => this.row(e, 1 + (repeats.get(e.id) ?? 0))),
      totalExperiments: total,
      chart: await this.chartOf(session.id, rows, total),
      status: session.active ? status : null,
      noise: noiseReport(this.ctx, session, config),
      running: session.active ? this.running() : null,
      message: tag !== null && tag !== session.tag ? `There is no session "${tag}"; showing ${session.tag}.` : null,
    };
  }

  /** The run in progress with its latest log lines; cheap enough to send every few seconds. */
  running(): RunningView | null {
    if (!this.ready()) return null;
    const e = this.ctx.ledger.unfinishedExperiments()[0];
    const session = e ? this.ctx.ledger.session(e.sessionId) : undefined;
    if (!e || !session) return null;
    const run = activeRun(this.ctx, e);
    const p = progressOf(this.ctx, run, this.ctx.configOf(session));
    return { id: e.id, runId: run.id, description: e.description, phase: p.phase, elapsedSeconds: p.elapsedSeconds, budgetSeconds: p.budgetSeconds, logTail: [] };
  }

  async runningWithLog(): Promise<RunningView | null> {
    const r = this.running();
    if (!r) return null;
    const page = await readLogPage(join(this.ctx.runDir(r.runId), `${r.phase}.log`), { limit: RUNNING_LOG_LINES });
    return { ...r, logTail: page.lines.map((l) => l.text) };
  }

  detail(id: number): Promise<ExperimentDetail> {
    return experimentDetail(this.ctx, id);
  }

  close(): void {
    this.loop.close();
    this.ctx.closeLedger();
    this.ctx.git.close();
  }

  /** The ledger is opened only once it exists: the dashboard never creates one. */
  private ready(): boolean {
    return existsSync(ledgerPath(this.repo));
  }

  /** What the chart plots: finished runs, measured values and decisions (a run merely starting changes none of them). */
  private async chartOf(sessionId: number, rows: ExperimentRow[], total: number): Promise<NonNullable<Snapshot['chart']>> {
    const plotted = rows.map((e) => `${e.id}:${e.decision ?? ''}:${e.metric ?? ''}`).join(',');
    const key = createHash('sha256').update(`${sessionId}|${total}|${this.ctx.ledger.runsSpent(sessionId).runs}|${plotted}`).digest('hex').slice(0, 16);
    let cached = this.charts.get(sessionId);
    if (cached?.key !== key) this.charts.set(sessionId, (cached = { key, value: sessionChart(this.ctx.ledger, sessionId) }));
    return { key, ...(await cached.value) };
  }

  private row(e: ExperimentRow, runs: number): TableRow {
    const v = toView(e, runs);
    return {
      id: e.id,
      kind: e.kind,
      state: e.state,
      decision: e.decision,
      forced: e.forced,
      verdict: e.verdict?.verdict ?? null,
      effect: e.verdict?.effect ?? null,
      interval: e.verdict?.effectInterval ?? null,
      metric: e.metric,
      runs: v.runs,
      description: e.description,
      reason: v.reason,
      durationSeconds: v.durationSeconds,
      peakMemoryMb: v.peakMemoryMb,
    };
  }
}
