// The Ledger: every session, experiment and measurement, written only through named transitions, each one chained.
import type Database from 'better-sqlite3';
import { mkdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { RatchetError } from '../errors.js';
import type { DecisionReport } from '../views.js';
export type { DecisionRecord, MeasurementRecord, NewExperiment, NewGpuSample, NewSample, NewSession, RunFacts, RunStart } from './inputs.js';
import { Chain, type ChainFinding, type ChainHead } from './chain.js';
import { openLedgerDatabase } from './open.js';
import { LedgerReads } from './reads.js';
import { isFinalForResults, resultsLine, ResultsFiles, type ResultsWrite } from './results-tsv.js';
import type { DecisionRecord, MeasurementRecord, NewExperiment, NewGpuSample, NewSession, RunFacts, RunStart } from './inputs.js';
import type { DiffStats, ExperimentRow, ExperimentState, FinalState, Phase, SessionEndRow, SessionRow } from './rows.js';
import { MAIN_AGENT, type ChainedTable } from './schema.js';

/** Whether the file the ledger was opened from is still there: a run may have deleted or replaced it. */
export type LedgerFile = 'intact' | 'missing' | 'replaced';

const now = () => new Date().toISOString();
const json = (v: unknown) => (v === null || v === undefined ? null : JSON.stringify(v));

/** Reads are LedgerReads'; every write is a named transition here, chained in the same transaction. A write through `db` that bypasses them is reported by verifyChain as tampering. */
export class Ledger extends LedgerReads {
  private readonly chain: Chain;
  private readonly results: ResultsFiles;
  /** Bumped when a write changes a line results.tsv already holds, so the next sync rewrites instead of appending. */
  private readonly resultsEpoch = new Map<number, number>();
  private readonly opened: { dev: number; ino: number };
  private dataVersion: number;
  /** Who this connection writes for: every experiment it creates is attributed to this agent unless told otherwise. */
  agent = MAIN_AGENT;

  constructor(readonly path: string) {
    super(openLedgerDatabase(path));
    this.chain = new Chain(this.db);
    this.results = new ResultsFiles(this.db, (id) => this.resultsEpoch.get(id) ?? 0);
    const st = statSync(path);
    this.opened = { dev: st.dev, ino: st.ino };
    this.dataVersion = this.readDataVersion();
  }

  schemaVersion(): number {
    return this.db.pragma('user_version', { simple: true }) as number;
  }

  close(): void {
    this.db.close();
  }

  /**
   * Runs several transitions atomically (better-sqlite3 nests them as savepoints). IMMEDIATE: the write lock is taken
   * before the chain head is read, so two servers on one ledger append their links one after the other, never from
   * the same head (a deferred transaction would fail to upgrade instead of waiting).
   */
  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn).immediate();
  }

  // ---------------------------------------------------------------- sessions

  /** The new session becomes the only active one; earlier sessions stay recorded. */
  createSession(s: NewSession): SessionRow {
    return this.transaction(() => {
      for (const { id } of this.stmt('SELECT id FROM sessions WHERE active = 1').all() as { id: number }[]) this.update('sessions', id, { active: 0 });
      const id = this.insert('sessions', {
        tag: s.tag,
        branch: s.branch,
        base_commit: s.baseCommit,
        best_commit: s.bestCommit,
        config: JSON.stringify(s.config),
        pins: JSON.stringify(s.pins),
        pinned_commit: s.pinnedCommit ?? null,
        created_at: now(),
        active: 1,
      });
      return this.session(id)!;
    });
  }

  setBest(sessionId: number, experimentId: number, commit: string): SessionRow {
    this.transaction(() => this.update('sessions', sessionId, { best_experiment_id: experimentId, best_commit: commit }));
    return this.session(sessionId)!;
  }

  setPinnedCommit(sessionId: number, commit: string): SessionRow {
    this.transaction(() => this.update('sessions', sessionId, { pinned_commit: commit }));
    return this.session(sessionId)!;
  }

  /**
   * The user stopped the session: nothing new runs in it. Stopping twice records one stop. Immediate, because
   * `ratchet stop` writes from another process while the server may be writing too.
   */
  stopSession(sessionId: number, s: { reason: string; cancelledExperimentId?: number | null }): { end: SessionEndRow; recorded: boolean } {
    return this.db.transaction(() => {
      const existing = this.sessionStop(sessionId);
      if (existing) return { end: existing, recorded: false };
      this.insert('session_ends', { session_id: sessionId, kind: 'stopped', cap: null, reason: s.reason, cancelled_experiment_id: s.cancelledExperimentId ?? null, created_at: now() });
      return { end: this.sessionStop(sessionId)!, recorded: true };
    }).immediate();
  }

  /** The user closed a finished session (`ratchet close`): it is no longer active, so the agent may start the next one. */
  closeSession(sessionId: number): SessionRow {
    return this.db.transaction(() => {
      this.update('sessions', sessionId, { active: 0 });
      return this.session(sessionId)!;
    }).immediate();
  }

  /** A cap of limits was reached; recorded once per session, so whoever sees it first tells the user and no one else does. */
  recordCapReached(sessionId: number, c: { cap: string; reason: string }): { end: SessionEndRow; recorded: boolean } {
    return this.db.transaction(() => {
      const existing = this.sessionEnd(sessionId);
      if (existing) return { end: existing, recorded: false };
      this.insert('session_ends', { session_id: sessionId, kind: 'cap', cap: c.cap, reason: c.reason, cancelled_experiment_id: null, created_at: now() });
      return { end: this.sessionEnd(sessionId)!, recorded: true };
    }).immediate();
  }

  // ---------------------------------------------------------------- experiment transitions

  /** A new experiment, queued: nothing has run yet. */
  createExperiment(e: NewExperiment): ExperimentRow {
    return this.transaction(() => this.attributed(this.insert('experiments', { ...newExperiment(e), state: 'queued', phase: 'run' }), e.agent));
  }

  /** A candidate refused before anything was committed or run. */
  createRefused(e: NewExperiment & { reason: string; violations: unknown[] }): ExperimentRow {
    return this.transaction(() => {
      const row = { ...newExperiment(e), state: 'refused', phase: 'done', reason: e.reason, violations: json(e.violations), ended_at: now() };
      return this.attributed(this.insert('experiments', row), e.agent);
    });
  }

  setCommit(id: number, commit: string, diffStats: DiffStats | null): ExperimentRow {
    return this.transition(id, null, { commit, diff_stats: json(diffStats) });
  }

  /** The diff's size, recorded while the run goes (it is not needed to start it). */
  recordDiffStats(id: number, diffStats: DiffStats): ExperimentRow {
    return this.transition(id, null, { diff_stats: json(diffStats) });
  }

  /** The run token is on record before anything is spawned, so a crash in between still lets recovery sweep it. */
  markLaunching(id: number, r: { phase: RunStart['phase']; runToken: string }): ExperimentRow {
    return this.transition(id, ['queued', 'running'], { run_token: r.runToken, supervisor_pid: null, phase: r.phase });
  }

  /** A phase's supervisor is running; startedAt keeps the experiment's first start. */
  markStarted(id: number, r: RunStart): ExperimentRow {
    const current = this.requireExperiment(id);
    return this.transition(id, ['queued', 'running'], {
      state: 'running',
      phase: r.phase,
      run_token: r.runToken,
      supervisor_pid: r.supervisorPid,
      log_path: r.logPath,
      started_at: current.startedAt ?? now(),
      ...(r.workspace !== undefined ? { workspace: r.workspace } : {}),
      ...(r.gpus !== undefined ? { gpus: json(r.gpus) } : {}),
    });
  }

  recordRunFacts(id: number, f: RunFacts): ExperimentRow {
    return this.transition(id, null, {
      exit_code: f.exitCode,
      signal: f.signal,
      duration_ms: f.durationMs,
      peak_memory_bytes: f.peakMemoryBytes,
      memory_method: f.memoryMethod,
    });
  }

  /** The run's samples and the experiment's figures, in one transaction. */
  recordMeasurement(id: number, m: MeasurementRecord): ExperimentRow {
    return this.transaction(() => {
      const at = now();
      for (const s of m.samples) {
        this.insert('samples', { experiment_id: id, name: s.name, value: s.value, source: s.source, host: s.host, gpu_model: s.gpuModel, created_at: at });
      }
      if (m.cases?.length) this.insert('case_results', { experiment_id: id, trials: JSON.stringify(m.cases), created_at: at });
      return this.transition(id, null, {
        metric: m.metric,
        secondary: JSON.stringify(m.secondary),
        constraint_checks: JSON.stringify(m.constraintChecks),
        metric_lines: m.metricLines,
      });
    });
  }

  /** A running experiment moves to its next phase: 'repeats' when more runs follow before it is decided. */
  markPhase(id: number, phase: Phase): ExperimentRow {
    return this.transition(id, ['running'], { phase });
  }

  /** Recorded before the kill, so a restart in between still reads the run as pruned, not cancelled. */
  requestPrune(id: number, why: string): ExperimentRow {
    const current = this.requireExperiment(id);
    if (current.state !== 'running') return current; // it ended on its own meanwhile
    return this.transition(id, ['running'], { prune_requested: why });
  }

  /** The experiment's figure over all its runs, with the decision's statistics (null for the baseline's calibration). */
  recordVerdict(id: number, report: DecisionReport | null, metric: number | null): ExperimentRow {
    return this.transition(id, null, { verdict: json(report), metric });
  }

  /** Records where a run's workspace was kept for inspection (null once it is removed). */
  keepWorkspace(id: number, workspace: string | null): ExperimentRow {
    return this.transition(id, null, { workspace });
  }

  /** Ends a queued or running experiment; an experiment already ended is returned unchanged (e.g. cancelled meanwhile). */
  finish(id: number, state: FinalState, reason: string | null): ExperimentRow {
    const current = this.requireExperiment(id);
    if (current.state !== 'queued' && current.state !== 'running') return current;
    return this.transition(id, ['queued', 'running'], { state, phase: 'done', reason, ended_at: now() });
  }

  /** Keep or revert, once. A keep that moves the best is keep() below. */
  decide(id: number, d: DecisionRecord): ExperimentRow {
    const current = this.requireExperiment(id);
    if (current.decision !== null) {
      throw new RatchetError('internal', `Experiment ${id} was already ${current.decision}; a decision is recorded once.`, 'Report this as a ratchet bug.');
    }
    return this.transition(id, ['measured'], {
      decision: d.decision,
      decision_reason: d.reason,
      forced: d.forced ? 1 : 0,
      completed_after_restart: d.completedAfterRestart ? 1 : 0,
    });
  }

  /** A kept experiment becomes the session's best, atomically. */
  keep(sessionId: number, id: number, commit: string, d: Omit<DecisionRecord, 'decision'>): ExperimentRow {
    return this.transaction(() => {
      const row = this.decide(id, { ...d, decision: 'kept' });
      this.setBest(sessionId, id, commit);
      return row;
    });
  }

  /** One GPU sample taken while a step runs; appended, never changed. */
  recordGpuSample(s: NewGpuSample): void {
    this.transaction(() => {
      this.insert('gpu_samples', {
        experiment_id: s.experimentId,
        phase: s.phase,
        utilization_percent: s.utilizationPercent,
        memory_mib: s.memoryMib,
        device_memory_mib: s.deviceMemoryMib,
        processes: s.processes,
        created_at: now(),
      });
    });
  }

  addProgress(experimentId: number, points: { step: number; value: number }[]): void {
    this.transaction(() => {
      for (const p of points) this.insert('progress', { experiment_id: experimentId, step: p.step, value: p.value });
    });
  }

  // ---------------------------------------------------------------- results.tsv

  /** Karpathy's results.tsv for one session, as text. */
  resultsTsv(sessionId: number, metricName: string): string {
    return this.results.text(sessionId, metricName);
  }

  /** Appends the experiments that reached their final line since the last write; rewrites only when an append would be wrong. */
  writeResultsTsv(sessionId: number, metricName: string, file: string): ResultsWrite {
    return this.results.sync(sessionId, metricName, file);
  }

  // ---------------------------------------------------------------- tamper evidence

  /** The latest chain link; mirror its hash outside the ledger (a git ref) so a rewritten chain shows. */
  chainHead(): ChainHead {
    return this.chain.head();
  }

  /** One link by its seq, to compare with a mirrored head; null when the chain has no such entry. */
  chainEntry(seq: number): ChainHead | null {
    return (this.stmt('SELECT seq, hash FROM chain WHERE seq = ?').get(seq) as ChainHead | undefined) ?? null;
  }

  /** The seq of the user's latest accept (`ratchet integrity --accept`), 0 when there was none. */
  lastResealSeq(): number {
    return (this.stmt("SELECT COALESCE(MAX(seq), 0) FROM chain WHERE tbl = 'reseal'").pluck().get() as number) ?? 0;
  }

  /** Recomputes every link and every row's hash: edited, inserted and deleted rows and chain entries, and wrong totals. */
  verifyChain(): ChainFinding[] {
    return this.chain.verify();
  }

  /** Records the current rows as accepted by the user (a marked reseal); returns how many rows were re-linked. */
  reseal(note: string): { entries: number; head: ChainHead } {
    return this.transaction(() => ({ entries: this.chain.reseal(note), head: this.chain.head() }));
  }

  /**
   * True iff another connection committed since the last call: the cheap check for every tool call.
   * data_version ignores this connection's own commits, so the Ledger's writes never trigger it and need no re-baseline.
   */
  externallyModified(): boolean {
    const v = this.readDataVersion();
    const changed = v !== this.dataVersion;
    this.dataVersion = v;
    return changed;
  }

  fileStatus(): LedgerFile {
    try {
      const st = statSync(this.path);
      return st.ino === this.opened.ino && st.dev === this.opened.dev ? 'intact' : 'replaced';
    } catch {
      return 'missing';
    }
  }

  /** Writes a consistent copy of the open ledger to a new file: restores a ledger deleted while the server holds it open. */
  vacuumInto(target: string): void {
    mkdirSync(dirname(target), { recursive: true });
    this.stmt('VACUUM INTO ?').run(target);
  }

  // ---------------------------------------------------------------- the private writer

  /** Records who proposed the experiment, chained beside it, and returns its row. */
  private attributed(id: number, agent: string | undefined): ExperimentRow {
    this.insert('experiment_agents', { experiment_id: id, agent: agent ?? this.agent, created_at: now() });
    return this.experiment(id)!;
  }

  private readDataVersion(): number {
    return this.stmt('PRAGMA data_version').pluck().get() as number;
  }

  private insert(tbl: ChainedTable, row: Record<string, unknown>): number {
    const cols = Object.keys(row);
    const sql = `INSERT INTO ${tbl} (${cols.map(quote).join(', ')}) VALUES (${cols.map(() => '?').join(', ')})`;
    const id = Number(this.stmt(sql).run(...cols.map((c) => row[c])).lastInsertRowid);
    this.chain.append(tbl, id);
    return id;
  }

  private update(tbl: ChainedTable, id: number, patch: Record<string, unknown>): void {
    const cols = Object.keys(patch);
    this.stmt(`UPDATE ${tbl} SET ${cols.map((c) => `${quote(c)} = ?`).join(', ')} WHERE id = ?`).run(...cols.map((c) => patch[c]), id);
    this.chain.append(tbl, id);
  }

  /** Updates an experiment (from one of the allowed states, when given) and notes a change to a line results.tsv already holds. */
  private transition(id: number, from: ExperimentState[] | null, patch: Record<string, unknown>): ExperimentRow {
    return this.transaction(() => {
      const before = this.requireExperiment(id);
      if (from && !from.includes(before.state)) {
        throw new RatchetError('internal', `Experiment ${id} is ${before.state}; this step needs it ${from.join(' or ')}.`, 'Report this as a ratchet bug.');
      }
      this.update('experiments', id, patch);
      const after = this.experiment(id)!;
      if (isFinalForResults(before) && (!isFinalForResults(after) || resultsLine(before) !== resultsLine(after))) {
        this.resultsEpoch.set(after.sessionId, (this.resultsEpoch.get(after.sessionId) ?? 0) + 1);
      }
      return after;
    });
  }
}

const quote = (c: string) => (c === 'commit' ? '"commit"' : c);

function newExperiment(e: NewExperiment): Record<string, unknown> {
  return {
    session_id: e.sessionId,
    kind: e.kind,
    repeat_of: e.repeatOf ?? null,
    commit: e.commit ?? null,
    parent_commit: e.parentCommit,
    description: e.description,
    hypothesis: e.hypothesis ?? null,
    host: e.host ?? null,
    created_at: now(),
  };
}
