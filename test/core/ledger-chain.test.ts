// The ledger's hash chain: edits made through a second connection (as the sqlite3 CLI would) are named; honest writes verify clean.
import { describe, it, expect } from 'vitest';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Ledger, MIGRATIONS, SCHEMA_VERSION } from '../../src/core/ledger.js';

function freshLedger() {
  const path = join(mkdtempSync(join(tmpdir(), 'ratchet-chain-')), '.ratchet', 'ratchet.db');
  return { path, ledger: new Ledger(path) };
}

/** A small honest session: a calibrated baseline, a kept candidate with progress, a crashed one and a refusal. */
function honestSession(ledger: Ledger) {
  const s = ledger.createSession({ tag: 'a', branch: 'ratchet/a', baseCommit: 'c0', bestCommit: 'c0', config: { metric: { name: 'val_bpb' } }, pins: [{ path: 'prepare.py', sha256: 'aa', mode: 'file' }] });
  ledger.setPinnedCommit(s.id, 'p0');
  const sample = (value: number) => ({ name: 'val_bpb', value, source: 'run' as const, host: 'h', gpuModel: null });
  const run = (kind: 'baseline' | 'candidate', commit: string, value: number | null) => {
    const e = ledger.createExperiment({ sessionId: s.id, kind, parentCommit: 'c0', description: kind, host: 'h' });
    ledger.setCommit(e.id, commit, { files: 1, insertions: 1, deletions: 0 });
    ledger.markLaunching(e.id, { phase: 'run', runToken: `t${e.id}` });
    ledger.markStarted(e.id, { phase: 'run', runToken: `t${e.id}`, supervisorPid: 10, logPath: '/l', gpus: null });
    ledger.addProgress(e.id, [{ step: 1, value: 2 }]);
    ledger.recordRunFacts(e.id, { exitCode: value === null ? 1 : 0, signal: null, durationMs: 100, peakMemoryBytes: 10, memoryMethod: 'rss' });
    if (value === null) return ledger.finish(e.id, 'crashed', 'exit 1');
    ledger.recordMeasurement(e.id, { metric: value, secondary: {}, constraintChecks: [], metricLines: 1, samples: [sample(value), { ...sample(1), name: 'tokens' }] });
    ledger.recordVerdict(e.id, kind === 'candidate' ? ({ rule: 'greedy', verdict: 'improved', why: 'better' } as never) : null, value);
    return ledger.finish(e.id, 'measured', null);
  };
  const baseline = run('baseline', 'c0', 1.0);
  ledger.keep(s.id, baseline.id, 'c0', { reason: 'baseline' });
  const kept = run('candidate', 'c1', 0.9);
  ledger.keep(s.id, kept.id, 'c1', { reason: 'improved' });
  const crashed = run('candidate', 'c2', null);
  ledger.createRefused({ sessionId: s.id, kind: 'candidate', parentCommit: 'c1', description: 'cheat', reason: 'surface', violations: [{ path: 'prepare.py' }] });
  return { session: s, baseline, kept, crashed };
}

/** Opens the same file as a second connection, runs the attack, closes it. */
function attack(path: string, sql: string, ...args: unknown[]): void {
  const other = new Database(path);
  other.prepare(sql).run(...args);
  other.close();
}

describe('ledger chain', () => {
  it('an honest sequence of transitions verifies clean, and its own writes are not "external"', () => {
    const { ledger } = freshLedger();
    expect(ledger.externallyModified()).toBe(false);
    honestSession(ledger);
    expect(ledger.verifyChain()).toEqual([]);
    expect(ledger.externallyModified()).toBe(false);
    const head = ledger.chainHead();
    expect(head.seq).toBeGreaterThan(20);
    expect(head.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(ledger.chainEntry(head.seq)).toEqual(head);
    expect(ledger.chainEntry(head.seq + 1)).toBeNull();
  });

  const attacks: { name: string; sql: (ids: ReturnType<typeof honestSession>) => [string, ...unknown[]]; table: string; row: (ids: ReturnType<typeof honestSession>) => number; what: RegExp }[] = [
    { name: 'an edited metric', sql: (x) => ['UPDATE experiments SET metric = 0.001 WHERE id = ?', x.kept.id], table: 'experiments', row: (x) => x.kept.id, what: /edited outside ratchet/ },
    {
      name: 'an edited verdict',
      sql: (x) => [`UPDATE experiments SET verdict = '{"verdict":"improved"}' WHERE id = ?`, x.crashed.id],
      table: 'experiments',
      row: (x) => x.crashed.id,
      what: /edited/,
    },
    { name: "the session's config", sql: (x) => [`UPDATE sessions SET config = '{"evaluate":{"command":"echo 0"}}' WHERE id = ?`, x.session.id], table: 'sessions', row: (x) => x.session.id, what: /edited/ },
    { name: "the session's pins", sql: (x) => [`UPDATE sessions SET pins = '[]' WHERE id = ?`, x.session.id], table: 'sessions', row: (x) => x.session.id, what: /edited/ },
    { name: 'best_commit', sql: (x) => [`UPDATE sessions SET best_commit = 'c2', best_experiment_id = ? WHERE id = ?`, x.crashed.id, x.session.id], table: 'sessions', row: (x) => x.session.id, what: /edited/ },
    { name: 'a state', sql: (x) => [`UPDATE experiments SET state = 'measured', metric = 0.5 WHERE id = ?`, x.crashed.id], table: 'experiments', row: (x) => x.crashed.id, what: /edited/ },
    { name: 'a deleted sample', sql: (x) => ['DELETE FROM samples WHERE experiment_id = ? AND name = ?', x.kept.id, 'tokens'], table: 'samples', row: () => 4, what: /deleted outside ratchet/ },
    {
      name: 'an inserted row',
      sql: (x) => [`INSERT INTO samples (experiment_id, name, value, source, host, created_at) VALUES (?, 'val_bpb', 0.1, 'run', 'h', 'now')`, x.kept.id],
      table: 'samples',
      row: () => 5, // after the four honest samples
      what: /inserted outside ratchet/,
    },
    { name: 'an edited chain entry', sql: () => [`UPDATE chain SET row_hash = 'forged' WHERE seq = 5`], table: 'chain', row: () => 5, what: /was edited/ },
    { name: "an edited chain entry's prev_hash", sql: () => [`UPDATE chain SET prev_hash = 'forged' WHERE seq = 6`], table: 'chain', row: () => 6, what: /prev_hash was edited/ },
    { name: 'a deleted chain entry', sql: () => ['DELETE FROM chain WHERE seq = 9'], table: 'chain', row: () => 10, what: /entry 9 is missing/ },
  ];

  for (const a of attacks) {
    it(`names ${a.name} made through another connection`, () => {
      const { path, ledger } = freshLedger();
      const ids = honestSession(ledger);
      expect(ledger.externallyModified()).toBe(false);
      const [sql, ...args] = a.sql(ids);
      attack(path, sql, ...args);
      expect(ledger.externallyModified()).toBe(true);
      expect(ledger.externallyModified()).toBe(false); // the check re-baselines
      const findings = ledger.verifyChain();
      expect(findings).toContainEqual({ table: a.table, rowId: a.row(ids), what: expect.stringMatching(a.what) });
    });
  }

  it('names running totals edited to hide a run', () => {
    const { path, ledger } = freshLedger();
    const { session } = honestSession(ledger);
    attack(path, "UPDATE session_totals SET n = n + 5 WHERE session_id = ? AND state = 'crashed'", session.id);
    expect(ledger.verifyChain()).toEqual([{ table: 'session_totals', rowId: session.id, what: expect.stringMatching(/disagree/) }]);
  });

  it('a reseal records the state the user accepted, marked with the note, and later edits are caught again', () => {
    const { path, ledger } = freshLedger();
    const { kept, session } = honestSession(ledger);
    attack(path, 'UPDATE experiments SET metric = 0.001 WHERE id = ?', kept.id);
    attack(path, 'DELETE FROM chain WHERE seq = 3');
    attack(path, "UPDATE session_totals SET n = 99 WHERE state = 'refused'");
    expect(ledger.verifyChain().length).toBe(3);
    const before = ledger.chainHead();
    const { entries, head } = ledger.reseal('user: the metric edit was mine, a unit fix');
    expect(entries).toBe(1);
    expect(head.seq).toBe(before.seq + 2);
    const marker = ledger.db.prepare('SELECT tbl, note FROM chain WHERE seq = ?').get(before.seq + 1);
    expect(marker).toEqual({ tbl: 'reseal', note: 'user: the metric edit was mine, a unit fix' });
    expect(ledger.verifyChain()).toEqual([]);
    expect(ledger.countsByState(session.id).refused).toBe(1);
    attack(path, 'UPDATE chain SET note = ? WHERE seq = ?', 'someone else', before.seq + 1);
    expect(ledger.verifyChain()).toEqual([{ table: 'chain', rowId: before.seq + 1, what: expect.stringMatching(/note of reseal entry/) }]);
  });

  it('seals a version-2 ledger with rows once at migration, and it verifies clean', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ratchet-chain-'));
    const path = join(dir, 'v2.db');
    const old = new Database(path);
    old.exec(MIGRATIONS[0]!);
    old.exec(MIGRATIONS[1]!);
    old.pragma('user_version = 2');
    old.prepare("INSERT INTO sessions (tag, branch, base_commit, best_commit, config, pins, created_at) VALUES ('a', 'ratchet/a', 'c0', 'c1', '{}', '[]', 'now')").run();
    const insert = old.prepare(
      `INSERT INTO experiments (session_id, kind, repeat_of, "commit", parent_commit, description, state, phase, decision, decision_reason, metric, reason, duration_ms, created_at)
       VALUES (1, ?, ?, ?, 'c0', ?, ?, ?, ?, ?, ?, ?, ?, 'now')`,
    );
    insert.run('baseline', null, 'c0', 'baseline', 'measured', 'done', 'kept', 'baseline', 1.0, null, 100);
    insert.run('candidate', null, 'c1', 'better', 'measured', 'done', 'kept', 'improved (keep completed after a restart)', 0.9, null, 100);
    insert.run('candidate', null, 'c2', 'slow', 'running', 'run', null, null, null, 'pruned: worse at step 3', null);
    insert.run('repeat', 2, 'c1', 'candidate repeated for #2', 'measured', 'done', null, null, 0.91, null, 50);
    old.prepare("INSERT INTO samples (experiment_id, name, value, source, host, created_at) VALUES (1, 'val_bpb', 1.0, 'run', 'h', 'now')").run();
    old.prepare('INSERT INTO progress (experiment_id, step, value) VALUES (1, 1, 2.0), (1, 2, 1.5)').run();
    old.close();

    const ledger = new Ledger(path);
    expect(ledger.schemaVersion()).toBe(SCHEMA_VERSION);
    expect(ledger.verifyChain()).toEqual([]);
    // One marker plus one entry per existing row: 1 session, 4 experiments, 1 sample, 2 progress points.
    expect(ledger.chainHead().seq).toBe(1 + 1 + 4 + 1 + 2);
    expect(ledger.experiment(2)).toMatchObject({ completedAfterRestart: true });
    expect(ledger.experiment(3)).toMatchObject({ pruneRequested: 'worse at step 3' });
    expect(ledger.progress(1)).toEqual([
      { step: 1, value: 2 },
      { step: 2, value: 1.5 },
    ]);
    expect(ledger.countsByState(1)).toEqual({ measured: 2, running: 1 });
    expect(ledger.runsSpent(1)).toEqual({ runs: 3, seconds: 0.25 });
    expect(ledger.listExperiments(1, { limit: 10 }).total).toBe(3);
  });

  it('writes a deleted ledger back from the open handle with its chain intact', () => {
    const { path, ledger } = freshLedger();
    const { session } = honestSession(ledger);
    const head = ledger.chainHead();
    expect(ledger.fileStatus()).toBe('intact');
    for (const f of [path, `${path}-wal`, `${path}-shm`]) rmSync(f, { force: true });
    expect(ledger.fileStatus()).toBe('missing');
    ledger.vacuumInto(path);
    expect(existsSync(path)).toBe(true);
    expect(ledger.fileStatus()).toBe('replaced');
    const restored = new Ledger(path);
    expect(restored.chainHead()).toEqual(head);
    expect(restored.verifyChain()).toEqual([]);
    expect(restored.session(session.id)?.pinnedCommit).toBe('p0');
    restored.close();
  });
});
