// The SQLite ledger: every session, experiment and measurement, with versioned migrations and results.tsv.
import Database from 'better-sqlite3';
import { mkdirSync, writeFileSync, renameSync } from 'node:fs';
import { dirname, join } from 'node:path';

export type ExperimentState = 'queued' | 'running' | 'measured' | 'crashed' | 'timed_out' | 'refused' | 'cancelled' | 'pruned';
export type Decision = 'kept' | 'reverted';
/** Which supervised step an unfinished experiment is in, so a restarted server can pick it up. */
export type Phase = 'run' | 'evaluate' | 'repeats' | 'done';

export interface SessionRow {
  id: number;
  tag: string;
  branch: string;
  baseCommit: string;
  bestCommit: string;
  bestExperimentId: number | null;
  config: string;
  pins: string;
  createdAt: string;
  active: number;
}

export interface ExperimentRow {
  id: number;
  sessionId: number;
  /** A repeat is one more run measuring the commit of its experiment or of the best, for a statistical decision. */
  kind: 'baseline' | 'candidate' | 'repeat';
  repeatOf: number | null;
  /** JSON of the decision's statistics (significant rule), written when the experiment is decided. */
  verdict: string | null;
  commit: string | null;
  parentCommit: string;
  description: string;
  hypothesis: string | null;
  state: ExperimentState;
  phase: Phase;
  decision: Decision | null;
  decisionReason: string | null;
  forced: number;
  metric: number | null;
  secondary: string;
  constraintChecks: string;
  reason: string | null;
  createdAt: string;
  startedAt: string | null;
  endedAt: string | null;
  durationMs: number | null;
  peakMemoryBytes: number | null;
  memoryMethod: string | null;
  exitCode: number | null;
  signal: string | null;
  logPath: string | null;
  diffStats: string | null;
  violations: string | null;
  runToken: string | null;
  supervisorPid: number | null;
  gpus: string | null;
  host: string | null;
}

export interface Measurement {
  root: number;
  run: number;
  commit: string;
  value: number;
  host: string;
  gpuModel: string | null;
}

export interface SampleRow {
  id: number;
  experimentId: number;
  name: string;
  value: number;
  source: 'run' | 'evaluate';
  host: string;
  gpuModel: string | null;
  createdAt: string;
}

// Each entry moves the schema one version forward; never edit one that has shipped.
export const MIGRATIONS: string[] = [
  `CREATE TABLE sessions (
     id INTEGER PRIMARY KEY,
     tag TEXT NOT NULL UNIQUE,
     branch TEXT NOT NULL,
     base_commit TEXT NOT NULL,
     best_commit TEXT NOT NULL,
     best_experiment_id INTEGER,
     config TEXT NOT NULL,
     pins TEXT NOT NULL,
     created_at TEXT NOT NULL,
     active INTEGER NOT NULL DEFAULT 1
   );
   CREATE TABLE experiments (
     id INTEGER PRIMARY KEY,
     session_id INTEGER NOT NULL REFERENCES sessions(id),
     kind TEXT NOT NULL CHECK (kind IN ('baseline','candidate')),
     "commit" TEXT,
     parent_commit TEXT NOT NULL,
     description TEXT NOT NULL,
     hypothesis TEXT,
     state TEXT NOT NULL CHECK (state IN ('queued','running','measured','crashed','timed_out','refused','cancelled')),
     phase TEXT NOT NULL DEFAULT 'run' CHECK (phase IN ('run','evaluate','done')),
     decision TEXT CHECK (decision IN ('kept','reverted')),
     decision_reason TEXT,
     forced INTEGER NOT NULL DEFAULT 0,
     metric REAL,
     secondary TEXT NOT NULL DEFAULT '{}',
     constraint_checks TEXT NOT NULL DEFAULT '[]',
     reason TEXT,
     created_at TEXT NOT NULL,
     started_at TEXT,
     ended_at TEXT,
     duration_ms INTEGER,
     peak_memory_bytes INTEGER,
     memory_method TEXT,
     exit_code INTEGER,
     signal TEXT,
     log_path TEXT,
     diff_stats TEXT,
     violations TEXT,
     run_token TEXT,
     supervisor_pid INTEGER,
     gpus TEXT,
     host TEXT
   );
   CREATE INDEX experiments_by_session ON experiments(session_id, id);
   CREATE TABLE samples (
     id INTEGER PRIMARY KEY,
     experiment_id INTEGER NOT NULL REFERENCES experiments(id),
     name TEXT NOT NULL,
     value REAL NOT NULL,
     source TEXT NOT NULL CHECK (source IN ('run','evaluate')),
     host TEXT NOT NULL,
     gpu_model TEXT,
     created_at TEXT NOT NULL
   );
   CREATE INDEX samples_by_experiment ON samples(experiment_id);`,
  // 2: repeats (one row per run), the pruned state, the verdict, and learning curves for pruning.
  // SQLite cannot alter a CHECK, so the table is rebuilt (its documented 12-step procedure).
  `CREATE TABLE experiments_v2 (
     id INTEGER PRIMARY KEY,
     session_id INTEGER NOT NULL REFERENCES sessions(id),
     kind TEXT NOT NULL CHECK (kind IN ('baseline','candidate','repeat')),
     repeat_of INTEGER REFERENCES experiments(id),
     "commit" TEXT,
     parent_commit TEXT NOT NULL,
     description TEXT NOT NULL,
     hypothesis TEXT,
     state TEXT NOT NULL CHECK (state IN ('queued','running','measured','crashed','timed_out','refused','cancelled','pruned')),
     phase TEXT NOT NULL DEFAULT 'run' CHECK (phase IN ('run','evaluate','repeats','done')),
     decision TEXT CHECK (decision IN ('kept','reverted')),
     decision_reason TEXT,
     forced INTEGER NOT NULL DEFAULT 0,
     metric REAL,
     verdict TEXT,
     secondary TEXT NOT NULL DEFAULT '{}',
     constraint_checks TEXT NOT NULL DEFAULT '[]',
     reason TEXT,
     created_at TEXT NOT NULL,
     started_at TEXT,
     ended_at TEXT,
     duration_ms INTEGER,
     peak_memory_bytes INTEGER,
     memory_method TEXT,
     exit_code INTEGER,
     signal TEXT,
     log_path TEXT,
     diff_stats TEXT,
     violations TEXT,
     run_token TEXT,
     supervisor_pid INTEGER,
     gpus TEXT,
     host TEXT
   );
   INSERT INTO experiments_v2 (id, session_id, kind, "commit", parent_commit, description, hypothesis, state, phase, decision, decision_reason,
     forced, metric, secondary, constraint_checks, reason, created_at, started_at, ended_at, duration_ms, peak_memory_bytes, memory_method,
     exit_code, signal, log_path, diff_stats, violations, run_token, supervisor_pid, gpus, host)
   SELECT id, session_id, kind, "commit", parent_commit, description, hypothesis, state, phase, decision, decision_reason,
     forced, metric, secondary, constraint_checks, reason, created_at, started_at, ended_at, duration_ms, peak_memory_bytes, memory_method,
     exit_code, signal, log_path, diff_stats, violations, run_token, supervisor_pid, gpus, host FROM experiments;
   DROP TABLE experiments;
   ALTER TABLE experiments_v2 RENAME TO experiments;
   CREATE INDEX experiments_by_session ON experiments(session_id, id);
   CREATE INDEX experiments_by_repeat ON experiments(repeat_of);
   CREATE TABLE progress (
     experiment_id INTEGER NOT NULL REFERENCES experiments(id),
     step REAL NOT NULL,
     value REAL NOT NULL
   );
   CREATE INDEX progress_by_experiment ON progress(experiment_id, step);`,
];

export const SCHEMA_VERSION = MIGRATIONS.length;

const camel = (s: string) => s.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
const snake = (s: string) => (s === 'commit' ? '"commit"' : s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`));

function rowToCamel<T>(row: Record<string, unknown> | undefined): T | undefined {
  if (!row) return undefined;
  return Object.fromEntries(Object.entries(row).map(([k, v]) => [camel(k), v])) as T;
}

const now = () => new Date().toISOString();

export class Ledger {
  readonly db: Database.Database;

  constructor(readonly path: string) {
    mkdirSync(dirname(path), { recursive: true });
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('foreign_keys = ON');
    this.db.pragma('busy_timeout = 5000');
    this.migrate();
  }

  private migrate(): void {
    const current = this.db.pragma('user_version', { simple: true }) as number;
    if (current > SCHEMA_VERSION) {
      throw new Error(
        `The ledger ${this.path} has schema version ${current}, newer than this ratchet understands (${SCHEMA_VERSION}). Upgrade ratchet-mcp.`,
      );
    }
    if (current === SCHEMA_VERSION) return;
    // A table rebuild drops a table others reference; foreign keys are checked once it is whole again.
    this.db.pragma('foreign_keys = OFF');
    try {
      for (let v = current; v < SCHEMA_VERSION; v++) {
        this.db.transaction(() => {
          this.db.exec(MIGRATIONS[v]!);
          const broken = this.db.pragma('foreign_key_check') as unknown[];
          if (broken.length) throw new Error(`migration ${v + 1} left ${broken.length} broken reference(s) in ${this.path}; the ledger is unchanged.`);
          this.db.pragma(`user_version = ${v + 1}`);
        })();
      }
    } finally {
      this.db.pragma('foreign_keys = ON');
    }
  }

  schemaVersion(): number {
    return this.db.pragma('user_version', { simple: true }) as number;
  }

  close(): void {
    this.db.close();
  }

  // --- sessions

  createSession(s: Omit<SessionRow, 'id' | 'createdAt' | 'active' | 'bestExperimentId'>): SessionRow {
    return this.db.transaction(() => {
      this.db.prepare('UPDATE sessions SET active = 0 WHERE active = 1').run();
      const info = this.db
        .prepare(
          `INSERT INTO sessions (tag, branch, base_commit, best_commit, config, pins, created_at, active)
           VALUES (?, ?, ?, ?, ?, ?, ?, 1)`,
        )
        .run(s.tag, s.branch, s.baseCommit, s.bestCommit, s.config, s.pins, now());
      return this.session(Number(info.lastInsertRowid))!;
    })();
  }

  session(id: number): SessionRow | undefined {
    return rowToCamel<SessionRow>(this.db.prepare('SELECT * FROM sessions WHERE id = ?').get(id) as Record<string, unknown>);
  }

  sessionByTag(tag: string): SessionRow | undefined {
    return rowToCamel<SessionRow>(this.db.prepare('SELECT * FROM sessions WHERE tag = ?').get(tag) as Record<string, unknown>);
  }

  activeSession(): SessionRow | undefined {
    return rowToCamel<SessionRow>(
      this.db.prepare('SELECT * FROM sessions WHERE active = 1 ORDER BY id DESC LIMIT 1').get() as Record<string, unknown>,
    );
  }

  setBest(sessionId: number, experimentId: number, commit: string): void {
    this.db.prepare('UPDATE sessions SET best_experiment_id = ?, best_commit = ? WHERE id = ?').run(experimentId, commit, sessionId);
  }

  // --- experiments

  createExperiment(e: Pick<ExperimentRow, 'sessionId' | 'kind' | 'parentCommit' | 'description'> & Partial<ExperimentRow>): ExperimentRow {
    const row: Record<string, unknown> = { state: 'queued', phase: 'run', createdAt: now(), ...e };
    const cols = Object.keys(row);
    const info = this.db
      .prepare(`INSERT INTO experiments (${cols.map(snake).join(', ')}) VALUES (${cols.map(() => '?').join(', ')})`)
      .run(...cols.map((c) => row[c] as unknown));
    return this.experiment(Number(info.lastInsertRowid))!;
  }

  updateExperiment(id: number, patch: Partial<Omit<ExperimentRow, 'id'>>): ExperimentRow {
    const cols = Object.keys(patch);
    if (cols.length) {
      this.db
        .prepare(`UPDATE experiments SET ${cols.map((c) => `${snake(c)} = ?`).join(', ')} WHERE id = ?`)
        .run(...cols.map((c) => (patch as Record<string, unknown>)[c]), id);
    }
    return this.experiment(id)!;
  }

  experiment(id: number): ExperimentRow | undefined {
    return rowToCamel<ExperimentRow>(this.db.prepare('SELECT * FROM experiments WHERE id = ?').get(id) as Record<string, unknown>);
  }

  latestExperiment(sessionId: number): ExperimentRow | undefined {
    return rowToCamel<ExperimentRow>(
      this.db.prepare("SELECT * FROM experiments WHERE session_id = ? AND kind != 'repeat' ORDER BY id DESC LIMIT 1").get(sessionId) as Record<string, unknown>,
    );
  }

  /** Latest experiment that actually ran (refusals never ran and never hold the loop). */
  latestRunExperiment(sessionId: number): ExperimentRow | undefined {
    return rowToCamel<ExperimentRow>(
      this.db
        .prepare("SELECT * FROM experiments WHERE session_id = ? AND state != 'refused' AND kind != 'repeat' ORDER BY id DESC LIMIT 1")
        .get(sessionId) as Record<string, unknown>,
    );
  }

  unfinishedExperiments(): ExperimentRow[] {
    return (this.db.prepare("SELECT * FROM experiments WHERE state IN ('queued','running') ORDER BY id").all() as Record<string, unknown>[]).map(
      (r) => rowToCamel<ExperimentRow>(r)!,
    );
  }

  listExperiments(sessionId: number, opts: { limit: number; offset: number; state?: ExperimentState }): { rows: ExperimentRow[]; total: number } {
    // Repeats are part of their experiment (see runsOf), not experiments of their own.
    const where = opts.state ? "session_id = ? AND kind != 'repeat' AND state = ?" : "session_id = ? AND kind != 'repeat'";
    const args: unknown[] = opts.state ? [sessionId, opts.state] : [sessionId];
    const total = (this.db.prepare(`SELECT COUNT(*) AS n FROM experiments WHERE ${where}`).get(...args) as { n: number }).n;
    const rows = (
      this.db.prepare(`SELECT * FROM experiments WHERE ${where} ORDER BY id DESC LIMIT ? OFFSET ?`).all(...args, opts.limit, opts.offset) as Record<
        string,
        unknown
      >[]
    ).map((r) => rowToCamel<ExperimentRow>(r)!);
    return { rows, total };
  }

  countsByState(sessionId: number): Record<string, number> {
    const rows = this.db.prepare("SELECT state, COUNT(*) AS n FROM experiments WHERE session_id = ? AND kind != 'repeat' GROUP BY state").all(sessionId) as {
      state: string;
      n: number;
    }[];
    return Object.fromEntries(rows.map((r) => [r.state, r.n]));
  }

  baselineId(sessionId: number): number | null {
    const row = this.db.prepare("SELECT id FROM experiments WHERE session_id = ? AND kind = 'baseline' ORDER BY id LIMIT 1").get(sessionId) as { id: number } | undefined;
    return row?.id ?? null;
  }

  baselineMetric(sessionId: number): number | null {
    const row = this.db.prepare("SELECT metric FROM experiments WHERE session_id = ? AND kind = 'baseline' ORDER BY id LIMIT 1").get(sessionId) as
      | { metric: number | null }
      | undefined;
    return row?.metric ?? null;
  }

  /** An experiment's own row followed by its repeats, in the order they ran. */
  runsOf(id: number): ExperimentRow[] {
    return (this.db.prepare('SELECT * FROM experiments WHERE id = ? OR repeat_of = ? ORDER BY id').all(id, id) as Record<string, unknown>[]).map(
      (r) => rowToCamel<ExperimentRow>(r)!,
    );
  }

  /** Runs the session has spent (every run, repeats and calibration included) and their total time. */
  runsSpent(sessionId: number): { runs: number; seconds: number } {
    const row = this.db
      .prepare(
        "SELECT COUNT(*) AS n, COALESCE(SUM(duration_ms), 0) AS ms FROM experiments WHERE session_id = ? AND state NOT IN ('refused','queued','running')",
      )
      .get(sessionId) as { n: number; ms: number };
    return { runs: row.n, seconds: row.ms / 1000 };
  }

  /**
   * Every measured value of the primary metric in a session (samples exist only for runs that measured), with the experiment it belongs to
   * (a repeat's root), the commit it measured and the machine it ran on.
   */
  measurements(sessionId: number, metricName: string): Measurement[] {
    return this.db
      .prepare(
        `SELECT COALESCE(e.repeat_of, e.id) AS root, e.id AS run, e."commit" AS "commit", s.value AS value, s.host AS host, s.gpu_model AS gpuModel
         FROM samples s JOIN experiments e ON e.id = s.experiment_id
         WHERE e.session_id = ? AND s.name = ?
         ORDER BY s.id`,
      )
      .all(sessionId, metricName) as Measurement[];
  }

  // --- learning curves

  addProgress(experimentId: number, points: { step: number; value: number }[]): void {
    const insert = this.db.prepare('INSERT INTO progress (experiment_id, step, value) VALUES (?, ?, ?)');
    this.db.transaction(() => {
      for (const p of points) insert.run(experimentId, p.step, p.value);
    })();
  }

  progress(experimentId: number): { step: number; value: number }[] {
    return this.db.prepare('SELECT step, value FROM progress WHERE experiment_id = ? ORDER BY step, rowid').all(experimentId) as { step: number; value: number }[];
  }

  // --- samples

  addSample(s: Omit<SampleRow, 'id' | 'createdAt'>): void {
    this.db
      .prepare('INSERT INTO samples (experiment_id, name, value, source, host, gpu_model, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)')
      .run(s.experimentId, s.name, s.value, s.source, s.host, s.gpuModel, now());
  }

  samples(experimentId: number): SampleRow[] {
    return (this.db.prepare('SELECT * FROM samples WHERE experiment_id = ? ORDER BY id').all(experimentId) as Record<string, unknown>[]).map(
      (r) => rowToCamel<SampleRow>(r)!,
    );
  }

  // --- results.tsv

  /** Karpathy's results.tsv for one session: commit, metric, memory_gb, status, description. */
  resultsTsv(sessionId: number, metricName: string): string {
    const rows = this.db
      .prepare("SELECT * FROM experiments WHERE session_id = ? AND kind != 'repeat' AND state NOT IN ('refused','queued','running') ORDER BY id")
      .all(sessionId) as Record<string, unknown>[];
    const lines = [['commit', metricName, 'memory_gb', 'status', 'description'].join('\t')];
    for (const raw of rows) {
      const e = rowToCamel<ExperimentRow>(raw)!;
      if (e.state === 'measured' && e.decision === null && e.kind !== 'baseline') continue; // awaiting a decision
      const status =
        e.state === 'pruned' ? 'discard' : e.state !== 'measured' ? 'crash' : e.decision === 'kept' || e.kind === 'baseline' ? 'keep' : 'discard';
      lines.push(
        [
          (e.commit ?? '').slice(0, 7),
          formatMetric(e.metric),
          memoryGb(e).toFixed(1),
          status,
          e.description.replace(/[\t\r\n]+/g, ' '),
        ].join('\t'),
      );
    }
    return lines.join('\n') + '\n';
  }

  writeResultsTsv(sessionId: number, metricName: string, file: string): void {
    const tmp = `${file}.tmp`;
    writeFileSync(tmp, this.resultsTsv(sessionId, metricName));
    renameSync(tmp, file);
  }
}

/** Karpathy's six decimals, except where they would round a real value to zero. */
function formatMetric(value: number | null): string {
  if (value === null) return '0.000000';
  return value !== 0 && Math.abs(value) < 1e-3 ? value.toExponential(6) : value.toFixed(6);
}

/** GPU memory when the run reported it (as Karpathy's peak_vram_mb), else the process tree's peak RSS. */
function memoryGb(e: ExperimentRow): number {
  const secondary = JSON.parse(e.secondary || '{}') as Record<string, number>;
  if (typeof secondary.peak_vram_mb === 'number') return secondary.peak_vram_mb / 1024;
  return e.peakMemoryBytes ? e.peakMemoryBytes / 1024 ** 3 : 0;
}

export function ledgerPath(repo: string): string {
  return join(repo, '.ratchet', 'ratchet.db');
}
