// What each of the Ledger's named transitions takes: the shapes the loop hands the writer (ledger.ts).
import type { CaseTrial } from '../cases.js';
import type { Pin } from '../surface.js';
import type { ConstraintCheck } from '../views.js';
import type { Decision, ExperimentKind, GpuAssignment, Phase } from './rows.js';

export interface NewSession {
  tag: string;
  branch: string;
  baseCommit: string;
  bestCommit: string;
  config: unknown;
  pins: Pin[];
  pinnedCommit?: string | null;
}

export interface NewExperiment {
  sessionId: number;
  kind: ExperimentKind;
  parentCommit: string;
  description: string;
  hypothesis?: string | null;
  commit?: string | null;
  repeatOf?: number | null;
  host?: string | null;
  /** The agent that proposed it; the ledger's own agent (this server's) when omitted. */
  agent?: string;
}

export interface RunStart {
  phase: Exclude<Phase, 'repeats' | 'done'>;
  runToken: string;
  supervisorPid: number | null;
  logPath: string;
  workspace?: string | null;
  /** Omitted: keep the experiment's assignment (a later phase runs on the same GPUs). */
  gpus?: GpuAssignment | null;
}

export interface RunFacts {
  exitCode: number | null;
  signal: string | null;
  durationMs: number | null;
  peakMemoryBytes: number | null;
  memoryMethod: string | null;
}

export interface NewSample {
  name: string;
  value: number;
  source: 'run' | 'evaluate';
  host: string;
  gpuModel: string | null;
}

export interface MeasurementRecord {
  metric: number;
  secondary: Record<string, number>;
  constraintChecks: ConstraintCheck[];
  metricLines: number | null;
  samples: NewSample[];
  /** The case-by-case results the metric step printed, if it printed any. */
  cases?: CaseTrial[] | null;
}

export interface DecisionRecord {
  decision: Decision;
  reason: string;
  forced?: boolean;
  completedAfterRestart?: boolean;
}

/** One GPU sample of a running step: its processes' memory and its GPUs' utilization, as nvidia-smi reported them. */
export interface NewGpuSample {
  experimentId: number;
  phase: 'run' | 'evaluate';
  utilizationPercent: number | null;
  memoryMib: number | null;
  deviceMemoryMib: number | null;
  processes: number;
}
