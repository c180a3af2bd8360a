// The candidate stream for the decision benchmark: true effects drawn from a real auto-research log.
// Pure functions over text and numbers (no I/O), so the stream is reproducible and unit-testable.
import { mulberry32 } from './prng.mjs';

/** One row of a Karpathy-format results.tsv: commit, val_bpb, memory_gb, status, description. */
export interface ResultRow {
  commit: string;
  value: number;
  status: 'keep' | 'discard' | 'crash';
  description: string;
}

/** A non-crash experiment and its true effect: its value minus the best value at that time (negative = better). */
export interface Effect {
  commit: string;
  description: string;
  effect: number;
}

/** Parses a results.tsv (header row first). The first data row is the baseline. */
export function parseResults(tsv: string): ResultRow[] {
  const lines = tsv.split(/\r?\n/).filter((l) => l.trim() !== '');
  if (!lines.length) throw new Error('results.tsv is empty');
  const header = lines[0]!.split('\t').map((h) => h.trim());
  const col = (name: string): number => {
    const i = header.indexOf(name);
    if (i < 0) throw new Error(`results.tsv has no "${name}" column (header: ${header.join(', ')})`);
    return i;
  };
  const valueCol = header.indexOf('val_bpb') >= 0 ? col('val_bpb') : 1;
  const [commitCol, statusCol, descCol] = [col('commit'), col('status'), col('description')];
  return lines.slice(1).map((line, i) => {
    const cells = line.split('\t');
    const status = cells[statusCol]?.trim();
    if (status !== 'keep' && status !== 'discard' && status !== 'crash') {
      throw new Error(`results.tsv row ${i + 2}: status "${status}" is not keep, discard or crash`);
    }
    const value = Number(cells[valueCol]);
    if (status !== 'crash' && !Number.isFinite(value)) throw new Error(`results.tsv row ${i + 2}: value "${cells[valueCol]}" is not a number`);
    return { commit: cells[commitCol]?.trim() ?? '', value, status, description: cells[descCol]?.trim() ?? '' };
  });
}

/**
 * Each non-crash experiment after the baseline, with its effect against the running best
 * (the best over kept rows before it; the baseline is row 1). Direction: minimize.
 */
export function deriveEffects(rows: ResultRow[]): Effect[] {
  const [baseline, ...rest] = rows;
  if (!baseline || baseline.status === 'crash') throw new Error('the first row must be a measured baseline');
  let best = baseline.value;
  const effects: Effect[] = [];
  for (const row of rest) {
    if (row.status === 'crash') continue;
    effects.push({ commit: row.commit, description: row.description, effect: row.value - best });
    if (row.status === 'keep') best = Math.min(best, row.value);
  }
  return effects;
}

/** Median |effect|: the unit in which noise and improvements are expressed. */
export function typicalEffect(effects: number[]): number {
  if (!effects.length) throw new Error('no effects');
  const abs = effects.map(Math.abs).sort((a, b) => a - b);
  const mid = abs.length >> 1;
  return abs.length % 2 ? abs[mid]! : (abs[mid - 1]! + abs[mid]!) / 2;
}

/** A seeded bootstrap resample of the real effects: the true effect of each candidate the "agent" proposes, in order. */
export function makeStream(input: { effects: number[]; length: number; seed: number }): number[] {
  const { effects, length, seed } = input;
  if (!effects.length) throw new Error('no effects to draw from');
  if (!Number.isInteger(length) || length < 0) throw new Error(`length must be a non-negative integer, got ${length}`);
  const rand = mulberry32(seed);
  return Array.from({ length }, () => effects[Math.floor(rand() * effects.length)]!);
}

export { mulberry32 };
