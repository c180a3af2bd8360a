// The SQLite ledger: versioned migrations, WAL, reopening, results.tsv in Karpathy's columns.
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
    expect(tables.map((t) => t.name)).toEqual(['experiments', 'progress', 'samples', 'sessions']);
    ledger.createSession({ tag: 'a', branch: 'ratchet/a', baseCommit: 'b', bestCommit: 'b', config: '{}', pins: '[]' });
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
    const r = migrated.createExperiment({ sessionId: 1, kind: 'repeat', repeatOf: 1, parentCommit: 'c1', description: 'r', state: 'pruned' });
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

  it('keeps one active session and records experiments and samples', () => {
    const { ledger } = freshLedger();
    const s1 = ledger.createSession({ tag: 'a', branch: 'ratchet/a', baseCommit: 'c0', bestCommit: 'c0', config: '{}', pins: '[]' });
    const s2 = ledger.createSession({ tag: 'b', branch: 'ratchet/b', baseCommit: 'c0', bestCommit: 'c0', config: '{}', pins: '[]' });
    expect(ledger.activeSession()?.id).toBe(s2.id);
    expect(ledger.session(s1.id)?.active).toBe(0);
    const e = ledger.createExperiment({ sessionId: s2.id, kind: 'candidate', parentCommit: 'c0', description: 'x' });
    expect(e.state).toBe('queued');
    ledger.addSample({ experimentId: e.id, name: 'val_bpb', value: 0.99, source: 'run', host: 'h', gpuModel: 'NVIDIA H100 80GB HBM3' });
    expect(ledger.samples(e.id)).toMatchObject([{ name: 'val_bpb', value: 0.99, gpuModel: 'NVIDIA H100 80GB HBM3' }]);
    expect(() => ledger.updateExperiment(e.id, { state: 'bogus' as never })).toThrow(/CHECK constraint/);
  });

  it('writes results.tsv with keep, discard and crash rows, skipping refusals and pending decisions', () => {
    const { path, ledger } = freshLedger();
    const s = ledger.createSession({ tag: 'a', branch: 'ratchet/a', baseCommit: 'c0', bestCommit: 'c0', config: '{}', pins: '[]' });
    const base = { sessionId: s.id, parentCommit: 'c0' };
    ledger.createExperiment({ ...base, kind: 'baseline', commit: 'aaaaaaa1111', description: 'baseline', state: 'measured', metric: 0.9979, secondary: '{"peak_vram_mb": 45060.2}' });
    ledger.createExperiment({ ...base, kind: 'candidate', commit: 'bbbbbbb2222', description: 'LR\tup', state: 'measured', metric: 0.9932, decision: 'kept', peakMemoryBytes: 2 * 1024 ** 3 });
    ledger.createExperiment({ ...base, kind: 'candidate', commit: 'ccccccc3333', description: 'worse', state: 'measured', metric: 1.01, decision: 'reverted' });
    ledger.createExperiment({ ...base, kind: 'candidate', commit: 'ddddddd4444', description: 'oom', state: 'crashed' });
    ledger.createExperiment({ ...base, kind: 'candidate', description: 'cheat', state: 'refused' });
    ledger.createExperiment({ ...base, kind: 'candidate', commit: 'fffffff6666', description: 'tiny', state: 'measured', metric: 5.889821e-31, decision: 'reverted' });
    ledger.createExperiment({ ...base, kind: 'candidate', commit: 'eeeeeee5555', description: 'pending', state: 'measured', metric: 0.5 });
    const file = join(path, '..', 'results.tsv');
    ledger.writeResultsTsv(s.id, 'val_bpb', file);
    expect(readFileSync(file, 'utf8')).toBe(
      [
        'commit\tval_bpb\tmemory_gb\tstatus\tdescription',
        'aaaaaaa\t0.997900\t44.0\tkeep\tbaseline',
        'bbbbbbb\t0.993200\t2.0\tkeep\tLR up',
        'ccccccc\t1.010000\t0.0\tdiscard\tworse',
        'ddddddd\t0.000000\t0.0\tcrash\toom',
        'fffffff\t5.889821e-31\t0.0\tdiscard\ttiny',
        '',
      ].join('\n'),
    );
  });
});
