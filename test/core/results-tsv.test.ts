// results.tsv: Karpathy's columns, one line per experiment whatever its description holds, appended unless an earlier line changed.
import { describe, it, expect } from 'vitest';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { escapeField, Ledger, unescapeField, type ExperimentKind, type FinalState } from '../../src/core/ledger.js';

function setup() {
  const dir = mkdtempSync(join(tmpdir(), 'ratchet-tsv-'));
  const ledger = new Ledger(join(dir, '.ratchet', 'ratchet.db'));
  const session = ledger.createSession({ tag: 'a', branch: 'ratchet/a', baseCommit: 'c0', bestCommit: 'c0', config: {}, pins: [] });
  const file = join(dir, 'results.tsv');
  /** One experiment through the transitions the loop uses, ending measured (and optionally decided) or failed. */
  const experiment = (o: { kind?: ExperimentKind; commit?: string; description?: string; metric?: number; end?: FinalState; decision?: 'kept' | 'reverted'; peak?: number; vram?: number }) => {
    const e = ledger.createExperiment({ sessionId: session.id, kind: o.kind ?? 'candidate', parentCommit: 'c0', description: o.description ?? 'x' });
    if (o.commit) ledger.setCommit(e.id, o.commit, null);
    ledger.markStarted(e.id, { phase: 'run', runToken: `t${e.id}`, supervisorPid: 1, logPath: '/l' });
    if (o.peak !== undefined) ledger.recordRunFacts(e.id, { exitCode: 0, signal: null, durationMs: 1, peakMemoryBytes: o.peak, memoryMethod: 'rss' });
    if (o.metric !== undefined) {
      const secondary: Record<string, number> = o.vram === undefined ? {} : { peak_vram_mb: o.vram };
      ledger.recordMeasurement(e.id, { metric: o.metric, secondary, constraintChecks: [], metricLines: 1, samples: [] });
    }
    ledger.finish(e.id, o.end ?? 'measured', null);
    if (o.decision) ledger.decide(e.id, { decision: o.decision, reason: o.decision });
    return ledger.experiment(e.id)!;
  };
  return { ledger, session, file, experiment, write: () => ledger.writeResultsTsv(session.id, 'val_bpb', file), read: () => readFileSync(file, 'utf8') };
}

describe('results.tsv', () => {
  it('writes keep, discard and crash rows, skipping refusals, repeats and pending decisions', () => {
    const t = setup();
    t.experiment({ kind: 'baseline', commit: 'aaaaaaa1111', description: 'baseline', metric: 0.9979, vram: 45060.2 });
    t.experiment({ commit: 'bbbbbbb2222', description: 'LR up', metric: 0.9932, decision: 'kept', peak: 2 * 1024 ** 3 });
    t.experiment({ commit: 'ccccccc3333', description: 'worse', metric: 1.01, decision: 'reverted' });
    t.experiment({ commit: 'ddddddd4444', description: 'oom', end: 'crashed' });
    t.ledger.createRefused({ sessionId: t.session.id, kind: 'candidate', parentCommit: 'c0', description: 'cheat', reason: 'surface', violations: [] });
    t.experiment({ kind: 'repeat', commit: 'bbbbbbb2222', metric: 0.99 });
    t.experiment({ commit: 'fffffff6666', description: 'tiny', metric: 5.889821e-31, decision: 'reverted' });
    t.experiment({ commit: '9999999aaaa', description: 'stopped early', end: 'pruned' });
    t.experiment({ commit: 'eeeeeee5555', description: 'pending', metric: 0.5 });
    expect(t.write()).toBe('rewritten');
    const expected = [
      'commit\tval_bpb\tmemory_gb\tstatus\tdescription',
      'aaaaaaa\t0.997900\t44.0\tkeep\tbaseline',
      'bbbbbbb\t0.993200\t2.0\tkeep\tLR up',
      'ccccccc\t1.010000\t0.0\tdiscard\tworse',
      'ddddddd\t0.000000\t0.0\tcrash\toom',
      'fffffff\t5.889821e-31\t0.0\tdiscard\ttiny',
      '9999999\t0.000000\t0.0\tdiscard\tstopped early',
      '',
    ].join('\n');
    expect(t.read()).toBe(expected);
    expect(t.ledger.resultsTsv(t.session.id, 'val_bpb')).toBe(expected);
  });

  it('appends one line per experiment that reaches its final state, and nothing for one awaiting a decision', () => {
    const t = setup();
    t.experiment({ kind: 'baseline', commit: 'aaaaaaa', description: 'baseline', metric: 1 });
    expect(t.write()).toBe('rewritten'); // nothing written yet in this process
    const pending = t.experiment({ commit: 'bbbbbbb', description: 'pending', metric: 0.9 });
    expect(t.write()).toBe('unchanged');
    t.ledger.decide(pending.id, { decision: 'reverted', reason: 'worse' });
    expect(t.write()).toBe('appended');
    t.experiment({ commit: 'ccccccc', description: 'oom', end: 'crashed' });
    t.experiment({ commit: 'ddddddd', description: 'cancelled', end: 'cancelled' });
    expect(t.write()).toBe('appended');
    expect(t.read()).toBe(t.ledger.resultsTsv(t.session.id, 'val_bpb'));
    expect(t.read().split('\n').slice(2, 5).map((l) => l.split('\t')[3])).toEqual(['discard', 'crash', 'crash']);
  });

  it('rewrites in full when the file is missing, was changed by someone else, or an earlier line changed', () => {
    const t = setup();
    t.experiment({ kind: 'baseline', commit: 'aaaaaaa', description: 'baseline', metric: 1 });
    const kept = t.experiment({ commit: 'bbbbbbb', description: 'better', metric: 0.9, decision: 'kept' });
    t.write();
    const full = () => t.ledger.resultsTsv(t.session.id, 'val_bpb');

    rmSync(t.file);
    expect(t.write()).toBe('rewritten');
    expect(t.read()).toBe(full());

    appendFileSync(t.file, 'forged\t0.0\t0.0\tkeep\tnot an experiment\n');
    t.experiment({ commit: 'ccccccc', description: 'next', end: 'crashed' });
    expect(t.write()).toBe('rewritten');
    expect(t.read()).toBe(full());

    writeFileSync(t.file, t.read().replace('next', 'NEXT')); // same length, different last bytes
    t.experiment({ commit: 'ddddddd', description: 'after', end: 'crashed' });
    expect(t.write()).toBe('rewritten');
    expect(t.read()).toContain('\tnext\n');

    // A changed figure on a line already written (here the verdict's mean) cannot be appended.
    t.ledger.recordVerdict(kept.id, null, 0.8);
    expect(t.write()).toBe('rewritten');
    expect(t.read()).toContain('bbbbbbb\t0.800000');
  });

  it('adopts a complete file after a restart instead of rewriting it, and rewrites one that is not', () => {
    const t = setup();
    t.experiment({ kind: 'baseline', commit: 'aaaaaaa', description: 'baseline', metric: 1 });
    t.experiment({ commit: 'bbbbbbb', description: 'pending', metric: 0.9 });
    t.write();
    t.ledger.close();
    const again = new Ledger(t.ledger.path);
    expect(again.writeResultsTsv(t.session.id, 'val_bpb', t.file)).toBe('unchanged');
    again.decide(again.latestExperiment(t.session.id)!.id, { decision: 'reverted', reason: 'worse' });
    expect(again.writeResultsTsv(t.session.id, 'val_bpb', t.file)).toBe('appended');
    again.close();
    writeFileSync(t.file, t.read().replace('\tpending\n', '\tforged\n'));
    const third = new Ledger(t.ledger.path);
    expect(third.writeResultsTsv(t.session.id, 'val_bpb', t.file)).toBe('rewritten');
    expect(t.read()).toContain('\tpending\n');
    third.close();
  });

  it('rewrites when an earlier experiment becomes final after a later one was appended', () => {
    const t = setup();
    t.experiment({ kind: 'baseline', commit: 'aaaaaaa', description: 'baseline', metric: 1 });
    const pending = t.experiment({ commit: 'bbbbbbb', description: 'pending', metric: 0.9 });
    t.write();
    t.experiment({ commit: 'ccccccc', description: 'later', end: 'crashed' });
    expect(t.write()).toBe('appended');
    t.ledger.decide(pending.id, { decision: 'reverted', reason: 'worse' });
    expect(t.write()).toBe('rewritten');
    expect(t.read().trimEnd().split('\n').map((l) => l.split('\t')[4])).toEqual(['description', 'baseline', 'pending', 'later']);
  });

  it('keeps one experiment on one line whatever separators or controls its description holds', () => {
    const t = setup();
    const nasty = 'a\u2028b\u2029c\u0085d\ve\ff\tg\nh\ri\u0000j\u001bk\u007fl\u009bm\\n';
    t.experiment({ kind: 'baseline', commit: 'aaaaaaa', description: nasty, metric: 1 });
    t.experiment({ commit: 'bbbbbbb', description: 'plain', end: 'crashed' });
    t.write();
    const text = t.read();
    // Every character any reader might take as a line break, not just \n.
    const lines = text.split(/\r\n|[\n\r\v\f\u0085\u2028\u2029]/);
    expect(lines).toHaveLength(4);
    const description = lines[1]!.split('\t')[4]!;
    expect(description).toBe('a\\u2028b\\u2029c\\u0085d\\ve\\ff\\tg\\nh\\ri\\u0000j\\u001bk\\u007fl\\u009bm\\\\n');
    expect(description).not.toMatch(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/);
    expect(unescapeField(description)).toBe(nasty);
    expect(escapeField('LR up 2x')).toBe('LR up 2x');
  });
});
