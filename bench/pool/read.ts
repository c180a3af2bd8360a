// Each candidate run's times, read after the session: the ledger (read-only), the run's result file, and the
// timestamps the benchmark's command printed around its work.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { RunTimes } from './measure.js';

const ms = (iso: string | null | undefined) => (iso ? Date.parse(iso) : Number.NaN);

/** Each candidate's times, from the ledger (read-only), its run's result file and the timestamps its command printed. */
export function readRuns(repo: string): RunTimes[] {
  const db = new Database(join(repo, '.ratchet', 'ratchet.db'), { readonly: true, fileMustExist: true });
  try {
    const rows = db
      .prepare(
        `SELECT e.id, e.state, e.created_at, e.gpus, e.log_path, l.acquired_at, l.released_at
         FROM experiments e JOIN leases l ON l.experiment_id = e.id
         WHERE e.kind = 'candidate' AND e.log_path IS NOT NULL ORDER BY e.id`,
      )
      .all() as { id: number; state: string; created_at: string; gpus: string | null; log_path: string; acquired_at: string; released_at: string | null }[];
    const runs: RunTimes[] = [];
    for (const r of rows) {
      const log = existsSync(r.log_path) ? readFileSync(r.log_path, 'utf8') : '';
      const workStart = Number(/bench-work-start (\d+)/.exec(log)?.[1] ?? Number.NaN);
      if (!Number.isFinite(workStart)) continue; // cancelled before its command began
      const resultPath = join(repo, '.ratchet', 'runs', String(r.id), 'run.result.json');
      const result = existsSync(resultPath) ? (JSON.parse(readFileSync(resultPath, 'utf8')) as { startedAt: string; endedAt: string }) : null;
      const printedEnd = /bench-work-end (\d+)/.exec(log)?.[1];
      const gpus = JSON.parse(r.gpus ?? 'null') as { indices: number[] } | null;
      runs.push({
        id: r.id,
        device: gpus?.indices[0] ?? -1,
        submittedAt: ms(r.created_at),
        leasedAt: ms(r.acquired_at),
        releasedAt: ms(r.released_at),
        spawnedAt: ms(result?.startedAt),
        workStart,
        // A run cancelled at the end has no printed end: its work stopped when it was killed.
        workEnd: printedEnd ? Number(printedEnd) : ms(result?.endedAt),
        finished: r.state === 'measured',
      });
    }
    return runs;
  } finally {
    db.close();
  }
}
