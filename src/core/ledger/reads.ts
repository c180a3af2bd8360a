// The Ledger's reads: typed rows, keyset pages, counts from running totals, and measurements, each served by an index.
import type Database from 'better-sqlite3';
import { RatchetError } from '../errors.js';
import { toExperiment, toSample, toSession, toSessionEnd, type ExperimentRow, type ExperimentState, type GpuUsage, type Measurement, type SampleRow, type SessionEndRow, type SessionRow } from './rows.js';
import type { CaseTrial } from '../cases.js';
import { MAIN_AGENT } from './schema.js';

export interface Page {
  rows: ExperimentRow[];
  total: number;
  /** Pass as beforeId for the next (older) page; null on the last page. */
  nextBeforeId: number | null;
}

export class LedgerReads {
  private readonly statements = new Map<string, Database.Statement>();

  constructor(readonly db: Database.Database) {}

  session(id: number): SessionRow | undefined {
    return this.one(toSession, 'SELECT * FROM sessions WHERE id = ?', id);
  }

  sessionByTag(tag: string): SessionRow | undefined {
    return this.one(toSession, 'SELECT * FROM sessions WHERE tag = ?', tag);
  }

  activeSession(): SessionRow | undefined {
    return this.one(toSession, 'SELECT * FROM sessions WHERE active = 1 ORDER BY id DESC LIMIT 1');
  }

  /** The newest session, active or not. */
  latestSession(): SessionRow | undefined {
    return this.one(toSession, 'SELECT * FROM sessions ORDER BY id DESC LIMIT 1');
  }

  experiment(id: number): ExperimentRow | undefined {
    return this.one(toExperiment, 'SELECT * FROM experiments WHERE id = ?', id);
  }

  latestExperiment(sessionId: number): ExperimentRow | undefined {
    return this.one(toExperiment, "SELECT * FROM experiments WHERE session_id = ? AND kind != 'repeat' ORDER BY id DESC LIMIT 1", sessionId);
  }

  /** Latest experiment that actually ran (refusals never ran and never hold the loop). */
  latestRunExperiment(sessionId: number): ExperimentRow | undefined {
    return this.one(toExperiment, "SELECT * FROM experiments WHERE session_id = ? AND kind != 'repeat' AND state != 'refused' ORDER BY id DESC LIMIT 1", sessionId);
  }

  unfinishedExperiments(): ExperimentRow[] {
    return this.all(toExperiment, "SELECT * FROM experiments WHERE state IN ('queued','running') ORDER BY id");
  }

  /** The agent that proposed an experiment: the repo's own ("main") for one recorded before agents existed. */
  agentOf(experimentId: number): string {
    return (this.stmt('SELECT agent FROM experiment_agents WHERE experiment_id = ?').pluck().get(experimentId) as string | undefined) ?? MAIN_AGENT;
  }

  /** Newest first, paged by id (keyset), never by OFFSET. Repeats belong to their experiment (see runsOf). */
  listExperiments(sessionId: number, opts: { limit: number; beforeId?: number; state?: ExperimentState; agent?: string }): Page {
    if (opts.agent !== undefined) return this.listExperimentsOf(sessionId, { ...opts, agent: opts.agent });
    const filters = [opts.state !== undefined ? 'AND state = ?' : '', opts.beforeId !== undefined ? 'AND id < ?' : ''].join(' ');
    const args = [sessionId, ...(opts.state !== undefined ? [opts.state] : []), ...(opts.beforeId !== undefined ? [opts.beforeId] : [])];
    const rows = this.all(toExperiment, `SELECT * FROM experiments WHERE session_id = ? AND kind != 'repeat' ${filters} ORDER BY id DESC LIMIT ?`, ...args, opts.limit);
    const total = this.stmt(`SELECT COALESCE(SUM(n), 0) FROM session_totals WHERE session_id = ? AND is_repeat = 0 ${opts.state !== undefined ? 'AND state = ?' : ''}`)
      .pluck()
      .get(...args.slice(0, opts.state !== undefined ? 2 : 1)) as number;
    return { rows, total, nextBeforeId: rows.length === opts.limit && rows.length ? rows[rows.length - 1]!.id : null };
  }

  /** listExperiments narrowed to one agent's experiments; counted directly, as the running totals are per session. */
  private listExperimentsOf(sessionId: number, opts: { limit: number; beforeId?: number; state?: ExperimentState; agent: string }): Page {
    const where = `session_id = ? AND kind != 'repeat' AND COALESCE((SELECT agent FROM experiment_agents a WHERE a.experiment_id = experiments.id), '${MAIN_AGENT}') = ?${opts.state !== undefined ? ' AND state = ?' : ''}`;
    const args: unknown[] = [sessionId, opts.agent, ...(opts.state !== undefined ? [opts.state] : [])];
    const rows = this.all(toExperiment, `SELECT * FROM experiments WHERE ${where}${opts.beforeId !== undefined ? ' AND id < ?' : ''} ORDER BY id DESC LIMIT ?`, ...args, ...(opts.beforeId !== undefined ? [opts.beforeId] : []), opts.limit);
    const total = this.stmt(`SELECT COUNT(*) FROM experiments WHERE ${where}`).pluck().get(...args) as number;
    return { rows, total, nextBeforeId: rows.length === opts.limit && rows.length ? rows[rows.length - 1]!.id : null };
  }

  /**
   * One agent's experiments in flight (queued or running) and kept, in a session. Each count walks a partial index
   * (unfinished, kept), so it stays cheap on a ledger of 100,000 experiments.
   */
  agentCounts(sessionId: number, agent: string): { inFlight: number; kept: number } {
    const byAgent = `COALESCE((SELECT agent FROM experiment_agents a WHERE a.experiment_id = experiments.id), '${MAIN_AGENT}') = ?`;
    const inFlight = this.stmt(`SELECT COUNT(*) FROM experiments WHERE state IN ('queued','running') AND session_id = ? AND kind != 'repeat' AND ${byAgent}`).pluck().get(sessionId, agent) as number;
    const kept = this.stmt(`SELECT COUNT(*) FROM experiments WHERE decision = 'kept' AND session_id = ? AND kind = 'candidate' AND ${byAgent}`).pluck().get(sessionId, agent) as number;
    return { inFlight, kept };
  }

  countsByState(sessionId: number): Partial<Record<ExperimentState, number>> {
    const rows = this.stmt('SELECT state, SUM(n) AS n FROM session_totals WHERE session_id = ? AND is_repeat = 0 GROUP BY state HAVING SUM(n) > 0').all(sessionId) as {
      state: ExperimentState;
      n: number;
    }[];
    return Object.fromEntries(rows.map((r) => [r.state, r.n]));
  }

  /** Runs the session has spent (every run, repeats and calibration included) and their total time. */
  runsSpent(sessionId: number): { runs: number; seconds: number } {
    const row = this.stmt(
      "SELECT COALESCE(SUM(n), 0) AS n, COALESCE(SUM(duration_ms), 0) AS ms FROM session_totals WHERE session_id = ? AND state NOT IN ('refused','queued','running')",
    ).get(sessionId) as { n: number; ms: number };
    return { runs: row.n, seconds: row.ms / 1000 };
  }

  /** How the session ended (the first end recorded), or undefined while it goes on. */
  sessionEnd(sessionId: number): SessionEndRow | undefined {
    return this.one(toSessionEnd, 'SELECT * FROM session_ends WHERE session_id = ? ORDER BY id LIMIT 1', sessionId);
  }

  /** The user's stop of a session, if there was one. */
  sessionStop(sessionId: number): SessionEndRow | undefined {
    return this.one(toSessionEnd, "SELECT * FROM session_ends WHERE session_id = ? AND kind = 'stopped' ORDER BY id LIMIT 1", sessionId);
  }

  /** Candidates that ran or run (refusals never ran): the baseline is the one root experiment that is not a candidate. */
  candidatesRun(sessionId: number): number {
    const roots = this.stmt("SELECT COALESCE(SUM(n), 0) FROM session_totals WHERE session_id = ? AND is_repeat = 0 AND state != 'refused'").pluck().get(sessionId) as number;
    return Math.max(0, roots - (this.baselineId(sessionId) === null ? 0 : 1));
  }

  /** Crashed or timed-out experiments in a row, newest first, counting at most `atMost`; refusals and cancels neither count nor break it. */
  crashStreak(sessionId: number, atMost: number): number {
    const states = this.stmt(
      "SELECT state FROM experiments WHERE session_id = ? AND kind != 'repeat' AND state NOT IN ('refused','cancelled','queued','running') ORDER BY id DESC LIMIT ?",
    )
      .pluck()
      .all(sessionId, atMost) as ExperimentState[];
    const broken = states.findIndex((s) => s !== 'crashed' && s !== 'timed_out');
    return broken === -1 ? states.length : broken;
  }

  /** Seconds of every recorded run, each weighted by the GPUs it held (a run without GPUs counts as one). */
  gpuSeconds(sessionId: number): number {
    const ms = this.stmt(
      "SELECT COALESCE(SUM(duration_ms * MAX(1, COALESCE(json_array_length(gpus, '$.indices'), 0))), 0) FROM experiments WHERE session_id = ? AND duration_ms IS NOT NULL",
    )
      .pluck()
      .get(sessionId) as number;
    return ms / 1000;
  }

  /** The sum of one recorded figure over every run of the session (each repeat's value included). */
  metricTotal(sessionId: number, name: string): number {
    return this.stmt('SELECT COALESCE(SUM(s.value), 0) FROM experiments e JOIN samples s ON s.experiment_id = e.id WHERE e.session_id = ? AND s.name = ?')
      .pluck()
      .get(sessionId, name) as number;
  }

  baselineId(sessionId: number): number | null {
    return (this.stmt("SELECT id FROM experiments WHERE session_id = ? AND kind = 'baseline' ORDER BY id LIMIT 1").pluck().get(sessionId) as number | undefined) ?? null;
  }

  baselineMetric(sessionId: number): number | null {
    return (this.stmt("SELECT metric FROM experiments WHERE session_id = ? AND kind = 'baseline' ORDER BY id LIMIT 1").pluck().get(sessionId) as number | null | undefined) ?? null;
  }

  /** Ids of the newest experiments whose workspace is kept, newest first. */
  keptWorkspaces(limit: number): number[] {
    return this.stmt('SELECT id FROM experiments WHERE workspace IS NOT NULL ORDER BY id DESC LIMIT ?').pluck().all(limit) as number[];
  }

  /** Experiments with a commit of their own (baseline and candidates; repeats re-measure one), oldest first: each has an evidence ref. */
  committedExperimentIds(sessionId: number): number[] {
    return this.stmt(`SELECT id FROM experiments WHERE session_id = ? AND kind != 'repeat' AND "commit" IS NOT NULL ORDER BY id`).pluck().all(sessionId) as number[];
  }

  /** The experiment that kept a commit in a session, if one did. */
  keptExperimentFor(sessionId: number, commit: string): ExperimentRow | undefined {
    return this.one(toExperiment, `SELECT * FROM experiments WHERE session_id = ? AND "commit" = ? AND decision = 'kept' ORDER BY id LIMIT 1`, sessionId, commit);
  }

  /** Runs that printed the primary metric line more than once (a run reporting on itself; evaluate is advised). */
  countMetricRepeats(sessionId: number): number {
    return this.stmt('SELECT COUNT(*) FROM experiments WHERE session_id = ? AND metric_lines > 1').pluck().get(sessionId) as number;
  }

  /** Every session, newest first, in brief: for picking one (the dashboard). */
  sessionList(): { id: number; tag: string; active: boolean; createdAt: string }[] {
    const rows = this.stmt('SELECT id, tag, active, created_at FROM sessions ORDER BY id DESC').all() as { id: number; tag: string; active: number; created_at: string }[];
    return rows.map((r) => ({ id: r.id, tag: r.tag, active: r.active === 1, createdAt: r.created_at }));
  }

  /** How many repeats each experiment of a session has, in one query rather than one per row. */
  repeatCounts(sessionId: number): Map<number, number> {
    const rows = this.stmt('SELECT repeat_of AS id, COUNT(*) AS n FROM experiments WHERE session_id = ? AND repeat_of IS NOT NULL GROUP BY repeat_of').all(sessionId) as { id: number; n: number }[];
    return new Map(rows.map((r) => [r.id, r.n]));
  }

  /** An experiment's own row followed by its repeats, in the order they ran. */
  runsOf(id: number): ExperimentRow[] {
    return this.all(toExperiment, 'SELECT * FROM experiments WHERE id = ? OR repeat_of = ? ORDER BY id', id, id);
  }

  /**
   * Every measured value of the primary metric in a session (samples exist only for runs that measured), with the experiment it belongs to
   * (a repeat's root), the commit it measured and the machine it ran on.
   */
  measurements(sessionId: number, metricName: string): Measurement[] {
    return this.stmt(`${MEASUREMENT} WHERE e.session_id = ? AND s.name = ? ORDER BY s.id`).all(sessionId, metricName) as Measurement[];
  }

  /** Only the measurements recorded after sample `afterSampleId`: samples are only ever appended, so a reader can keep up cheaply. */
  measurementsAfter(sessionId: number, metricName: string, afterSampleId: number): Measurement[] {
    // Samples first (CROSS JOIN fixes SQLite's join order): only the few new rows are looked at, not the session's experiments.
    return this.stmt(`${MEASUREMENT_AFTER} WHERE s.id > ? AND e.session_id = ? AND s.name = ? ORDER BY s.id`).all(afterSampleId, sessionId, metricName) as Measurement[];
  }

  progress(experimentId: number): { step: number; value: number }[] {
    return this.stmt('SELECT step, value FROM progress WHERE experiment_id = ? ORDER BY step, id').all(experimentId) as { step: number; value: number }[];
  }

  samples(experimentId: number): SampleRow[] {
    return this.all(toSample, 'SELECT * FROM samples WHERE experiment_id = ? ORDER BY id', experimentId);
  }

  /** The run step's GPU figures: peak memory (its processes', else its GPUs') and mean utilization over its samples. */
  gpuUsage(experimentId: number): GpuUsage | null {
    const row = this.stmt(
      "SELECT COUNT(*) AS n, MAX(memory_mib) AS mem, MAX(device_memory_mib) AS dev, AVG(utilization_percent) AS util FROM gpu_samples WHERE experiment_id = ? AND phase = 'run'",
    ).get(experimentId) as { n: number; mem: number | null; dev: number | null; util: number | null };
    if (row.n === 0) return null;
    return {
      samples: row.n,
      peakMemoryMib: row.mem ?? row.dev,
      memorySource: row.mem !== null ? 'processes' : row.dev !== null ? 'devices' : null,
      meanUtilizationPercent: row.util,
    };
  }

  /** The case-by-case results a run recorded, or null when its metric step printed none. */
  caseResults(experimentId: number): CaseTrial[] | null {
    const row = this.stmt('SELECT trials FROM case_results WHERE experiment_id = ? ORDER BY id DESC LIMIT 1').get(experimentId) as { trials: string } | undefined;
    return row ? (JSON.parse(row.trials) as CaseTrial[]) : null;
  }

  /** The latest measured run of `commit` in the session outside experiment `root` that recorded case results. */
  latestCasesOf(sessionId: number, commit: string, root: number): { run: number; trials: CaseTrial[] } | null {
    const row = this.stmt(
      `SELECT c.experiment_id AS run, c.trials AS trials FROM case_results c JOIN experiments e ON e.id = c.experiment_id
       WHERE e.session_id = ? AND e."commit" = ? AND COALESCE(e.repeat_of, e.id) != ? AND e.state = 'measured' ORDER BY c.id DESC LIMIT 1`,
    ).get(sessionId, commit, root) as { run: number; trials: string } | undefined;
    return row ? { run: row.run, trials: JSON.parse(row.trials) as CaseTrial[] } : null;
  }

  protected stmt(sql: string): Database.Statement {
    let s = this.statements.get(sql);
    if (!s) this.statements.set(sql, (s = this.db.prepare(sql)));
    return s;
  }

  protected one<T>(decode: (r: Record<string, unknown>) => T, sql: string, ...args: unknown[]): T | undefined {
    const row = this.stmt(sql).get(...args) as Record<string, unknown> | undefined;
    return row ? decode(row) : undefined;
  }

  protected all<T>(decode: (r: Record<string, unknown>) => T, sql: string, ...args: unknown[]): T[] {
    return (this.stmt(sql).all(...args) as Record<string, unknown>[]).map(decode);
  }

  protected requireExperiment(id: number): ExperimentRow {
    const e = this.experiment(id);
    if (!e) throw new RatchetError('unknown_experiment', `There is no experiment ${id} in the ledger.`, 'Call list_experiments to see the ids.');
    return e;
  }
}

const MEASURED = `SELECT s.id AS sampleId, COALESCE(e.repeat_of, e.id) AS root, e.id AS run, e."commit" AS "commit", s.value AS value, s.host AS host, s.gpu_model AS gpuModel`;
const MEASUREMENT = `${MEASURED} FROM experiments e JOIN samples s ON s.experiment_id = e.id`;
const MEASUREMENT_AFTER = `${MEASURED} FROM samples s CROSS JOIN experiments e ON e.id = s.experiment_id`;

