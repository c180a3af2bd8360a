// The SQLite ledger: versioned migrations, WAL, reopening, typed rows, named transitions, keyset paging and running totals.
import { describe, it, expect } from 'vitest';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Ledger, MIGRATIONS, SCHEMA_VERSION } from '../../src/core/ledger.js';

function freshLedger() {
  const path = join(mkdtempSync(join(tmpdir(), 'ratchet-ledger-')), '.ratchet', 'ratchet.db');
  return { path, ledger: new Ledger(path) };
}

describe('ledger', () => {
  it('migrates to the current version in WAL mode, and reopening is a no-op', () => {
    const { path, ledger } = freshLedger();
    expect(ledger.schemaVersion()).toBe(SCHEMA_VERSION);
    expect(ledger.db.pragma('journal_mode', { simple: true })).toBe('wal');
    const tables = ledger.db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as { name: string }[];
    expect(tables.map((t) => t.name)).toEqual(['agent_bases', 'agents', 'case_results', 'chain', 'experiment_agents', 'experiments', 'gpu_samples', 'leases', 'progress', 'run_owners', 'samples', 'session_ends', 'session_totals', 'sessions']);
    ledger.createSession({ tag: 'a', branch: 'ratchet/a', baseCommit: 'b', bestCommit: 'b', config: {}, pins: [] });
    ledger.close();
    const again = new Ledger(path);
    expect(again.sessionByTag('a')?.branch).toBe('ratchet/a');
    again.close();
  });

  it('migrates a version-1 ledger with data to the current schema without losing a row', () => {
    const { path, ledger } = freshLedger();
    ledger.close();
    const old = new Database(`${path}.v1`);
    old.exec(MIGRATIONS[0]!);
    old.pragma('user_version = 1');
    old.prepare("INSERT INTO sessions (tag, branch, base_commit, best_commit, config, pins, created_at) VALUES ('a', 'ratchet/a', 'c0', 'c1', '{}', '[]', 'now')").run();
    old.prepare("INSERT INTO experiments (session_id, kind, \"commit\", parent_commit, description, state, phase, metric, created_at) VALUES (1, 'baseline', 'c1', 'c1', 'baseline', 'measured', 'done', 0.99, 'now')").run();
    old.prepare("INSERT INTO samples (experiment_id, name, value, source, host, created_at) VALUES (1, 'val_bpb', 0.99, 'run', 'h', 'now')").run();
    old.close();
    const migrated = new Ledger(`${path}.v1`);
    expect(migrated.schemaVersion()).toBe(SCHEMA_VERSION);
    const e = migrated.experiment(1)!;
    expect(e).toMatchObject({ kind: 'baseline', metric: 0.99, repeatOf: null, verdict: null });
    expect(migrated.samples(1)).toHaveLength(1);
    // The rebuilt table accepts the new kind and state, and its references still hold.
    const r = migrated.createExperiment({ sessionId: 1, kind: 'repeat', repeatOf: 1, parentCommit: 'c1', description: 'r' });
    expect(migrated.finish(r.id, 'pruned', 'slower').state).toBe('pruned');
    expect(migrated.runsOf(1).map((x) => x.id)).toEqual([1, r.id]);
    expect(() => migrated.createExperiment({ sessionId: 99, kind: 'candidate', parentCommit: 'c1', description: 'x' })).toThrow(/FOREIGN KEY/);
    migrated.close();
  });

  it('refuses a ledger written by a newer ratchet instead of corrupting it', () => {
    const { path, ledger } = freshLedger();
    ledger.close();
    const db = new Database(path);
    db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    db.close();
    expect(() => new Ledger(path)).toThrow(/newer than this ratchet understands/);
  });

  it('keeps one active session and hands out typed rows', () => {
    const { ledger } = freshLedger();
    const pins = [{ path: 'prepare.py', sha256: 'ab', mode: 'file' as const }];
    const s1 = ledger.createSession({ tag: 'a', branch: 'ratchet/a', baseCommit: 'c0', bestCommit: 'c0', config: { metric: { name: 'val_bpb' } }, pins });
    const s2 = ledger.createSession({ tag: 'b', branch: 'ratchet/b', baseCommit: 'c0', bestCommit: 'c0', config: {}, pins: [] });
    expect(ledger.activeSession()?.id).toBe(s2.id);
    expect(ledger.latestSession()?.id).toBe(s2.id);
    expect(ledger.session(s1.id)).toMatchObject({ active: false, config: { metric: { name: 'val_bpb' } }, pins, pinnedCommit: null });
    expect(ledger.setPinnedCommit(s2.id, 'p1').pinnedCommit).toBe('p1');
    const e = ledger.createExperiment({ sessionId: s2.id, kind: 'candidate', parentCommit: 'c0', description: 'x', host: 'h' });
    expect(e).toMatchObject({ state: 'queued', phase: 'run', forced: false, completedAfterRestart: false, secondary: {}, constraintChecks: [], gpus: null });
  });

  it('moves an experiment through its named transitions, and each one refuses a state it does not start from', () => {
    const { ledger } = freshLedger();
    const s = ledger.createSession({ tag: 'a', branch: 'ratchet/a', baseCommit: 'c0', bestCommit: 'c0', config: {}, pins: [] });
    const e = ledger.createExperiment({ sessionId: s.id, kind: 'candidate', parentCommit: 'c0', description: 'x', host: 'h' });
    expect(ledger.setCommit(e.id, 'c1', { files: 1, insertions: 2, deletions: 3 }).diffStats).toEqual({ files: 1, insertions: 2, deletions: 3 });
    expect(ledger.markLaunching(e.id, { phase: 'run', runToken: 't1' })).toMatchObject({ runToken: 't1', supervisorPid: null, state: 'queued' });
    const started = ledger.markStarted(e.id, { phase: 'run', runToken: 't1', supervisorPid: 42, logPath: '/l/run.log', workspace: '/w/1', gpus: { indices: [0, 1], model: 'H100' } });
    expect(started).toMatchObject({ state: 'running', supervisorPid: 42, workspace: '/w/1', gpus: { indices: [0, 1], model: 'H100' } });
    // A later phase without gpus keeps the assignment, and the first start time.
    const evaluate = ledger.markStarted(e.id, { phase: 'evaluate', runToken: 't2', supervisorPid: 43, logPath: '/l/run.log' });
    expect(evaluate).toMatchObject({ phase: 'evaluate', gpus: { indices: [0, 1] }, startedAt: started.startedAt });
    ledger.recordRunFacts(e.id, { exitCode: 0, signal: null, durationMs: 1500, peakMemoryBytes: 1024, memoryMethod: 'cgroup' });
    const measured = ledger.recordMeasurement(e.id, {
      metric: 0.5,
      secondary: { peak_vram_mb: 100 },
      constraintChecks: [{ metric: 'peak_vram_mb', value: 100, max: 200, ok: true }],
      metricLines: 2,
      samples: [
        { name: 'val_bpb', value: 0.5, source: 'evaluate', host: 'h', gpuModel: 'H100' },
        { name: 'peak_vram_mb', value: 100, source: 'run', host: 'h', gpuModel: 'H100' },
      ],
    });
    expect(measured).toMatchObject({ metric: 0.5, metricLines: 2, secondary: { peak_vram_mb: 100 }, constraintChecks: [{ ok: true }] });
    expect(ledger.samples(e.id).map((x) => x.name)).toEqual(['val_bpb', 'peak_vram_mb']);
    expect(ledger.countMetricRepeats(s.id)).toBe(1);
    expect(ledger.requestPrune(e.id, 'worse at step 3').pruneRequested).toBe('worse at step 3');
    expect(ledger.finish(e.id, 'measured', null)).toMatchObject({ state: 'measured', phase: 'done' });
    // finish only ends a queued or running experiment: a second call changes nothing.
    expect(ledger.finish(e.id, 'crashed', 'late')).toMatchObject({ state: 'measured', reason: null });
    expect(() => ledger.markPhase(e.id, 'repeats')).toThrow(/measured; this step needs it running/);
    const kept = ledger.keep(s.id, e.id, 'c1', { reason: 'improved (keep completed after a restart)', forced: true, completedAfterRestart: true });
    expect(kept).toMatchObject({ decision: 'kept', forced: true, completedAfterRestart: true });
    expect(ledger.session(s.id)).toMatchObject({ bestExperimentId: e.id, bestCommit: 'c1' });
    expect(ledger.keptExperimentFor(s.id, 'c1')?.id).toBe(e.id);
    expect(() => ledger.decide(e.id, { decision: 'reverted', reason: 'x' })).toThrow(/already kept/);
    expect(ledger.committedExperimentIds(s.id)).toEqual([e.id]);
    expect(ledger.verifyChain()).toEqual([]);
  });

  it('records refusals, verdicts, progress and kept workspaces', () => {
    const { ledger } = freshLedger();
    const s = ledger.createSession({ tag: 'a', branch: 'ratchet/a', baseCommit: 'c0', bestCommit: 'c0', config: {}, pins: [] });
    const refused = ledger.createRefused({ sessionId: s.id, kind: 'candidate', parentCommit: 'c0', description: 'cheat', reason: 'surface', violations: [{ path: 'prepare.py' }] });
    expect(refused).toMatchObject({ state: 'refused', phase: 'done', violations: [{ path: 'prepare.py' }] });
    const e = ledger.createExperiment({ sessionId: s.id, kind: 'candidate', parentCommit: 'c0', description: 'x' });
    ledger.markStarted(e.id, { phase: 'run', runToken: 't', supervisorPid: 1, logPath: '/l' });
    ledger.addProgress(e.id, [
      { step: 2, value: 0.9 },
      { step: 1, value: 1.0 },
    ]);
    expect(ledger.progress(e.id)).toEqual([
      { step: 1, value: 1.0 },
      { step: 2, value: 0.9 },
    ]);
    const report = { rule: 'significant', verdict: 'improved', why: 'clear' } as never;
    expect(ledger.recordVerdict(e.id, report, 0.7)).toMatchObject({ metric: 0.7, verdict: { verdict: 'improved' } });
    ledger.finish(e.id, 'crashed', 'oom');
    ledger.keepWorkspace(e.id, '/w/e');
    expect(ledger.keptWorkspaces(5)).toEqual([e.id]);
    expect(ledger.latestRunExperiment(s.id)?.id).toBe(e.id);
    expect(ledger.latestExperiment(s.id)?.id).toBe(e.id);
    expect(ledger.unfinishedExperiments()).toEqual([]);
    expect(ledger.verifyChain()).toEqual([]);
  });

  it('pages by id and counts from running totals that match the rows', () => {
    const { ledger } = freshLedger();
    const s = ledger.createSession({ tag: 'a', branch: 'ratchet/a', baseCommit: 'c0', bestCommit: 'c0', config: {}, pins: [] });
    const ids: number[] = [];
    for (let i = 0; i < 7; i++) {
      const e = ledger.createExperiment({ sessionId: s.id, kind: i === 0 ? 'baseline' : 'candidate', parentCommit: 'c0', description: `e${i}` });
      ledger.markStarted(e.id, { phase: 'run', runToken: `t${i}`, supervisorPid: 1, logPath: '/l' });
      ledger.recordRunFacts(e.id, { exitCode: 0, signal: null, durationMs: 1000, peakMemoryBytes: null, memoryMethod: null });
      ledger.finish(e.id, i % 3 === 2 ? 'crashed' : 'measured', null);
      const r = ledger.createExperiment({ sessionId: s.id, kind: 'repeat', repeatOf: e.id, parentCommit: 'c0', description: 'r' });
      ledger.markStarted(r.id, { phase: 'run', runToken: `r${i}`, supervisorPid: 1, logPath: '/l' });
      ledger.recordRunFacts(r.id, { exitCode: 0, signal: null, durationMs: 500, peakMemoryBytes: null, memoryMethod: null });
      ledger.finish(r.id, 'measured', null);
      ids.push(e.id);
    }
    ledger.createRefused({ sessionId: s.id, kind: 'candidate', parentCommit: 'c0', description: 'no', reason: 'r', violations: [] });
    const first = ledger.listExperiments(s.id, { limit: 3 });
    expect(first.rows.map((e) => e.description)).toEqual(['no', 'e6', 'e5']);
    expect(first.total).toBe(8);
    const second = ledger.listExperiments(s.id, { limit: 3, beforeId: first.nextBeforeId! });
    expect(second.rows.map((e) => e.description)).toEqual(['e4', 'e3', 'e2']);
    const crashed = ledger.listExperiments(s.id, { limit: 10, state: 'crashed' });
    expect(crashed).toMatchObject({ total: 2, nextBeforeId: null });
    expect(crashed.rows.map((e) => e.description)).toEqual(['e5', 'e2']);
    expect(ledger.countsByState(s.id)).toEqual({ measured: 5, crashed: 2, refused: 1 });
    expect(ledger.runsSpent(s.id)).toEqual({ runs: 14, seconds: 10.5 });
    expect(ledger.runsOf(ids[1]!).map((e) => e.kind)).toEqual(['candidate', 'repeat']);
    expect(ledger.baselineId(s.id)).toBe(ids[0]);
  });

  it('serves every status query from an index, never a scan of a session', () => {
    const { ledger } = freshLedger();
    const plan = (sql: string, ...args: unknown[]) =>
      (ledger.db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...args) as { detail: string }[]).map((r) => r.detail).join('; ');
    const cases: [string, unknown[], RegExp][] = [
      ["SELECT * FROM experiments WHERE session_id = ? AND kind != 'repeat' AND id < ? ORDER BY id DESC LIMIT ?", [1, 10, 20], /experiments_roots /],
      ["SELECT * FROM experiments WHERE session_id = ? AND kind != 'repeat' AND state = ? ORDER BY id DESC LIMIT ?", [1, 'crashed', 20], /experiments_roots_by_state/],
      ["SELECT * FROM experiments WHERE state IN ('queued','running') ORDER BY id", [], /experiments_unfinished/],
      ['SELECT * FROM experiments WHERE id = ? OR repeat_of = ? ORDER BY id', [1, 1], /experiments_by_repeat/],
      ['SELECT COUNT(*) FROM experiments WHERE session_id = ? AND metric_lines > 1', [1], /experiments_metric_repeats/],
      ['SELECT id FROM experiments WHERE workspace IS NOT NULL ORDER BY id DESC LIMIT ?', [5], /experiments_with_workspace/],
      [`SELECT * FROM experiments WHERE session_id = ? AND "commit" = ? AND decision = 'kept' ORDER BY id LIMIT 1`, [1, 'c'], /experiments_kept/],
      ['SELECT * FROM experiments e JOIN samples s ON s.experiment_id = e.id WHERE e.session_id = ? AND s.name = ? ORDER BY s.id', [1, 'm'], /samples_by_experiment/],
      ['SELECT COALESCE(SUM(n), 0) FROM session_totals WHERE session_id = ? AND is_repeat = 0', [1], /PRIMARY KEY/],
    ];
    for (const [sql, args, index] of cases) {
      const detail = plan(sql, ...args);
      expect(detail, sql).toMatch(index);
      expect(detail, sql).not.toMatch(/SCAN (experiments|samples|e|s)\b(?! USING)/);
    }
  });
});
