// GPU discovery through nvidia-smi, choosing GPUs for a run, and the environment that pins a run to them.
import { spawn } from 'node:child_process';
import { RatchetError } from './errors.js';

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

const DEFAULT_TIMEOUT_MS = 10_000;
/** Far more than any real host prints; stops a misbehaving binary from filling memory. */
const MAX_OUTPUT_BYTES = 1024 * 1024;
/** Sampled utilization at or below this counts as idle: monitoring agents and display servers leave a few percent. */
const IDLE_UTILIZATION_PERCENT = 5;

/**
 * Asks nvidia-smi for every GPU. Never throws: a missing binary, a dead driver, a non-zero exit or a
 * hang (nvidia-smi can block for minutes in the kernel when the driver is wedged) all come back as `error`.
 */
export async function listGpus(opts: { nvidiaSmi?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<GpuListing> {
  const command = opts.nvidiaSmi ?? 'nvidia-smi';
  const result = await runBounded(command, [...NVIDIA_SMI_ARGS], opts.env ?? process.env, opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  if (result.kind === 'spawn_error') {
    const error =
      result.code === 'ENOENT'
        ? `${command} not found: no NVIDIA driver is installed, or it is not on PATH.`
        : `${command} could not be started (${result.code ?? 'error'}): ${result.message}`;
    return { gpus: [], error };
  }
  if (result.kind === 'timeout') {
    return { gpus: [], error: `${command} did not answer within ${result.timeoutMs} ms; the NVIDIA driver may be hung.` };
  }

  const { gpus, unreadable } = parseGpuCsv(result.stdout);
  const said = firstLines(result.stderr) || firstLines(result.stdout);
  if (result.exitCode !== 0) {
    const how = result.exitCode === null ? `was killed by ${result.signal}` : `exited with code ${result.exitCode}`;
    return { gpus, error: `${command} ${how}${said ? `: ${said}` : ''}` };
  }
  if (unreadable.length) return { gpus, error: `${command} printed rows that are not GPUs: ${unreadable.slice(0, 3).join(' | ')}` };
  if (result.stderr.trim()) return { gpus, error: `${command} warned: ${firstLines(result.stderr)}` };
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
  const ranked = [...free].sort((a, b) => idleRank(a) - idleRank(b) || freeMiB(b) - freeMiB(a) || a.index - b.index);
  return ranked
    .slice(0, count)
    .map((g) => g.index)
    .sort((a, b) => a - b);
}

export function cudaVisibleDevices(indices: number[]): string {
  for (const i of indices) {
    if (!Number.isInteger(i) || i < 0) {
      throw new RatchetError('invalid_argument', `Not a GPU index: ${i}.`, 'Pass indices as reported by nvidia-smi (0, 1, ...).');
    }
  }
  return indices.join(',');
}

/**
 * The variables that give a run exactly these GPUs. CUDA numbers devices fastest-first by default,
 * nvidia-smi by PCI bus; without PCI_BUS_ID order, index 1 can mean a different card on a mixed host.
 */
export function gpuEnv(indices: number[]): { CUDA_VISIBLE_DEVICES: string; CUDA_DEVICE_ORDER: 'PCI_BUS_ID' } {
  return { CUDA_VISIBLE_DEVICES: cudaVisibleDevices(indices), CUDA_DEVICE_ORDER: 'PCI_BUS_ID' };
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
  return {
    index: Number(indexField),
    uuid,
    name,
    memoryTotalMiB: memoryKnown ? total : 0,
    memoryUsedMiB: memoryKnown ? used : 0,
    memoryKnown,
    utilizationPercent: util,
  };
}

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

function firstLines(text: string): string {
  const lines = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter(Boolean);
  return lines.slice(0, 3).join(' ').slice(0, 500);
}

type BoundedResult =
  | { kind: 'exited'; exitCode: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }
  | { kind: 'spawn_error'; code: string | undefined; message: string }
  | { kind: 'timeout'; timeoutMs: number };

/**
 * Runs a command with a hard deadline that does not depend on the process dying: a process stuck in
 * the kernel ignores even SIGKILL until the driver lets go, so at the deadline the process group is
 * killed and the answer is "timeout" at once, without waiting for exit or for the pipes to close.
 */
function runBounded(command: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<BoundedResult> {
  return new Promise((resolve) => {
    let settled = false;
    const settle = (r: BoundedResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(r);
    };
    let child: ReturnType<typeof spawn>;
    try {
      // Own process group, so the deadline can kill anything it started too.
      child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      resolve({ kind: 'spawn_error', code: e.code, message: e.message });
      return;
    }
    const timer = setTimeout(() => {
      killGroup(child);
      child.stdout?.destroy();
      child.stderr?.destroy();
      child.unref();
      settle({ kind: 'timeout', timeoutMs });
    }, timeoutMs);

    const out = collect(child.stdout, () => killGroup(child));
    const err = collect(child.stderr, () => killGroup(child));
    child.on('error', (e: NodeJS.ErrnoException) => settle({ kind: 'spawn_error', code: e.code, message: e.message }));
    child.on('close', (exitCode, signal) => settle({ kind: 'exited', exitCode, signal, stdout: out(), stderr: err() }));
  });
}

function collect(stream: NodeJS.ReadableStream | null, onOverflow: () => void): () => string {
  const chunks: Buffer[] = [];
  let size = 0;
  stream?.on('data', (chunk: Buffer) => {
    if (size >= MAX_OUTPUT_BYTES) return;
    chunks.push(chunk);
    size += chunk.length;
    if (size >= MAX_OUTPUT_BYTES) onOverflow();
  });
  return () => Buffer.concat(chunks).subarray(0, MAX_OUTPUT_BYTES).toString('utf8');
}

function killGroup(child: ReturnType<typeof spawn>): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
}
