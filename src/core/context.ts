// What every part of the loop shares: the repo, git, the ledger, the executor, the workspaces, and lookups with their refusals.
import { existsSync, mkdirSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { homedir } from 'node:os';
import { basename, join } from 'node:path';
import type { Logger } from 'pino';
import { parseConfig, type Config } from './config.js';
import type { Executor } from './executor/executor.js';
import { LocalExecutor } from './executor/local.js';
import { Git } from './git.js';
import { Ledger, ledgerPath, type ExperimentRow, type Measurement, type NewExperiment, type SessionRow } from './ledger.js';
import * as refusals from './refusals.js';
import type { Pin } from './surface.js';
import { Workspaces } from './workspace.js';
import { noiseOf, onMachine, type Machine } from './decision.js';
import { resolveHome } from './agents/home.js';
import { AgentRegistry, endInstance, newInstance } from './agents/registry.js';
import { withRepoLock } from './agents/repo-lock.js';
import { baseFor } from './agents/roster.js';
import type { PooledNoise } from './statistics.js';

export interface LoopOptions {
  repo: string;
  logger: Logger;
  /** nvidia-smi binary; tests point this at a fake that replays real output. */
  nvidiaSmi?: string;
  /** How often a running step's GPUs are sampled; by default from its budget (2 to 30 s). */
  gpuSampleMs?: number;
  containment?: 'auto' | 'cgroup' | 'proc';
  /** Where sandboxed tools keep caches (HOME, pip, uv, torch, Hugging Face); default ~/.cache/ratchet/<repo>. */
  cacheDir?: string;
  /** The executor to run steps with; the local sandboxed one by default. */
  executor?: Executor;
  /**
   * A long-lived reader beside the server (the dashboard): it shows the integrity findings the server recorded and
   * never re-verifies the chain itself (seconds on a large ledger, after every write of the server) or writes anything.
   */
  observer?: boolean;
}

/** The session's pinned rules, read from git objects: a ledger row is only a cache of them. */
export interface Pinned {
  config: Config;
  pins: Pin[];
}

export class LoopContext {
  /** This server's worktree: its files are the agent's tree, its HEAD and index are the agent's. */
  readonly repo: string;
  /** The main worktree, whose .ratchet/ holds the ledger: the repo itself unless this is an agent's worktree. */
  readonly home: string;
  /** The agent this server proposes for ("main" in the main worktree). */
  readonly agent: string;
  /** True in an agent's worktree, whose HEAD ratchet keeps detached at the agent's base. */
  readonly linked: boolean;
  /** This loop, as it signs the runs it drives. */
  readonly instance = newInstance();
  private readonly commonDir: string | null;
  private boundRegistry: { db: unknown; registry: AgentRegistry } | null = null;
  readonly stateDir: string;
  readonly log: Logger;
  readonly git: Git;
  readonly workspaces: Workspaces;
  /** One driver per in-flight experiment: it follows the run to its result and records it. */
  readonly drivers = new Map<number, Promise<void>>();
  closed = false;
  /** When this server opened: a run that failed since is news to its agent until a tool has shown it. */
  readonly openedAt = Date.now();
  /** Experiments whose end a tool has shown this server's agent, so wait_experiment {next} reports each failure once. */
  readonly shownEnded = new Set<number>();
  private ledgerHandle: Ledger | null = null;
  private readonly pinnedByCommit = new Map<string, Pinned>();

  private readonly executors = new Map<string, Executor>();

  constructor(readonly opts: LoopOptions) {
    this.repo = opts.repo;
    const where = resolveHome(opts.repo);
    this.home = where.home;
    this.agent = where.agent;
    this.linked = where.linked;
    this.commonDir = where.commonDir;
    this.stateDir = join(this.home, '.ratchet');
    this.log = opts.logger;
    this.git = new Git(opts.repo);
    this.workspaces = new Workspaces(join(this.stateDir, 'ws'), this.git);
  }

  /** For what does not depend on the sandbox setting: following, cancelling and sweeping steps already started. */
  get executor(): Executor {
    return this.executorFor({ sandbox: 'auto' });
  }

  /** The executor for a config's sandbox setting (auto, required or off); one given in the options serves every setting. */
  executorFor(config: Pick<Config, 'sandbox'>): Executor {
    if (this.opts.executor) return this.opts.executor;
    let executor = this.executors.get(config.sandbox);
    if (!executor) {
      executor = new LocalExecutor({ mode: config.sandbox, containment: this.opts.containment });
      this.executors.set(config.sandbox, executor);
    }
    return executor;
  }

  get ledger(): Ledger {
    if (!this.ledgerHandle) {
      mkdirSync(this.stateDir, { recursive: true });
      this.ledgerHandle = new Ledger(ledgerPath(this.home));
      this.ledgerHandle.agent = this.agent;
    }
    return this.ledgerHandle;
  }

  /** The agents of this ledger, their bases and who drives each run (over the ledger now open). */
  get registry(): AgentRegistry {
    const db = this.ledger.db;
    if (this.boundRegistry?.db !== db) this.boundRegistry = { db, registry: new AgentRegistry(db, this.instance) };
    return this.boundRegistry.registry;
  }

  /** Runs `fn` while no other server of this repo decides (keeps, schedules); alone in the process without git. */
  decideAlone<T>(fn: () => Promise<T>): Promise<T> {
    return withRepoLock(this.commonDir ?? this.home, fn);
  }

  /**
   * The best this agent's tree was last brought to: where its next edits start from. The main worktree starts each
   * session on its best; an agent's worktree that has none in this session (added before it started) must sync first.
   */
  baseOf(session: SessionRow): string | null {
    return baseFor(this.registry, this.agent, session);
  }

  /**
   * A new experiment, claimed by this loop in the same transaction: no other server's (or this one's) look for orphans
   * can take it for one while it is being prepared.
   */
  createOwnExperiment(e: NewExperiment): ExperimentRow {
    return this.ledger.transaction(() => {
      const row = this.ledger.createExperiment(e);
      this.registry.claim(row.id, e.agent ?? this.agent);
      return row;
    });
  }

  /** What a run must not see: this worktree, the main one with the ledger, and every agent's worktree (their work in progress). */
  treesToHide(): string[] {
    const agents = this.hasLedger ? this.registry.agents().map((a) => a.worktree) : [];
    return [...new Set([this.repo, this.home, ...agents])].filter((dir) => existsSync(dir));
  }

  /** This loop lets its runs go: another server (or the next one) may adopt them. */
  endInstance(): void {
    endInstance(this.instance);
    try {
      if (this.ledgerHandle) this.registry.letGo();
    } catch (err) {
      this.log.warn({ err }, 'could not let go of the runs this server drove; they are adopted once it exits');
    }
  }

  /** Swaps in a reopened ledger (after its file was restored). */
  replaceLedger(next: Ledger | null): void {
    this.ledgerHandle?.close();
    this.ledgerHandle = next;
    if (next) next.agent = this.agent;
  }

  get hasLedger(): boolean {
    return this.ledgerHandle !== null || existsSync(ledgerPath(this.home));
  }

  closeLedger(): void {
    this.ledgerHandle?.close();
    this.ledgerHandle = null;
  }

  runDir(id: number): string {
    return join(this.stateDir, 'runs', String(id));
  }

  get resultsTsvPath(): string {
    return join(this.stateDir, 'results.tsv');
  }

  /** Persistent caches for sandboxed tools: outside the workspace and away from ratchet's state. */
  get cacheDir(): string {
    if (this.opts.cacheDir) return this.opts.cacheDir;
    const id = createHash('sha256').update(this.repo).digest('hex').slice(0, 12);
    return join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'ratchet', `${basename(this.repo)}-${id}`);
  }

  /** The pinned config and pins of a session, from its pinned commit (immutable, so cached by sha). */
  async pinned(session: SessionRow): Promise<Pinned> {
    const sha = session.pinnedCommit;
    if (!sha) return { config: parseConfig(session.config), pins: session.pins };
    const cached = this.pinnedByCommit.get(sha);
    if (cached) return cached;
    const [configBlob, pinsBlob] = await Promise.all([this.git.readBlob(sha, 'ratchet.json'), this.git.readBlob(sha, 'pins.json')]);
    if (!configBlob || !pinsBlob) throw new Error(`the session's pinned commit ${sha.slice(0, 7)} lacks ratchet.json or pins.json`);
    const pinned = { config: parseConfig(JSON.parse(configBlob.toString('utf8'))), pins: JSON.parse(pinsBlob.toString('utf8')) as Pin[] };
    this.pinnedByCommit.set(sha, pinned);
    return pinned;
  }

  /** The pinned config, synchronously: from the cache filled by `pinned`, else the ledger's copy. */
  configOf(session: SessionRow): Config {
    return (session.pinnedCommit && this.pinnedByCommit.get(session.pinnedCommit)?.config) || parseConfig(session.config);
  }

  requireSession(): { session: SessionRow; config: Config } {
    const session = this.hasLedger ? this.ledger.activeSession() : undefined;
    if (!session) throw refusals.noSession();
    return { session, config: this.configOf(session) };
  }

  /** Notes that a tool has shown the agent how `e` ended (nothing, while it is still going). */
  shown(e: ExperimentRow): ExperimentRow {
    if (e.state !== 'running' && e.state !== 'queued') this.shownEnded.add(e.id);
    return e;
  }

  requireExperiment(id: number, session?: SessionRow): ExperimentRow {
    const e = this.hasLedger ? this.ledger.experiment(id) : undefined;
    if (!e || (session && e.sessionId !== session.id)) throw refusals.unknownExperiment(id, session?.tag);
    return e;
  }

  bestOf(session: SessionRow): ExperimentRow | undefined {
    return session.bestExperimentId !== null ? this.ledger.experiment(session.bestExperimentId) : undefined;
  }

  private measured: { key: string; ledger: Ledger; rows: Measurement[] } | null = null;

  /**
   * The session's measurements of a metric. Samples are only ever appended, so after the first read
   * only the new ones are fetched: status and decisions stay fast at 100k experiments. A ledger
   * written by anyone else is caught by the integrity check, and a reopened ledger is read afresh.
   */
  measurements(sessionId: number, metricName: string): Measurement[] {
    const key = `${sessionId}:${metricName}`;
    const ledger = this.ledger;
    if (this.measured?.key !== key || this.measured.ledger !== ledger) {
      this.measured = { key, ledger, rows: ledger.measurements(sessionId, metricName) };
      return this.measured.rows;
    }
    const last = this.measured.rows[this.measured.rows.length - 1]?.sampleId ?? 0;
    const added = ledger.measurementsAfter(sessionId, metricName, last);
    for (const m of added) this.measured.rows.push(m);
    return this.measured.rows;
  }

  private comparableMemo = new Map<string, { count: number; rows: Measurement[]; noise: PooledNoise }>();

  /**
   * The measurements taken on one machine (host and GPU model), the only ones compared or pooled, with
   * their pooled noise; recomputed only when a measurement was added.
   */
  comparable(sessionId: number, metricName: string, machine: Machine): { rows: Measurement[]; noise: PooledNoise } {
    const all = this.measurements(sessionId, metricName);
    const key = `${sessionId}\0${metricName}\0${machine.host}\0${machine.gpuModel}`;
    const memo = this.comparableMemo.get(key);
    if (memo && memo.count === all.length) return memo;
    const rows = onMachine(all, machine);
    const fresh = { count: all.length, rows, noise: noiseOf(rows) };
    this.comparableMemo.set(key, fresh);
    return fresh;
  }

  /** A measured candidate that needs keep or revert before anything else runs. */
  awaitingDecision(session: SessionRow): ExperimentRow | undefined {
    const latest = this.ledger.latestRunExperiment(session.id);
    return latest && latest.kind === 'candidate' && latest.state === 'measured' && latest.decision === null ? latest : undefined;
  }

  /** A cancel can land while a driver awaits; it must never be overwritten by a later result. */
  stillRunning(id: number): boolean {
    return this.ledger.experiment(id)?.state === 'running';
  }

  stillRunningOrQueued(id: number): boolean {
    const state = this.ledger.experiment(id)?.state;
    return state === 'running' || state === 'queued';
  }

  /** results.tsv follows the active session; results-<tag>.tsv keeps every session's own file. */
  writeResults(session: SessionRow): void {
    const config = this.configOf(session);
    this.ledger.writeResultsTsv(session.id, config.metric.name, join(this.stateDir, `results-${session.tag}.tsv`));
    if (this.ledger.activeSession()?.id === session.id) this.ledger.writeResultsTsv(session.id, config.metric.name, this.resultsTsvPath);
  }
}
