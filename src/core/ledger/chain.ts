// The hash chain that makes the ledger tamper-evident: every write appends a link over the row's new content.
import crypto from 'node:crypto';
import type Database from 'better-sqlite3';
import { CHAINED_TABLES, IN_RESULTS, type ChainedTable } from './schema.js';

/** One disagreement between the rows, the chain and the running totals. */
export interface ChainFinding {
  /** A chained table, 'chain' for a link (rowId is its seq), or 'session_totals' (rowId is the session). */
  table: string;
  rowId: number;
  what: string;
}

export interface ChainHead {
  seq: number;
  hash: string;
}

export const GENESIS = '0'.repeat(64);
/** The row_hash that records a row as gone (a reseal accepted its deletion). */
export const DELETED = 'deleted';
/** Marker entries: 'seal' when a migration chained existing rows, 'reseal' when the user accepted the current state. */
type Marker = 'seal' | 'reseal';

// crypto.hash (Node >= 20.12) skips the Hash object: about twice as fast on short inputs, which is all the chain hashes.
const oneShot = (crypto as { hash?: (alg: string, data: string, enc: 'hex') => string }).hash;
export const sha256 = oneShot ? (s: string) => oneShot('sha256', s, 'hex') : (s: string) => crypto.createHash('sha256').update(s).digest('hex');

export const linkHash = (prev: string, tbl: string, rowId: number, rowHash: string) => sha256(`${prev}|${tbl}|${rowId}|${rowHash}`);

/** Serializes raw rows canonically: columns sorted by name, values as JSON (a type change counts as a change). */
class RowHasher {
  private readonly prefixes: string[];
  private readonly order: number[];

  constructor(columns: string[]) {
    this.prefixes = columns.map((c) => `${JSON.stringify(c)}:`);
    this.order = columns.map((_, i) => i).sort((a, b) => (columns[a]! < columns[b]! ? -1 : 1));
  }

  hash(values: unknown[]): string {
    let s = '{';
    for (let k = 0; k < this.order.length; k++) {
      const i = this.order[k]!;
      s += (k ? ',' : '') + this.prefixes[i]! + JSON.stringify(values[i]);
    }
    return sha256(s + '}');
  }
}

/** Each chained table's rows and the row_hash of their latest link. */
const emptyLatest = () => new Map<string, Map<number, string>>(CHAINED_TABLES.map((t) => [t, new Map()]));

export class Chain {
  private readonly hashers = new Map<ChainedTable, { get: Database.Statement; hasher: RowHasher }>();
  private readonly headStmt: Database.Statement;
  private readonly insertStmt: Database.Statement;

  constructor(private readonly db: Database.Database) {
    this.headStmt = db.prepare('SELECT seq, hash FROM chain ORDER BY seq DESC LIMIT 1');
    this.insertStmt = db.prepare('INSERT INTO chain (seq, tbl, row_id, row_hash, prev_hash, hash, note) VALUES (?, ?, ?, ?, ?, ?, ?)');
  }

  head(): ChainHead {
    const row = this.headStmt.get() as ChainHead | undefined;
    return row ?? { seq: 0, hash: GENESIS };
  }

  /** Links the row's content as it is now; call inside the transaction that wrote it. */
  append(tbl: ChainedTable, rowId: number): void {
    const { get, hasher } = this.forTable(tbl);
    const values = get.get(rowId) as unknown[] | undefined;
    this.link(tbl, rowId, values ? hasher.hash(values) : DELETED, null);
  }

  /** Every finding, in one pass over the chain and one over each table. */
  verify(): ChainFinding[] {
    const { latest, findings, lastMarker } = this.walk();
    // Broken links before the user's last reseal were accepted with it.
    const open = findings.filter((f) => f.rowId >= lastMarker.reseal);
    for (const d of this.diffRows(latest)) open.push(d.finding);
    return [...open, ...this.totalsFindings()];
  }

  /**
   * Records the current rows as accepted: a marker entry carrying the note, then one entry per row whose
   * content differs from its last link (deleted rows get DELETED), and running totals rebuilt from the rows.
   */
  reseal(note: string, marker: Marker = 'reseal'): number {
    const latest = marker === 'seal' ? emptyLatest() : this.walk().latest;
    this.link(marker, this.head().seq, sha256(note), note);
    let entries = 0;
    // Collected first: better-sqlite3 cannot write while a statement on the same connection is iterating.
    for (const d of [...this.diffRows(latest)]) {
      this.link(d.table, d.rowId, d.current ?? DELETED, null);
      entries++;
    }
    this.db.exec(`DELETE FROM session_totals;
      INSERT INTO session_totals (session_id, is_repeat, state, in_results, n, duration_ms)
      SELECT session_id, kind = 'repeat', state, ${IN_RESULTS('experiments')}, COUNT(*), COALESCE(SUM(duration_ms), 0) FROM experiments GROUP BY 1, 2, 3, 4`);
    return entries;
  }

  private link(tbl: string, rowId: number, rowHash: string, note: string | null): void {
    const head = this.head();
    this.insertStmt.run(head.seq + 1, tbl, rowId, rowHash, head.hash, linkHash(head.hash, tbl, rowId, rowHash), note);
  }

  private forTable(tbl: ChainedTable) {
    let entry = this.hashers.get(tbl);
    if (!entry) {
      const get = this.db.prepare(`SELECT * FROM ${tbl} WHERE id = ?`).raw(true);
      entry = { get, hasher: new RowHasher(get.columns().map((c) => c.name)) };
      this.hashers.set(tbl, entry);
    }
    return entry;
  }

  /**
   * Recomputes every link; returns each row's latest recorded hash and the broken links. Continuity (each prev_hash is the
   * previous entry's hash, no seq missing) is checked in SQL, so the walk reads five narrow columns and hashes each entry once.
   */
  private walk() {
    const latest = emptyLatest();
    const findings: ChainFinding[] = [];
    const lastMarker = { reseal: 0 };
    const broken = this.db
      .prepare(
        `SELECT c.seq, p.seq IS NOT NULL AS has_prev FROM chain c LEFT JOIN chain p ON p.seq = c.seq - 1
         WHERE c.prev_hash IS NOT COALESCE(p.hash, '${GENESIS}') OR (p.seq IS NULL AND c.seq != 1)`,
      )
      .all() as { seq: number; has_prev: number }[];
    for (const b of broken) {
      const what = b.has_prev || b.seq === 1 ? `chain entry ${b.seq} does not follow entry ${b.seq - 1}: its prev_hash was edited` : `chain entry ${b.seq - 1} is missing: it was deleted`;
      findings.push({ table: 'chain', rowId: b.seq, what });
    }
    const brokenAt = new Set(broken.map((b) => b.seq));
    let prev = GENESIS;
    const rows = this.db.prepare('SELECT seq, tbl, row_id, row_hash, hash FROM chain ORDER BY seq').raw(true);
    for (const [seq, tbl, rowId, rowHash, hash] of rows.iterate() as IterableIterator<[number, string, number, string, string]>) {
      // Where continuity holds, the previous entry's hash is this entry's prev_hash; where it does not, the SQL above named it.
      if (linkHash(prev, tbl, rowId, rowHash) !== hash && !brokenAt.has(seq)) {
        findings.push({ table: 'chain', rowId: seq, what: `chain entry ${seq} was edited: its hash does not match its content` });
      }
      prev = hash;
      const rowsOf = latest.get(tbl);
      if (rowsOf) rowsOf.set(rowId, rowHash);
      else if (tbl === 'reseal') lastMarker.reseal = seq;
      else if (tbl !== 'seal') findings.push({ table: 'chain', rowId: seq, what: `chain entry ${seq} names an unknown table "${tbl}"` });
    }
    const markers = this.db.prepare("SELECT seq, tbl, row_hash, note FROM chain WHERE tbl IN ('seal', 'reseal')").all() as { seq: number; tbl: string; row_hash: string; note: string | null }[];
    for (const m of markers) {
      if (m.note === null || sha256(m.note) !== m.row_hash) findings.push({ table: 'chain', rowId: m.seq, what: `the note of ${m.tbl} entry ${m.seq} was edited` });
    }
    return { latest, findings, lastMarker };
  }

  /** Rows whose content is not what their last link recorded: edited, inserted outside ratchet, or deleted. */
  private *diffRows(latest: Map<string, Map<number, string>>) {
    // A table added by a later migration is absent while an older one seals: it has no rows yet.
    const present = new Set(this.db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").pluck().all() as string[]);
    for (const table of CHAINED_TABLES) {
      const recorded = latest.get(table)!;
      const stmt = present.has(table) ? this.db.prepare(`SELECT * FROM ${table}`).raw(true) : null;
      const hasher = new RowHasher(stmt ? stmt.columns().map((c) => c.name) : []);
      const idAt = stmt ? stmt.columns().findIndex((c) => c.name === 'id') : -1;
      for (const values of (stmt?.iterate() ?? []) as Iterable<unknown[]>) {
        const rowId = values[idAt] as number;
        const current = hasher.hash(values);
        const last = recorded.get(rowId);
        recorded.delete(rowId);
        if (last === current) continue;
        const what =
          last === undefined
            ? `${table} row ${rowId} has no chain entry: it was inserted outside ratchet`
            : `${table} row ${rowId} differs from what ratchet last wrote: it was edited outside ratchet`;
        yield { table, rowId, current, finding: { table, rowId, what } as ChainFinding };
      }
      for (const [rowId, last] of recorded) {
        if (last === DELETED) continue;
        yield { table, rowId, current: null, finding: { table, rowId, what: `${table} row ${rowId} was deleted outside ratchet` } as ChainFinding };
      }
    }
  }

  private totalsFindings(): ChainFinding[] {
    const key = (r: { session_id: number; is_repeat: number; state: string; in_results: number }) => `${r.session_id}|${r.is_repeat}|${r.state}|${r.in_results}`;
    type Total = { session_id: number; is_repeat: number; state: string; in_results: number; n: number; duration_ms: number };
    const actual = this.db
      .prepare(
        `SELECT session_id, kind = 'repeat' AS is_repeat, state, ${IN_RESULTS('experiments')} AS in_results, COUNT(*) AS n,
         COALESCE(SUM(duration_ms), 0) AS duration_ms FROM experiments GROUP BY 1, 2, 3, 4`,
      )
      .all() as Total[];
    const kept = new Map((this.db.prepare('SELECT * FROM session_totals WHERE n != 0 OR duration_ms != 0').all() as Total[]).map((t) => [key(t), t]));
    const wrong = new Set<number>();
    for (const t of actual) {
      const k = kept.get(key(t));
      if (!k || k.n !== t.n || k.duration_ms !== t.duration_ms) wrong.add(t.session_id);
      kept.delete(key(t));
    }
    for (const t of kept.values()) wrong.add(t.session_id);
    return [...wrong].map((id) => ({ table: 'session_totals', rowId: id, what: `the running totals of session ${id} disagree with its experiments` }));
  }
}
