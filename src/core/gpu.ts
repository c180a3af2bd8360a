// GPU discovery through nvidia-smi, choosing GPUs for a run, and the environment that pins a run to them.
import { RatchetError } from './errors.js';
import type { GpuAssignment } from './ledger.js';
import { firstLines, runNvidiaSmi, type SmiOptions } from './pool/nvidia-smi.js';

export interface Gpu {
  /** nvidia-smi's index: PCI bus order, which CUDA only follows with CUDA_DEVICE_ORDER=PCI_BUS_ID (see gpuEnv). */
  index: number;
  uuid: string;
  name: string;
  /** 0 when nvidia-smi reports no figure (unified-memory parts such as GB10); see memoryKnown. */
  memoryTotalMiB: number;
  memoryUsedMiB: number;
  /** False when total or used memory came back as "[N/A]" or similar. */
  memoryKnown: boolean;
  /** null when nvidia-smi cannot say (MIG mode, "[Not Supported]" on older GeForce cards). */
  utilizationPercent: number | null;
  /** Set when a field reads as a failing device ("[GPU requires reset]", "[Unknown Error]", "[GPU is lost]"). */
  fault?: string;
}

export interface GpuListing {
  /** Every row nvidia-smi reported cleanly, even when `error` is set (one lost GPU does not hide the others). */
  gpus: Gpu[];
  /** Why the answer is incomplete or absent: not installed, driver down, timed out, a row it could not read. */
  error: string | null;
}

export const NVIDIA_SMI_ARGS = [
  '--query-gpu=index,uuid,name,memory.total,memory.used,utilization.gpu',
  '--format=csv,noheader,nounits',
] as const;

/** Sampled utilization at or below this counts as idle: monitoring agents and display servers leave a few percent. */
const IDLE_UTILIZATION_PERCENT = 5;

/** Asks nvidia-smi for every GPU. Never throws: why the answer is missing or incomplete comes back as `error`. */
export async function listGpus(opts: SmiOptions = {}): Promise<GpuListing> {
  const command = opts.nvidiaSmi ?? 'nvidia-smi';
  const answer = await runNvidiaSmi([...NVIDIA_SMI_ARGS], opts);
  const { gpus, unreadable } = parseGpuCsv(answer.stdout);
  if (answer.failure) return { gpus, error: answer.failure };
  if (unreadable.length) return { gpus, error: `${command} printed rows that are not GPUs: ${unreadable.slice(0, 3).join(' | ')}` };
  if (answer.stderr.trim()) return { gpus, error: `${command} warned: ${firstLines(answer.stderr)}` };
  if (gpus.length === 0) return { gpus, error: `${command} listed no GPUs.` };
  return { gpus, error: null };
}

/** Rows of `--format=csv,noheader,nounits` output; lines that are not a GPU row (error messages) are returned apart. */
export function parseGpuCsv(stdout: string): { gpus: Gpu[]; unreadable: string[] } {
  const gpus: Gpu[] = [];
  const unreadable: string[] = [];
  for (const raw of stdout.split(/\r?\n/)) {
    const line = raw.trim();
    if (!line) continue;
    const gpu = parseGpuRow(line);
    if (gpu) gpus.push(gpu);
    else unreadable.push(line);
  }
  return { gpus, unreadable };
}

/**
 * `count` GPU indices for a run, skipping `busy` (given to runs already going): idle ones first,
 * then those with the most free memory. Returned in ascending order; null when too few are free.
 */
export function chooseGpus(gpus: Gpu[], count: number, busy: Set<number>): number[] | null {
  if (!Number.isInteger(count) || count < 1) {
    throw new RatchetError('invalid_argument', `GPU count must be a positive integer, got ${count}.`, 'Set gpu.perRun in ratchet.json to 1 or more.');
  }
  const seen = new Set<number>();
  const free = gpus.filter((g) => !busy.has(g.index) && !seen.has(g.index) && seen.add(g.index));
  if (free.length < count) return null;
  return rankGpus(free)
    .slice(0, count)
    .map((g) => g.index)
    .sort((a, b) => a - b);
}

/** Best first: idle, then unknown utilization, then loaded; among equals the most free memory, then nvidia-smi's order. */
export function rankGpus<T extends Gpu>(gpus: T[]): T[] {
  return gpus
    .map((g, at) => ({ g, at }))
    .sort((a, b) => idleRank(a.g) - idleRank(b.g) || freeMiB(b.g) - freeMiB(a.g) || a.g.index - b.g.index || a.at - b.at)
    .map(({ g }) => g);
}

/** CUDA_VISIBLE_DEVICES for these devices: nvidia-smi indices, or GPU-/MIG- UUIDs (a MIG instance can only be named so). */
export function cudaVisibleDevices(ids: (number | string)[]): string {
  for (const id of ids) {
    const ok = typeof id === 'number' ? Number.isInteger(id) && id >= 0 : /^(GPU|MIG)-[A-Za-z0-9/-]+$/.test(id);
    if (!ok) throw new RatchetError('invalid_argument', `Not a GPU index or UUID: ${id}.`, 'Pass indices as reported by nvidia-smi (0, 1, ...) or UUIDs from `nvidia-smi -L`.');
  }
  return ids.join(',');
}

/**
 * The variables that give a run exactly these GPUs. CUDA numbers devices fastest-first by default,
 * nvidia-smi by PCI bus; without PCI_BUS_ID order, index 1 can mean a different card on a mixed host.
 */
export function gpuEnv(ids: (number | string)[]): { CUDA_VISIBLE_DEVICES: string; CUDA_DEVICE_ORDER: 'PCI_BUS_ID' } {
  return { CUDA_VISIBLE_DEVICES: cudaVisibleDevices(ids), CUDA_DEVICE_ORDER: 'PCI_BUS_ID' };
}

/** The environment of a run holding `assignment`: indices for whole GPUs, UUIDs as soon as a MIG instance is among them. */
export function gpuEnvFor(assignment: GpuAssignment): ReturnType<typeof gpuEnv> {
  const uuids = assignment.uuids ?? [];
  return gpuEnv(uuids.length && uuids.some((u) => u.startsWith('MIG-')) ? uuids : assignment.indices);
}

function parseGpuRow(line: string): Gpu | null {
  const fields = line.split(',').map((f) => f.trim());
  if (fields.length < 6) return null;
  const [indexField, uuid] = fields;
  // Product names have no commas today; joining the middle keeps the numeric columns right if one ever does.
  const name = fields.slice(2, -3).join(', ');
  const [totalField, usedField, utilField] = fields.slice(-3);
  if (!indexField || !/^\d+$/.test(indexField) || !uuid || !name) return null;
  const total = reading(totalField);
  const used = reading(usedField);
  const util = reading(utilField);
  if (total === undefined || used === undefined || util === undefined) return null;
  const memoryKnown = total !== null && used !== null;
  const fault = [totalField, usedField, utilField].find((f) => f !== undefined && FAULT_READING.test(f));
  return {
    index: Number(indexField),
    uuid,
    name,
    memoryTotalMiB: memoryKnown ? total : 0,
    memoryUsedMiB: memoryKnown ? used : 0,
    memoryKnown,
    utilizationPercent: util,
    ...(fault ? { fault } : {}),
  };
}

/** Readings that mean the device itself is failing, not that the figure is unsupported. */
const FAULT_READING = /^\[(GPU requires reset|Unknown Error|GPU is lost)\]$/i;

/** A number; null for nvidia-smi's bracketed "[N/A]", "[Not Supported]", "[Unknown Error]" and friends; undefined for anything else. */
function reading(field: string | undefined): number | null | undefined {
  if (field === undefined) return undefined;
  if (/^\[.*\]$/.test(field) || field === 'N/A') return null;
  // Tolerate units in case a caller's nvidia-smi ignores "nounits".
  const m = /^(\d+(?:\.\d+)?)\s*(?:MiB|%)?$/.exec(field);
  return m ? Number(m[1]) : undefined;
}

function idleRank(g: Gpu): number {
  if (g.utilizationPercent === null) return 1;
  return g.utilizationPercent <= IDLE_UTILIZATION_PERCENT ? 0 : 2;
}

function freeMiB(g: Gpu): number {
  return g.memoryKnown ? g.memoryTotalMiB - g.memoryUsedMiB : -1;
}
