// Opens a ledger file: WAL, foreign keys, and the migrations that bring it to the current schema (sealing it into the chain once).
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { Chain } from './chain.js';
import { CHAIN_SINCE, MIGRATIONS, SCHEMA_VERSION } from './schema.js';

export function openLedgerDatabase(path: string): Database.Database {
  mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  // In WAL mode NORMAL never corrupts; a power cut may lose the last commits. FULL costs an fsync per transition.
  db.pragma('synchronous = NORMAL');
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  try {
    migrate(db, path);
  } catch (err) {
    db.close();
    throw err;
  }
  return db;
}

function migrate(db: Database.Database, path: string): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > SCHEMA_VERSION) {
    throw new Error(
      `The ledger ${path} has schema version ${current}, newer than this ratchet understands (${SCHEMA_VERSION}). Upgrade ratchet-mcp.`,
    );
  }
  if (current === SCHEMA_VERSION) return;
  // A table rebuild drops a table others reference; foreign keys are checked once it is whole again.
  db.pragma('foreign_keys = OFF');
  try {
    for (let v = current; v < SCHEMA_VERSION; v++) {
      db.transaction(() => {
        db.exec(MIGRATIONS[v]!);
        const broken = db.pragma('foreign_key_check') as unknown[];
        if (broken.length) throw new Error(`migration ${v + 1} left ${broken.length} broken reference(s) in ${path}; the ledger is unchanged.`);
        // Rows written before the chain existed are sealed as they are, once. A later migration that changes
        // a chained table's columns changes every row's hash and must seal again the same way.
        if (v + 1 === CHAIN_SINCE) new Chain(db).reseal(`sealed at migration to schema ${v + 1}`, 'seal');
        db.pragma(`user_version = ${v + 1}`);
      })();
    }
  } finally {
    db.pragma('foreign_keys = ON');
  }
}
