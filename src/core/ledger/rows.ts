// Typed ledger rows: JSON columns are parsed here, once, so callers never re-parse or re-validate them.
import { RatchetError } from '../errors.js';
import type { ConstraintCheck, DecisionReport } from '../views.js';
import type { Pin } from '../surface.js';

export type ExperimentState = 'queued' | 'running' | 'measured' | 'crashed' | 'timed_out' | 'refused' | 'cancelled' | 'pruned';
/** Where finish() may take an experiment; 'refused' for a candidate whose commit broke the surface. */
export type FinalState = Exclude<ExperimentState, 'queued' | 'running'>;
export type Decision = 'kept' | 'reverted';
/** Which supervised step an unfinished experiment is in, so a restarted server can pick it up. */
export type Phase = 'run' | 'evaluate' | 'repeats' | 'done';
export type ExperimentKind = 'baseline' | 'candidate' | 'repeat';

export interface GpuAssignment {
  /** nvidia-smi index of each device (a MIG instance's GPU's), in lease order. */
  indices: number[];
  model: string | null;
  /** The leased devices' GPU- or MIG- UUIDs, beside indices; absent on rows written before leases. */
  uuids?: string[];
  /** The device nodes the sandbox shows the run (/dev/nvidia<minor> of each GPU). */
  nodes?: string[];
}

/** A run's GPU figures from the samples taken while it ran (nvidia-smi), or null when none were taken. */
export interface GpuUsage {
  samples: number;
  /** Peak memory of the run's own processes; of its GPUs as a whole when nvidia-smi listed none of its processes. */
  peakMemoryMib: number | null;
  /** 'processes' or 'devices': where peakMemoryMib comes from. */
  memorySource: 'processes' | 'devices' | null;
  meanUtilizationPercent: number | null;
}

export interface DiffStats {
  files: number;
  insertions: number;
  deletions: number;
}

export interface SessionRow {
  id: number;
  tag: string;
  branch: string;
  baseCommit: string;
  bestCommit: string;
  bestExperimentId: number | null;
  /** The config as pinned at session start, parsed JSON; validate it once with parseConfig. */
  config: unknown;
  pins: Pin[];
  /** A git commit holding the session's config and pins: the source of truth this row caches. */
  pinnedCommit: string | null;
  createdAt: string;
  active: boolean;
}

export interface ExperimentRow {
  id: number;
  sessionId: number;
  /** A repeat is one more run measuring the commit of its experiment or of the best, for a statistical decision. */
  kind: ExperimentKind;
  repeatOf: number | null;
  /** The decision's statistics, written when the experiment is decided. */
  verdict: DecisionReport | null;
  commit: string | null;
  parentCommit: string;
  description: string;
  hypothesis: string | null;
  state: ExperimentState;
  phase: Phase;
  decision: Decision | null;
  decisionReason: string | null;
  forced: boolean;
  /** The decision was recorded by recovery: the branch had moved before a crash, the ledger had not. */
  completedAfterRestart: boolean;
  metric: number | null;
  /** How many times the run printed the primary metric line (more than once is suspicious without evaluate). */
  metricLines: number | null;
  secondary: Record<string, number>;
  constraintChecks: ConstraintCheck[];
  reason: string | null;
  /** Why a prune was requested; set before the kill so a restart still reads the run as pruned. */
  pruneRequested: string | null;
  createdAt: string;
  startedAt: string | null;
  endedAt: string | null;
  durationMs: number | null;
  peakMemoryBytes: number | null;
  memoryMethod: string | null;
  exitCode: number | null;
  signal: string | null;
  logPath: string | null;
  /** A workspace kept for inspection (a crashed run's), else null. */
  workspace: string | null;
  diffStats: DiffStats | null;
  violations: unknown[] | null;
  runToken: string | null;
  supervisorPid: number | null;
  gpus: GpuAssignment | null;
  host: string | null;
}

/** How a session ended: the user stopped it, or a cap of limits was reached. The first one recorded is the session's end. */
export interface SessionEndRow {
  id: number;
  sessionId: number;
  kind: 'stopped' | 'cap';
  /** The limits key that was reached (kind 'cap'), e.g. "maxExperiments". */
  cap: string | null;
  reason: string;
  /** The experiment the stop cancelled, if it cancelled one. */
  cancelledExperimentId: number | null;
  createdAt: string;
}

export interface SampleRow {
  id: number;
  experimentId: number;
  name: string;
  value: number;
  source: 'run' | 'evaluate';
  host: string;
  gpuModel: string | null;
  createdAt: string;
}

export interface Measurement {
  /** The sample's id: measurements come in the order they were recorded. */
  sampleId: number;
  root: number;
  run: number;
  commit: string;
  value: number;
  host: string;
  gpuModel: string | null;
}

type Raw = Record<string, unknown>;

/** A JSON column that does not parse was written outside ratchet: say so instead of failing deep in a caller. */
function json<T>(raw: unknown, fallback: T, where: string): T {
  if (raw === null || raw === undefined || raw === '') return fallback;
  try {
    return JSON.parse(raw as string) as T;
  } catch {
    throw new RatchetError('internal', `The ledger's ${where} is not valid JSON: it was written outside ratchet.`, 'Call status to see what the tamper check found.');
  }
}

export function toSession(r: Raw): SessionRow {
  return {
    id: r.id as number,
    tag: r.tag as string,
    branch: r.branch as string,
    baseCommit: r.base_commit as string,
    bestCommit: r.best_commit as string,
    bestExperimentId: r.best_experiment_id as number | null,
    config: json<unknown>(r.config, null, `session ${r.id as number} config`),
    pins: json<Pin[]>(r.pins, [], `session ${r.id as number} pins`),
    pinnedCommit: (r.pinned_commit as string | null) ?? null,
    createdAt: r.created_at as string,
    active: r.active === 1,
  };
}

export function toExperiment(r: Raw): ExperimentRow {
  const where = (col: string) => `experiment ${r.id as number} ${col}`;
  return {
    id: r.id as number,
    sessionId: r.session_id as number,
    kind: r.kind as ExperimentKind,
    repeatOf: r.repeat_of as number | null,
    verdict: json<DecisionReport | null>(r.verdict, null, where('verdict')),
    commit: r.commit as string | null,
    parentCommit: r.parent_commit as string,
    description: r.description as string,
    hypothesis: r.hypothesis as string | null,
    state: r.state as ExperimentState,
    phase: r.phase as Phase,
    decision: r.decision as Decision | null,
    decisionReason: r.decision_reason as string | null,
    forced: r.forced === 1,
    completedAfterRestart: r.completed_after_restart === 1,
    metric: r.metric as number | null,
    metricLines: (r.metric_lines as number | null) ?? null,
    secondary: json<Record<string, number>>(r.secondary, {}, where('secondary')),
    constraintChecks: json<ConstraintCheck[]>(r.constraint_checks, [], where('constraint checks')),
    reason: r.reason as string | null,
    pruneRequested: (r.prune_requested as string | null) ?? null,
    createdAt: r.created_at as string,
    startedAt: r.started_at as string | null,
    endedAt: r.ended_at as string | null,
    durationMs: r.duration_ms as number | null,
    peakMemoryBytes: r.peak_memory_bytes as number | null,
    memoryMethod: r.memory_method as string | null,
    exitCode: r.exit_code as number | null,
    signal: r.signal as string | null,
    logPath: r.log_path as string | null,
    workspace: (r.workspace as string | null) ?? null,
    diffStats: json<DiffStats | null>(r.diff_stats, null, where('diff stats')),
    violations: json<unknown[] | null>(r.violations, null, where('violations')),
    runToken: r.run_token as string | null,
    supervisorPid: r.supervisor_pid as number | null,
    gpus: json<GpuAssignment | null>(r.gpus, null, where('gpus')),
    host: r.host as string | null,
  };
}

export function toSample(r: Raw): SampleRow {
  return {
    id: r.id as number,
    experimentId: r.experiment_id as number,
    name: r.name as string,
    value: r.value as number,
    source: r.source as 'run' | 'evaluate',
    host: r.host as string,
    gpuModel: r.gpu_model as string | null,
    createdAt: r.created_at as string,
  };
}

export function toSessionEnd(r: Raw): SessionEndRow {
  return {
    id: r.id as number,
    sessionId: r.session_id as number,
    kind: r.kind as SessionEndRow['kind'],
    cap: (r.cap as string | null) ?? null,
    reason: r.reason as string,
    cancelledExperimentId: (r.cancelled_experiment_id as number | null) ?? null,
    createdAt: r.created_at as string,
  };
}
