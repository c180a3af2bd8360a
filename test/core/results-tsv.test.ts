// results.tsv: Karpathy's columns, honest states, figures rounded to the noise, one line per experiment, appended unless an earlier line changed.
import { describe, it, expect } from 'vitest';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { escapeField, Ledger, unescapeField, type ExperimentKind, type FinalState } from '../../src/core/ledger.js';
import { decimalsForNoise } from '../../src/core/ledger/results-tsv.js';

function setup() {
  const dir = mkdtempSync(join(tmpdir(), 'ratchet-tsv-'));
  const ledger = new Ledger(join(dir, '.ratchet', 'ratchet.db'));
  const session = ledger.createSession({ tag: 'a', branch: 'ratchet/a', baseCommit: 'c0', bestCommit: 'c0', config: {}, pins: [] });
  const file = join(dir, 'results.tsv');
  /** One experiment through the transitions the loop uses, ending measured (and optionally decided) or failed. */
  const experiment = (o: { kind?: ExperimentKind; commit?: string; description?: string; metric?: number; end?: FinalState; decision?: 'kept' | 'reverted'; forced?: boolean; peak?: number; vram?: number; samples?: number[]; gpu?: { memoryMib: number | null; deviceMemoryMib: number | null }[] }) => {
    const e = ledger.createExperiment({ sessionId: session.id, kind: o.kind ?? 'candidate', parentCommit: 'c0', description: o.description ?? 'x' });
    if (o.commit) ledger.setCommit(e.id, o.commit, null);
    ledger.markStarted(e.id, { phase: 'run', runToken: `t${e.id}`, supervisorPid: 1, logPath: '/l' });
    for (const g of o.gpu ?? []) ledger.recordGpuSample({ experimentId: e.id, phase: 'run', utilizationPercent: 50, processes: 1, ...g });
    if (o.peak !== undefined) ledger.recordRunFacts(e.id, { exitCode: 0, signal: null, durationMs: 1, peakMemoryBytes: o.peak, memoryMethod: 'rss' });
    if (o.metric !== undefined) {
      const secondary: Record<string, number> = o.vram === undefined ? {} : { peak_vram_mb: o.vram };
      const samples = (o.samples ?? []).map((value) => ({ name: 'val_bpb', value, source: 'run' as const, host: 'h', gpuModel: null }));
      ledger.recordMeasurement(e.id, { metric: o.metric, secondary, constraintChecks: [], metricLines: 1, samples });
    }
    ledger.finish(e.id, o.end ?? 'measured', null);
    if (o.decision) ledger.decide(e.id, { decision: o.decision, reason: o.decision, forced: o.forced });
    return ledger.experiment(e.id)!;
  };
  return { ledger, session, file, experiment, write: () => ledger.writeResultsTsv(session.id, 'val_bpb', file), read: () => readFileSync(file, 'utf8') };
}

describe('results.tsv', () => {
  it('writes keep, discard, crash, refused and pruned rows, skipping repeats and pending decisions', () => {
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
      '\t0.000000\t0.0\trefused\tcheat',
      'fffffff\t5.889821e-31\t0.0\tdiscard\ttiny',
      '9999999\t0.000000\t0.0\tpruned\tstopped early',
      '',
    ].join('\n');
    expect(t.read()).toBe(expected);
    expect(t.ledger.resultsTsv(t.session.id, 'val_bpb')).toBe(expected);
  });

  it('gives memory_gb as the GPU memory measured while the run went, before what the run printed and its RSS', () => {
    const t = setup();
    const gpu = [
      { memoryMib: 20480, deviceMemoryMib: 21000 },
      { memoryMib: 30720, deviceMemoryMib: 31000 },
      { memoryMib: null, deviceMemoryMib: 40000 },
    ];
    t.experiment({ kind: 'baseline', commit: 'aaaaaaa1111', description: 'measured', metric: 1, vram: 10240, peak: 1024 ** 3, gpu });
    // nvidia-smi listed none of the run's processes: its GPU's memory in use stands in.
    t.experiment({ commit: 'bbbbbbb2222', description: 'devices', metric: 1, decision: 'reverted', gpu: [{ memoryMib: null, deviceMemoryMib: 5120 }] });
    t.experiment({ commit: 'ccccccc3333', description: 'no GPU', metric: 1, decision: 'reverted', vram: 2048 });
    t.write();
    expect(t.read().trimEnd().split('\n').slice(1).map((l) => l.split('\t')[2])).toEqual(['30.0', '5.0', '2.0']);
    expect(t.ledger.gpuUsage(1)).toEqual({ samples: 3, peakMemoryMib: 30720, memorySource: 'processes', meanUtilizationPercent: 50 });
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
    expect(t.read().split('\n').slice(2, 5).map((l) => l.split('\t')[3])).toEqual(['discard', 'crash', 'cancelled']);
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

  it('says what happened to each experiment in a status the notebook reads: keep, discard and crash as Karpathy meant them', () => {
    const t = setup();
    t.experiment({ kind: 'baseline', commit: 'aaaaaaa', description: 'baseline', metric: 1 });
    t.experiment({ commit: 'bbbbbbb', description: 'better', metric: 0.9, decision: 'kept' });
    t.experiment({ commit: 'ccccccc', description: 'simpler, same', metric: 0.9, decision: 'kept', forced: true });
    t.experiment({ commit: 'ddddddd', description: 'worse', metric: 1.1, decision: 'reverted' });
    t.experiment({ commit: 'eeeeeee', description: 'oom', end: 'crashed' });
    t.experiment({ commit: 'fffffff', description: 'too slow', end: 'timed_out' });
    t.experiment({ commit: '1111111', description: 'stopped', end: 'cancelled' });
    t.experiment({ commit: '2222222', description: 'behind the curve', end: 'pruned' });
    t.ledger.createRefused({ sessionId: t.session.id, kind: 'candidate', parentCommit: 'c0', description: 'edit the evaluator', reason: 'edit surface violated by evaluate.py', violations: [] });
    t.write();
    // As Karpathy's analysis notebook reads it: columns by name, status stripped and upper-cased.
    const [header, ...rows] = t.read().trimEnd().split('\n').map((l) => l.split('\t'));
    const col = (name: string) => header!.indexOf(name);
    expect(header).toEqual(['commit', 'val_bpb', 'memory_gb', 'status', 'description']);
    const status = rows.map((r) => r[col('status')]!.trim().toUpperCase());
    expect(status).toEqual(['KEEP', 'KEEP', 'KEEP (FORCED)', 'DISCARD', 'CRASH', 'TIMEOUT', 'CANCELLED', 'PRUNED', 'REFUSED']);
    // Every figure parses as a number (pd.to_numeric), and the notebook's baseline is the first row that is not a crash.
    for (const r of rows) expect(Number.isFinite(Number(r[col('val_bpb')]))).toBe(true);
    expect(rows.find((r) => r[col('status')] !== 'crash')![col('description')]).toBe('baseline');
    // The refusal's reason is in the second file beside it.
    const refusals = readFileSync(join(dirname(t.file), 'refusals.tsv'), 'utf8').trimEnd().split('\n').map((l) => l.split('\t'));
    expect(refusals[0]).toEqual(['id', 'created_at', 'description', 'reason']);
    expect(refusals).toHaveLength(2);
    expect(refusals[1]![2]).toBe('edit the evaluator');
    expect(refusals[1]![3]).toBe('edit surface violated by evaluate.py');
  });

  it('rounds figures to one digit past the calibration noise, fixed once the baseline is final, and still appends', () => {
    expect(decimalsForNoise(0.0032)).toBe(4);
    expect(decimalsForNoise(0.4)).toBe(2);
    expect(decimalsForNoise(25)).toBe(0);
    expect(decimalsForNoise(0)).toBe(6); // a metric that never varied: Karpathy's six
    expect(decimalsForNoise(null)).toBe(6); // one calibration run: no noise figure
    const t = setup();
    // Three calibration runs, sd ≈ 0.0033: the fourth decimal is the first the noise leaves any meaning in.
    t.experiment({ kind: 'baseline', commit: 'aaaaaaa', description: 'baseline', metric: 3.415333, samples: [3.4155, 3.412, 3.4185] });
    expect(t.write()).toBe('rewritten');
    t.experiment({ commit: 'bbbbbbb', description: 'better', metric: 3.398712, decision: 'kept', samples: [3.398712] });
    expect(t.write()).toBe('appended');
    t.experiment({ commit: 'ccccccc', description: 'oom', end: 'crashed' });
    expect(t.write()).toBe('appended');
    expect(t.read()).toBe(
      ['commit\tval_bpb\tmemory_gb\tstatus\tdescription', 'aaaaaaa\t3.4153\t0.0\tkeep\tbaseline', 'bbbbbbb\t3.3987\t0.0\tkeep\tbetter', 'ccccccc\t0.0000\t0.0\tcrash\toom', ''].join('\n'),
    );
    // A restarted process derives the same decimals from the ledger and adopts the file as it is.
    t.ledger.close();
    const again = new Ledger(t.ledger.path);
    expect(again.writeResultsTsv(t.session.id, 'val_bpb', t.file)).toBe('unchanged');
    again.close();
  });

  it('lists refusals in a second file that follows the results file it sits beside', () => {
    const t = setup();
    t.experiment({ kind: 'baseline', commit: 'aaaaaaa', description: 'baseline', metric: 1 });
    t.write();
    const refusals = join(dirname(t.file), 'refusals.tsv');
    expect(existsSync(refusals)).toBe(false); // no refusal, no file
    t.ledger.createRefused({ sessionId: t.session.id, kind: 'candidate', parentCommit: 'c0', description: 'tab\there', reason: 'nested repository\nin notes/', violations: [] });
    expect(t.write()).toBe('appended');
    expect(t.read().trimEnd().split('\n').at(-1)).toBe('\t0.000000\t0.0\trefused\ttab\\there');
    const lines = readFileSync(refusals, 'utf8').trimEnd().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[1]!.split('\t').slice(2)).toEqual(['tab\\there', 'nested repository\\nin notes/']);
    rmSync(refusals);
    t.write();
    expect(readFileSync(refusals, 'utf8').trimEnd().split('\n')).toHaveLength(2);
    // results-<tag>.tsv gets refusals-<tag>.tsv.
    t.ledger.writeResultsTsv(t.session.id, 'val_bpb', join(dirname(t.file), 'results-a.tsv'));
    expect(existsSync(join(dirname(t.file), 'refusals-a.tsv'))).toBe(true);
  });
});
