// The SQLite ledger: typed rows, named transitions, a tamper-evident chain, running totals and results.tsv (see ./ledger/).
import { join } from 'node:path';
import { resolveHome } from './agents/home.js';

export { Ledger } from './ledger/ledger.js';
export type { NewSession, NewExperiment, RunStart, RunFacts, NewSample, NewGpuSample, MeasurementRecord, DecisionRecord, LedgerFile } from './ledger/ledger.js';
export type { Page } from './ledger/reads.js';
export type {
  SessionRow,
  ExperimentRow,
  SampleRow,
  SessionEndRow,
  Measurement,
  ExperimentState,
  FinalState,
  ExperimentKind,
  Decision,
  Phase,
  GpuAssignment,
  GpuUsage,
  DiffStats,
} from './ledger/rows.js';
export type { ChainFinding, ChainHead } from './ledger/chain.js';
export { MIGRATIONS, SCHEMA_VERSION } from './ledger/schema.js';
export { escapeField, unescapeField, resultsLine, isFinalForResults, type ResultsWrite } from './ledger/results-tsv.js';

/** The repo's ledger; from an agent's worktree (`ratchet worktree add`), the main worktree's, which every agent shares. */
export function ledgerPath(repo: string): string {
  return join(resolveHome(repo).home, '.ratchet', 'ratchet.db');
}
