import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { deriveEffects, makeStream, mulberry32, parseResults, typicalEffect } from '../../bench/decisions/stream.js';

const TSV = [
  'commit\tval_bpb\tmemory_gb\tstatus\tdescription',
  'baseline\t1.000000\t44.0\tkeep\tbaseline',
  'a\t0.990000\t44.0\tkeep\thelps by 0.01',
  'b\t0.995000\t44.0\tdiscard\tworse than the new best by 0.005',
  'c\t0.000000\t0.0\tcrash\tcrashed',
  'd\t0.985000\t44.0\tkeep\thelps by 0.005',
  'e\t0.985000\t44.0\tdiscard\tties the best',
  '',
].join('\n');

describe('parseResults', () => {
  it('reads Karpathy-format rows by column name', () => {
    const rows = parseResults(TSV);
    expect(rows).toHaveLength(6);
    expect(rows[0]).toEqual({ commit: 'baseline', value: 1, status: 'keep', description: 'baseline' });
    expect(rows[3]!.status).toBe('crash');
  });

  it('rejects an unknown status and a missing column', () => {
    expect(() => parseResults('commit\tval_bpb\tmemory_gb\tstatus\tdescription\nx\t1\t0\tmaybe\td')).toThrow(/status "maybe"/);
    expect(() => parseResults('commit\tval_bpb\tdescription\nx\t1\td')).toThrow(/no "status" column/);
  });
});

describe('deriveEffects', () => {
  it('measures each non-crash experiment against the best before it, skipping the baseline and crashes', () => {
    const effects = deriveEffects(parseResults(TSV));
    expect(effects.map((e) => e.commit)).toEqual(['a', 'b', 'd', 'e']);
    const values = effects.map((e) => e.effect);
    expect(values[0]).toBeCloseTo(-0.01, 12); // vs the baseline
    expect(values[1]).toBeCloseTo(0.005, 12); // vs a, the new best
    expect(values[2]).toBeCloseTo(-0.005, 12); // vs a
    expect(values[3]).toBeCloseTo(0, 12); // vs d
  });

  it('needs a measured baseline first', () => {
    expect(() => deriveEffects([])).toThrow(/baseline/);
    expect(() => deriveEffects(parseResults('commit\tval_bpb\tmemory_gb\tstatus\tdescription\nx\t0\t0\tcrash\td'))).toThrow(/baseline/);
  });
});

describe('typicalEffect', () => {
  it('is the median absolute effect', () => {
    expect(typicalEffect([-3, 1, 2])).toBe(2);
    expect(typicalEffect([-4, 1, 2, 3])).toBe(2.5);
    expect(() => typicalEffect([])).toThrow();
  });
});

describe('mulberry32', () => {
  it('is deterministic per seed, in [0, 1), and differs across seeds', () => {
    const a = Array.from({ length: 1000 }, mulberry32(42));
    const b = Array.from({ length: 1000 }, mulberry32(42));
    const c = Array.from({ length: 1000 }, mulberry32(43));
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
    expect(a.every((x) => x >= 0 && x < 1)).toBe(true);
    const mean = a.reduce((s, x) => s + x, 0) / a.length;
    expect(mean).toBeGreaterThan(0.45);
    expect(mean).toBeLessThan(0.55);
  });
});

describe('makeStream', () => {
  const effects = [-0.01, 0.002, 0.003, 0.5, 0.001, -0.0005];

  it('draws only real effects, the requested number, the same for the same seed', () => {
    const s = makeStream({ effects, length: 200, seed: 7 });
    expect(s).toHaveLength(200);
    expect(s.every((x) => effects.includes(x))).toBe(true);
    expect(makeStream({ effects, length: 200, seed: 7 })).toEqual(s);
    expect(makeStream({ effects, length: 200, seed: 8 })).not.toEqual(s);
  });

  it('is a bootstrap: with replacement, each effect drawn about equally often', () => {
    const s = makeStream({ effects, length: 6000, seed: 1 });
    for (const e of effects) {
      const share = s.filter((x) => x === e).length / s.length;
      expect(share).toBeGreaterThan(0.13);
      expect(share).toBeLessThan(0.2);
    }
  });

  it('a shorter stream is a prefix of a longer one with the same seed', () => {
    expect(makeStream({ effects, length: 50, seed: 3 })).toEqual(makeStream({ effects, length: 120, seed: 3 }).slice(0, 50));
  });

  it('rejects no effects and a bad length', () => {
    expect(() => makeStream({ effects: [], length: 3, seed: 1 })).toThrow();
    expect(() => makeStream({ effects, length: -1, seed: 1 })).toThrow();
    expect(makeStream({ effects, length: 0, seed: 1 })).toEqual([]);
  });
});

// The real log the benchmark draws from, when this checkout sits beside it.
const REAL = fileURLToPath(new URL('../../../shared/data/karpathy-mar8-results.tsv', import.meta.url));

describe.skipIf(!existsSync(REAL))('the real Karpathy log', () => {
  it('gives about 125 effects, about 1 in 6 helpful, with a typical effect below a thousandth of a bit', () => {
    const rows = parseResults(readFileSync(REAL, 'utf8'));
    expect(rows).toHaveLength(126);
    const effects = deriveEffects(rows).map((e) => e.effect);
    expect(effects.length).toBe(124); // 126 rows − the baseline − one crash
    const helpful = effects.filter((e) => e < 0).length;
    expect(helpful).toBeGreaterThanOrEqual(22); // every keep improved on the best before it
    expect(helpful / effects.length).toBeLessThan(0.25);
    const typical = typicalEffect(effects);
    expect(typical).toBeGreaterThan(1e-4);
    expect(typical).toBeLessThan(1e-3);
  });
});
