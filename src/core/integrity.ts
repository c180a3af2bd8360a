// Tamper evidence: the ledger's hash chain, its head mirrored into a git ref, the evidence refs and the ledger file itself, checked on every call.
import { existsSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { LoopContext } from './context.js';
import { Ledger, ledgerPath, type SessionRow } from './ledger.js';

export interface Finding {
  kind: 'ledger_deleted' | 'ledger_replaced' | 'ledger_modified' | 'chain_ref' | 'evidence_ref' | 'pinned';
  what: string;
}

const FINDINGS_FILE = 'integrity.json';
export const CHAIN_REF = 'refs/ratchet/ledger-head';
/** Decisions closer together than this share one evidence bundle. */
const BUNDLE_DELAY_MS = 2_000;
/** With other agents' servers writing, how often a read re-verifies the whole chain (decisions always do). */
const FULL_VERIFY_EVERY_MS = 30_000;

/**
 * Detects changes to ratchet's evidence made outside ratchet: a deleted or replaced ledger file, rows
 * edited through another connection (SQLite's data_version moves), a chain that no longer matches its
 * mirrored head, missing evidence refs. Findings persist until the user accepts them.
 */
export class Integrity {
  private findings: Finding[];
  /** The chain head this server last mirrored, and the ref's commit that holds it: an unchanged ref needs no re-read. */
  private sealed: { seq: number; hash: string } | null = null;
  private sealedRefSha: string | null = null;
  private bundling: Promise<void> = Promise.resolve();
  private bundleTimer: NodeJS.Timeout | null = null;
  /** Another connection wrote since the chain was last verified in full, and when that was. */
  private unverified = false;
  private verifiedAt = 0;
  /** The user's latest accept this server knows of: a newer one, made by the CLI, clears the findings. */
  private lastReseal: number | null = null;

  constructor(private readonly ctx: LoopContext) {
    this.findings = readFindings(this.file);
  }

  private get file(): string {
    return join(this.ctx.stateDir, FINDINGS_FILE);
  }

  current(): Finding[] {
    return [...this.findings];
  }

  /** Opens the ledger and checks it whole: at server start, and whenever another process wrote to it. */
  async checkAtStart(): Promise<Finding[]> {
    const path = ledgerPath(this.ctx.home);
    if (!existsSync(path)) {
      const evidence = await this.ctx.git.resolve(CHAIN_REF);
      if (evidence) this.add({ kind: 'ledger_deleted', what: `the ledger ${path} is missing, but git holds the evidence of earlier sessions (${CHAIN_REF}); restore .ratchet/ from a backup, or run \`ratchet integrity --accept\` to start over knowingly` });
      return this.current();
    }
    this.lastReseal = this.ctx.ledger.lastResealSeq();
    this.verifyChain();
    await this.checkChainRef();
    return this.current();
  }

  /** The cheap check run before every tool call; full verification only when something changed. */
  async check(opts: { evidenceRefs?: boolean } = {}): Promise<Finding[]> {
    if (!this.ctx.hasLedger) return this.current();
    // The server that drives the repo checks and records; an observer shows what it recorded.
    if (this.ctx.opts.observer) return (this.findings = readFindings(this.file));
    this.checkLedgerFile();
    this.lastReseal ??= this.ctx.ledger.lastResealSeq();
    // Another connection wrote: only then is the whole chain re-verified (an honest reader never writes). With other
    // agents' servers on the ledger, another connection writes all the time, and a full pass costs O(ledger): reads
    // then verify at most every FULL_VERIFY_EVERY_MS, while run_experiment and keep (evidenceRefs) always verify first.
    if (this.ctx.ledger.externallyModified()) this.unverified = true;
    if (this.unverified && (opts.evidenceRefs || Date.now() - this.verifiedAt >= FULL_VERIFY_EVERY_MS || !this.ctx.registry.agents().length)) {
      this.unverified = false;
      this.verifiedAt = Date.now();
      this.takeAccept();
      this.verifyChain();
    }
    await this.checkChainRef();
    const session = this.ctx.ledger.activeSession();
    if (opts.evidenceRefs && session) await this.checkEvidenceRefs(session);
    return this.current();
  }

  /** After a decision: the chain head goes into a git ref, and a bundle of the evidence refs is refreshed for restores after a gc. */
  async seal(session: SessionRow): Promise<void> {
    const { ctx } = this;
    const head = ctx.ledger.chainHead();
    const commit = await ctx.git.commitBlobs({ files: { 'chain-head': `${head.seq} ${head.hash}\n` }, message: `ratchet: ledger chain head ${head.seq}` });
    await ctx.git.setRef(CHAIN_REF, commit);
    this.sealed = head;
    this.sealedRefSha = commit;
    // The bundle is a backup for restores after a gc, not part of the decision: it is written after the
    // call returns, once decisions pause for a moment (a burst of quick decisions makes one bundle).
    if (this.bundleTimer) clearTimeout(this.bundleTimer);
    this.bundleTimer = setTimeout(() => this.writeBundle(session), BUNDLE_DELAY_MS);
    this.bundleTimer.unref();
  }

  private writeBundle(session: SessionRow): Promise<void> {
    const { ctx } = this;
    this.bundleTimer = null;
    this.bundling = this.bundling.then(() =>
      ctx.git.bundle(join(ctx.stateDir, `evidence-${session.tag}.bundle`), [`--glob=refs/ratchet/${session.tag}/*`, `refs/heads/${session.branch}`, CHAIN_REF]).catch((err: unknown) => {
        ctx.log.warn({ err }, 'could not refresh the evidence bundle');
      }),
    );
    return this.bundling;
  }

  /** Writes a bundle still waiting for its moment, and resolves once the latest one is written. */
  settled(): Promise<void> {
    if (this.bundleTimer) {
      clearTimeout(this.bundleTimer);
      const session = this.ctx.hasLedger ? this.ctx.ledger.activeSession() : undefined;
      if (session) return this.writeBundle(session);
    }
    return this.bundling;
  }

  /** The user looked at the findings and accepts the evidence as it stands: the chain is resealed and the findings cleared. */
  async accept(note: string): Promise<void> {
    if (this.ctx.hasLedger) {
      this.ctx.ledger.reseal(note);
      const session = this.ctx.ledger.activeSession() ?? this.ctx.ledger.latestSession();
      if (session) await this.seal(session);
    }
    this.findings = [];
    rmSync(this.file, { force: true });
  }

  /**
   * `ratchet integrity --accept` (another process) resealed the chain and cleared the findings file:
   * this server takes the cleared state without a restart. The accept stays in the chain as a marked
   * reseal with its note, so the morning shows that evidence was accepted, and when.
   */
  private takeAccept(): void {
    const seq = this.ctx.ledger.lastResealSeq();
    const known = this.lastReseal;
    this.lastReseal = seq;
    if (known === null || seq <= known) return;
    this.findings = readFindings(this.file);
    this.sealedRefSha = null;
    this.ctx.log.warn({ reseal: seq, findings: this.findings.length }, 'the user accepted the integrity findings');
  }

  /** `rm -rf .ratchet` leaves this server's handle on the deleted file: the ledger is written back from it. */
  private checkLedgerFile(): void {
    const ledger = this.ctx.ledger;
    const status = ledger.fileStatus();
    if (status === 'intact') return;
    const path = ledger.path;
    if (status === 'replaced') {
      this.add({ kind: 'ledger_replaced', what: `the ledger file ${path} was replaced by another file; this server keeps its own copy and wrote it back (the replacement is kept as ratchet.db.replaced)` });
      writeFileSync(`${path}.replaced`, readFileSync(path));
      rmSync(path, { force: true });
    } else {
      this.add({ kind: 'ledger_deleted', what: `the ledger file ${path} was deleted; this server still had it open and wrote it back` });
    }
    ledger.vacuumInto(path);
    this.ctx.replaceLedger(new Ledger(path));
    this.persist();
  }

  private verifyChain(): void {
    for (const f of this.ctx.ledger.verifyChain()) this.add({ kind: 'ledger_modified', what: `ledger ${f.table} row ${f.rowId}: ${f.what}` });
  }

  private async checkChainRef(): Promise<void> {
    const sha = await this.ctx.git.resolve(CHAIN_REF);
    if (sha === this.sealedRefSha && sha !== null) return;
    if (!sha) {
      if (this.sealed) this.add({ kind: 'chain_ref', what: `the git ref ${CHAIN_REF} that mirrors the ledger's chain head was deleted` });
      return;
    }
    const blob = await this.ctx.git.readBlob(sha, 'chain-head');
    const [seqText, hash] = (blob?.toString('utf8') ?? '').trim().split(' ');
    const seq = Number(seqText);
    const entry = Number.isInteger(seq) ? this.ctx.ledger.chainEntry(seq) : null;
    if (!entry || entry.hash !== hash) {
      this.add({ kind: 'chain_ref', what: `the ledger's history no longer matches the chain head mirrored in ${CHAIN_REF} (entry ${seqText}): rows were rewritten or removed` });
    }
    this.sealedRefSha = sha;
  }

  private async checkEvidenceRefs(session: SessionRow): Promise<void> {
    const present = new Set(await this.ctx.git.listRefs(`refs/ratchet/${session.tag}/`));
    const missing = this.ctx.ledger.committedExperimentIds(session.id).filter((id) => !present.has(`refs/ratchet/${session.tag}/${id}`));
    if (missing.length) {
      this.add({ kind: 'evidence_ref', what: `evidence refs of experiment(s) ${missing.slice(0, 10).join(', ')}${missing.length > 10 ? ` and ${missing.length - 10} more` : ''} were deleted (restore them from .ratchet/evidence-${session.tag}.bundle)` });
    }
  }

  private add(f: Finding): void {
    if (this.findings.some((x) => x.what === f.what)) return;
    this.findings.push(f);
    this.ctx.log.error({ finding: f }, 'tampering detected');
    this.persist();
  }

  private persist(): void {
    try {
      writeFileSync(this.file, `${JSON.stringify(this.findings, null, 2)}\n`);
    } catch {
      // the state dir may be gone; the findings stay in memory and are reported anyway
    }
  }
}

function readFindings(file: string): Finding[] {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Finding[];
  } catch {
    return [];
  }
}
