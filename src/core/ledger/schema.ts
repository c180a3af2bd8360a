// The ledger's schema: versioned migrations, each moving it one version forward.

/**
 * Whether an experiment has its final line in results.tsv: decided, crashed, timed out, pruned or cancelled.
 * A measured candidate awaiting a decision is not final yet; the baseline is final once measured.
 */
export const IN_RESULTS = (row: string) =>
  `(${row}.kind != 'repeat' AND ${row}.state NOT IN ('refused','queued','running') AND NOT (${row}.state = 'measured' AND ${row}.decision IS NULL AND ${row}.kind != 'baseline'))`;

const totalsKey = (row: string) => `session_id = ${row}.session_id AND is_repeat = (${row}.kind = 'repeat') AND state = ${row}.state AND in_results = ${IN_RESULTS(row)}`;
const addTo = (row: string) =>
  `INSERT INTO session_totals (session_id, is_repeat, state, in_results, n, duration_ms)
     VALUES (${row}.session_id, ${row}.kind = 'repeat', ${row}.state, ${IN_RESULTS(row)}, 1, COALESCE(${row}.duration_ms, 0))
     ON CONFLICT (session_id, is_repeat, state, in_results) DO UPDATE SET n = n + 1, duration_ms = duration_ms + excluded.duration_ms;`;
const takeFrom = (row: string) => `UPDATE session_totals SET n = n - 1, duration_ms = duration_ms - COALESCE(${row}.duration_ms, 0) WHERE ${totalsKey(row)};`;

/** Triggers keep session_totals exact under every write, so counts never need COUNT(*) over a session. */
const TOTALS_TRIGGERS = `
   CREATE TRIGGER totals_after_insert AFTER INSERT ON experiments BEGIN ${addTo('NEW')} END;
   CREATE TRIGGER totals_after_delete AFTER DELETE ON experiments BEGIN ${takeFrom('OLD')} END;
   CREATE TRIGGER totals_after_update AFTER UPDATE OF session_id, kind, state, decision, duration_ms ON experiments
   BEGIN ${takeFrom('OLD')} ${addTo('NEW')} END;`;

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
  // 3: tamper evidence (the chain), running totals, flags that used to live in message text, and the indexes every query uses.
  // progress gets an explicit id: a table keyed by an implicit rowid may be renumbered by VACUUM, which would orphan its chain entries.
  `ALTER TABLE sessions ADD COLUMN pinned_commit TEXT;
   ALTER TABLE experiments ADD COLUMN workspace TEXT;
   ALTER TABLE experiments ADD COLUMN metric_lines INTEGER;
   ALTER TABLE experiments ADD COLUMN prune_requested TEXT;
   ALTER TABLE experiments ADD COLUMN completed_after_restart INTEGER NOT NULL DEFAULT 0;
   UPDATE experiments SET prune_requested = substr(reason, 9) WHERE reason LIKE 'pruned: %' AND state IN ('queued','running');
   UPDATE experiments SET completed_after_restart = 1 WHERE decision_reason LIKE '%after a restart%';
   CREATE TABLE progress_v3 (
     id INTEGER PRIMARY KEY,
     experiment_id INTEGER NOT NULL REFERENCES experiments(id),
     step REAL NOT NULL,
     value REAL NOT NULL
   );
   INSERT INTO progress_v3 (id, experiment_id, step, value) SELECT rowid, experiment_id, step, value FROM progress ORDER BY rowid;
   DROP TABLE progress;
   ALTER TABLE progress_v3 RENAME TO progress;
   CREATE INDEX progress_by_experiment ON progress(experiment_id, step);
   CREATE TABLE chain (
     seq INTEGER PRIMARY KEY,
     tbl TEXT NOT NULL,
     row_id INTEGER NOT NULL,
     row_hash TEXT NOT NULL,
     prev_hash TEXT NOT NULL,
     hash TEXT NOT NULL,
     note TEXT
   );
   CREATE TABLE session_totals (
     session_id INTEGER NOT NULL,
     is_repeat INTEGER NOT NULL,
     state TEXT NOT NULL,
     in_results INTEGER NOT NULL,
     n INTEGER NOT NULL,
     duration_ms INTEGER NOT NULL,
     PRIMARY KEY (session_id, is_repeat, state, in_results)
   ) WITHOUT ROWID;
   INSERT INTO session_totals (session_id, is_repeat, state, in_results, n, duration_ms)
     SELECT session_id, kind = 'repeat', state, ${IN_RESULTS('experiments')}, COUNT(*), COALESCE(SUM(duration_ms), 0)
     FROM experiments GROUP BY 1, 2, 3, 4;
   ${TOTALS_TRIGGERS}
   DROP INDEX samples_by_experiment;
   CREATE INDEX samples_by_experiment ON samples(experiment_id, name);
   CREATE INDEX experiments_roots ON experiments(session_id, id) WHERE kind != 'repeat';
   CREATE INDEX experiments_roots_by_state ON experiments(session_id, state, id) WHERE kind != 'repeat';
   CREATE INDEX experiments_unfinished ON experiments(id) WHERE state IN ('queued','running');
   CREATE INDEX experiments_with_workspace ON experiments(id) WHERE workspace IS NOT NULL;
   CREATE INDEX experiments_kept ON experiments(session_id, "commit") WHERE decision = 'kept';
   CREATE INDEX experiments_metric_repeats ON experiments(session_id) WHERE metric_lines > 1;`,
  // 4: how a session ended: stopped by the user, or a cap of limits reached. A table of its own, so no chained row changes its hash.
  `CREATE TABLE session_ends (
     id INTEGER PRIMARY KEY,
     session_id INTEGER NOT NULL REFERENCES sessions(id),
     kind TEXT NOT NULL CHECK (kind IN ('stopped','cap')),
     cap TEXT,
     reason TEXT NOT NULL,
     cancelled_experiment_id INTEGER REFERENCES experiments(id),
     created_at TEXT NOT NULL
   );
   CREATE INDEX session_ends_by_session ON session_ends(session_id, id);`,
  // 5: the case-by-case results a run's metric step printed (\`case\`/\`assert\` lines), one row per run, for the paired test.
  `CREATE TABLE case_results (
     id INTEGER PRIMARY KEY,
     experiment_id INTEGER NOT NULL REFERENCES experiments(id),
     trials TEXT NOT NULL,
     created_at TEXT NOT NULL
   );
   CREATE INDEX case_results_by_experiment ON case_results(experiment_id);`,
  // 6: the device pool. Leases are not chained: they are coordination state, rewritten on every run and reclaimed by
  // whichever process finds a holder dead, and no result rests on them. GPU samples are chained: memory_gb in
  // results.tsv comes from them. Both are new tables, so no chained row's hash changes.
  `CREATE TABLE leases (
     id INTEGER PRIMARY KEY,
     resource TEXT NOT NULL,
     experiment_id INTEGER,
     holder_pid INTEGER NOT NULL,
     holder_start TEXT,
     holder_boot TEXT,
     holder_pidns TEXT,
     holder_host TEXT NOT NULL,
     acquired_at TEXT NOT NULL,
     released_at TEXT,
     released_why TEXT
   );
   CREATE UNIQUE INDEX leases_live ON leases(resource) WHERE released_at IS NULL;
   CREATE INDEX leases_live_by_experiment ON leases(experiment_id) WHERE released_at IS NULL;
   CREATE TABLE gpu_samples (
     id INTEGER PRIMARY KEY,
     experiment_id INTEGER NOT NULL REFERENCES experiments(id),
     phase TEXT NOT NULL CHECK (phase IN ('run','evaluate')),
     utilization_percent REAL,
     memory_mib REAL,
     device_memory_mib REAL,
     processes INTEGER NOT NULL,
     created_at TEXT NOT NULL
   );
   CREATE INDEX gpu_samples_by_experiment ON gpu_samples(experiment_id, phase);`,
  // 7: several agents on one ledger. Who proposed each experiment is evidence, so it is chained, in a table of its own
  // (no chained row changes its hash). The registry, each agent's base and who drives a run are coordination state,
  // rewritten as agents sync and servers come and go, so they are not chained; no result rests on them.
  `CREATE TABLE experiment_agents (
     id INTEGER PRIMARY KEY,
     experiment_id INTEGER NOT NULL UNIQUE REFERENCES experiments(id),
     agent TEXT NOT NULL,
     created_at TEXT NOT NULL
   );
   CREATE INDEX experiment_agents_by_agent ON experiment_agents(agent, experiment_id);
   CREATE TABLE agents (
     name TEXT PRIMARY KEY,
     worktree TEXT NOT NULL,
     created_at TEXT NOT NULL
   );
   CREATE TABLE agent_bases (
     agent TEXT NOT NULL,
     session_id INTEGER NOT NULL REFERENCES sessions(id),
     base_commit TEXT NOT NULL,
     updated_at TEXT NOT NULL,
     PRIMARY KEY (agent, session_id)
   );
   CREATE TABLE run_owners (
     experiment_id INTEGER PRIMARY KEY REFERENCES experiments(id),
     agent TEXT NOT NULL,
     instance TEXT NOT NULL,
     holder_pid INTEGER NOT NULL,
     holder_start TEXT,
     holder_boot TEXT,
     holder_pidns TEXT,
     holder_host TEXT NOT NULL,
     claimed_at TEXT NOT NULL
   );`,
];

export const SCHEMA_VERSION = MIGRATIONS.length;

/** The agent of the repo's own worktree, and of every experiment recorded before agents existed. */
export const MAIN_AGENT = 'main';

/** The version whose migration seals every existing row into the chain. */
export const CHAIN_SINCE = 3;

/** Tables whose every write is chained (leases are not: see migration 6). */
export const CHAINED_TABLES = ['sessions', 'experiments', 'samples', 'progress', 'session_ends', 'case_results', 'gpu_samples', 'experiment_agents'] as const;
export type ChainedTable = (typeof CHAINED_TABLES)[number];
