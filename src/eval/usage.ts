// What an agent spent: tokens and dollars, as it reported them (RATCHET_USAGE_FILE, or Claude Code's JSON), and their sums.
import { readFileSync } from 'node:fs';

export interface Usage {
  tokens?: number;
  costUsd?: number;
}

/** The usage file an agent command may write: {"tokens": n, "costUsd": x}; anything else reads as no usage. */
export function readUsageFile(path: string): Usage | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    return undefined;
  }
  if (typeof raw !== 'object' || raw === null) return undefined;
  const { tokens, costUsd } = raw as Record<string, unknown>;
  const usage: Usage = {};
  if (isAmount(tokens)) usage.tokens = tokens;
  if (isAmount(costUsd)) usage.costUsd = costUsd;
  return Object.keys(usage).length ? usage : undefined;
}

/** Sums per field; a field nobody reported stays undefined, so its line is not printed. */
export function sumUsage(all: (Usage | undefined)[]): Usage {
  const total: Usage = {};
  for (const u of all) {
    if (u?.tokens !== undefined) total.tokens = (total.tokens ?? 0) + u.tokens;
    if (u?.costUsd !== undefined) total.costUsd = (total.costUsd ?? 0) + u.costUsd;
  }
  return total;
}

function isAmount(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0;
}
