// GPU figures of a step while it runs (its processes' memory, its GPUs' utilization), and the device fault that ends it.
import { listGpus, type Gpu, type GpuListing } from '../gpu.js';
import { carriesToken, readStat } from '../runner/process-tree.js';
import { LIST_ARGS, parseGpuList, type MigInstance } from './discovery.js';
import { runNvidiaSmi, type SmiAnswer, type SmiOptions } from './nvidia-smi.js';

export const COMPUTE_APPS_ARGS = ['--query-compute-apps=pid,used_memory', '--format=csv,noheader,nounits'] as const;

/** Failed looks in a row before a device counts as gone: one slow answer from a busy driver must not end a day-long run. */
export const FAULT_STRIKES = 2;

export interface ComputeApp {
  pid: number;
  /** null when nvidia-smi cannot say ("[N/A]", as on some MIG setups and in containers). */
  usedMiB: number | null;
}

export interface GpuFigures {
  /** Mean utilization of the step's whole GPUs; null for MIG instances and cards that do not report it. */
  utilizationPercent: number | null;
  /** Memory nvidia-smi lists for the step's own processes; null when it lists none of them. */
  memoryMib: number | null;
  /** Memory in use on the step's whole GPUs, whoever uses it: the figure when the step's processes are not listed. */
  deviceMemoryMib: number | null;
  processes: number;
}

export interface SampledGpu {
  /** The leased device's UUID: a GPU's, or a MIG instance's (whose GPU is found through `nvidia-smi -L`). */
  uuid: string;
  index: number;
}

export interface SamplerOptions extends SmiOptions {
  gpus: SampledGpu[];
  /** The step's run token: a process carrying it, or descended from one that does, is the step's. */
  token: string;
  intervalMs: number;
  record: (figures: GpuFigures) => void;
  /** Called once, when a GPU of the step has failed FAULT_STRIKES looks in a row; says what happened and what to do. */
  onFault: (reason: string) => void;
}

/** Looks every intervalMs; a look never overlaps the previous one, and nothing is recorded after stop(). */
export class GpuSampler {
  private timer: NodeJS.Timeout | null = null;
  private inFlight: Promise<void> | null = null;
  private stopped = false;
  private strikes = 0;
  private faulted = false;

  constructor(private readonly opts: SamplerOptions) {}

  start(): void {
    this.timer = setInterval(() => {
      if (!this.inFlight && !this.stopped) this.inFlight = this.sample().finally(() => (this.inFlight = null));
    }, this.opts.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.inFlight;
  }

  /** One look: a fault strike, or one recorded sample. */
  async sample(): Promise<void> {
    const mig = this.opts.gpus.some(isMig);
    const [listing, apps, tree] = await Promise.all([listGpus(this.opts), listComputeApps(this.opts), mig ? runNvidiaSmi([...LIST_ARGS], this.opts) : null]);
    if (this.stopped || this.faulted) return;
    const fault = faultOf(listing, this.opts.gpus, tree);
    if (fault) {
      if (++this.strikes < FAULT_STRIKES) return;
      this.faulted = true;
      this.opts.onFault(fault);
      return;
    }
    this.strikes = 0;
    this.opts.record(figuresOf(listing.gpus, apps, this.opts.gpus, (pid) => belongsToRun(pid, this.opts.token)));
  }
}

/** `--query-compute-apps=pid,used_memory`: one "pid, MiB" row per process using a GPU; null when the query failed. */
export async function listComputeApps(opts: SmiOptions = {}): Promise<ComputeApp[] | null> {
  const answer = await runNvidiaSmi([...COMPUTE_APPS_ARGS], opts);
  if (answer.failure) return null;
  return parseComputeApps(answer.stdout);
}

export function parseComputeApps(stdout: string): ComputeApp[] {
  const apps: ComputeApp[] = [];
  for (const line of stdout.split(/\r?\n/)) {
    const m = /^\s*(\d+)\s*,\s*(.+?)\s*$/.exec(line);
    if (!m) continue;
    const used = /^(\d+(?:\.\d+)?)\s*(?:MiB)?$/.exec(m[2]!);
    apps.push({ pid: Number(m[1]), usedMiB: used ? Number(used[1]) : null });
  }
  return apps;
}

/** What is wrong with the step's devices in this listing (and `nvidia-smi -L` for MIG instances), or null when each is fine. */
export function faultOf(listing: GpuListing, gpus: SampledGpu[], tree: SmiAnswer | null = null): string | null {
  const instances = tree && !tree.failure ? parseGpuList(tree.stdout) : new Map<string, MigInstance[]>();
  for (const g of gpus) {
    let gpuUuid = g.uuid;
    if (isMig(g)) {
      const parent = [...instances].find(([, list]) => list.some((m) => m.uuid === g.uuid))?.[0];
      if (!parent) {
        const said = tree?.failure ? `: ${tree.failure}` : '';
        return `MIG instance ${g.uuid} on GPU ${g.index} disappeared from \`nvidia-smi -L\` during the run${said}. Check \`nvidia-smi -L\` and the kernel log (\`dmesg | grep -i xid\`) on the host before running on it again.`;
      }
      gpuUuid = parent;
    }
    const row = listing.gpus.find((r) => r.uuid === gpuUuid);
    const name = `GPU ${g.index} (${gpuUuid})`;
    if (!row) {
      const said = listing.error ? `: ${listing.error}` : '';
      return `${name} disappeared from nvidia-smi's listing during the run${said}. It may have fallen off the bus or hit a fatal Xid; check \`nvidia-smi\` and the kernel log (\`dmesg | grep -i xid\`) on the host, and reset the GPU or reboot before running on it again.`;
    }
    if (row.fault) {
      return `${name} failed during the run: nvidia-smi reads it as ${row.fault}. Check the kernel log (\`dmesg | grep -i xid\`) on the host, and reset the GPU (\`nvidia-smi -r\`) or reboot before running on it again.`;
    }
  }
  return null;
}

export function figuresOf(gpus: Gpu[], apps: ComputeApp[] | null, sampled: SampledGpu[], belongs: (pid: number) => boolean): GpuFigures {
  const whole = sampled.filter((g) => !isMig(g)).flatMap((g) => gpus.filter((r) => r.uuid === g.uuid));
  const utilizations = whole.map((g) => g.utilizationPercent).filter((u): u is number => u !== null);
  const known = whole.filter((g) => g.memoryKnown);
  const mine = (apps ?? []).filter((a) => belongs(a.pid));
  const measured = mine.map((a) => a.usedMiB).filter((m): m is number => m !== null);
  return {
    utilizationPercent: utilizations.length ? utilizations.reduce((a, b) => a + b, 0) / utilizations.length : null,
    memoryMib: measured.length ? measured.reduce((a, b) => a + b, 0) : null,
    deviceMemoryMib: known.length ? known.reduce((a, g) => a + g.memoryUsedMiB, 0) : null,
    processes: mine.length,
  };
}

const isMig = (g: SampledGpu) => g.uuid.startsWith('MIG-');

const MAX_ANCESTRY = 64;

/** A process of the step: it carries the token, or an ancestor does (a child may have cleared its environment). */
export function belongsToRun(pid: number, token: string): boolean {
  let current = pid;
  for (let depth = 0; depth < MAX_ANCESTRY && current > 1; depth++) {
    if (carriesToken(current, token)) return true;
    const stat = readStat(current);
    if (!stat) return false;
    current = stat.ppid;
  }
  return false;
}
