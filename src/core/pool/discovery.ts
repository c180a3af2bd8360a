// The devices runs may lease: whole GPUs and MIG instances from nvidia-smi, narrowed by gpu.pool and the server's CUDA_VISIBLE_DEVICES.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { listGpus, type Gpu } from '../gpu.js';
import { runNvidiaSmi, type SmiOptions } from './nvidia-smi.js';

/** A leasable device. A MIG instance keeps its GPU's index and has its own UUID; its memory and utilization are not known. */
export interface Device extends Gpu {
  kind: 'gpu' | 'mig';
  /** The GPU's own UUID: the device's itself for a whole GPU, the parent's for a MIG instance. */
  gpuUuid: string;
  /** "Device N" under its GPU in `nvidia-smi -L`; null for a whole GPU. */
  migDevice: number | null;
}

export interface MigInstance {
  uuid: string;
  /** The profile, e.g. "1g.10gb". */
  profile: string;
  device: number;
}

/** A device named in gpu.pool or CUDA_VISIBLE_DEVICES: an nvidia-smi index, or a GPU-/MIG- UUID (or the start of one). */
export type DeviceId = number | string;

export interface Discovery {
  devices: Device[];
  /** Every GPU nvidia-smi listed, before narrowing. */
  gpus: Gpu[];
  /** Why the listing is incomplete or absent, as listGpus says. */
  error: string | null;
  /** What narrowed the pool, in words: e.g. "CUDA_VISIBLE_DEVICES=2,3 (set for the server)". */
  narrowedBy: string[];
}

export interface DiscoverOptions extends SmiOptions {
  /** gpu.pool: "all" (or absent) for every device, else the devices runs may lease. */
  pool?: 'all' | DeviceId[];
  /** CUDA_VISIBLE_DEVICES as set for the server (undefined: not set). */
  visible?: string;
}

export const LIST_ARGS = ['-L'] as const;

/**
 * Every device in the pool. A GPU with MIG instances stands for them (CUDA cannot use it whole in MIG mode); a failed
 * `nvidia-smi -L` only hides MIG instances, the GPU listing still decides what exists.
 */
export async function discoverDevices(opts: DiscoverOptions = {}): Promise<Discovery> {
  const [listing, tree] = await Promise.all([listGpus(opts), runNvidiaSmi([...LIST_ARGS], opts)]);
  const migs = tree.failure ? new Map<string, MigInstance[]>() : parseGpuList(tree.stdout);
  let devices = listing.gpus.flatMap((g) => devicesOf(g, migs.get(g.uuid) ?? []));
  const narrowedBy: string[] = [];
  // A device nvidia-smi reads as failing is not leased to anyone.
  for (const g of listing.gpus.filter((g) => g.fault)) narrowedBy.push(`GPU ${g.index} reading ${g.fault}`);
  devices = devices.filter((d) => !d.fault);
  const visible = parseVisibleDevices(opts.visible);
  if (visible) {
    devices = devices.filter((d) => visible.some((id) => matches(d, id)));
    narrowedBy.push(`CUDA_VISIBLE_DEVICES=${opts.visible} (set for the server)`);
  }
  if (opts.pool && opts.pool !== 'all') {
    const pool = opts.pool;
    devices = devices.filter((d) => pool.some((id) => matches(d, id)));
    narrowedBy.push(`gpu.pool ${JSON.stringify(pool)}`);
  }
  return { devices, gpus: listing.gpus, error: listing.error, narrowedBy };
}

/** `nvidia-smi -L`: "GPU 0: <name> (UUID: GPU-…)" lines, each followed by "  MIG <profile> Device N: (UUID: MIG-…)" lines. */
export function parseGpuList(stdout: string): Map<string, MigInstance[]> {
  const migs = new Map<string, MigInstance[]>();
  let gpu: string | null = null;
  for (const line of stdout.split(/\r?\n/)) {
    const g = /^GPU\s+\d+:.*\(UUID:\s*(GPU-[^)\s]+)\)/.exec(line);
    if (g) {
      gpu = g[1]!;
      continue;
    }
    // Drivers before R470 named instances "MIG-GPU-<gpu uuid>/<gi>/<ci>"; both forms are one token up to the ")".
    const m = /^\s+MIG\s+(\S+)\s+Device\s+(\d+):\s*\(UUID:\s*(MIG-[^)\s]+)\)/.exec(line);
    if (m && gpu) migs.set(gpu, [...(migs.get(gpu) ?? []), { profile: m[1]!, device: Number(m[2]), uuid: m[3]! }]);
  }
  return migs;
}

/**
 * CUDA_VISIBLE_DEVICES as CUDA reads it: a comma-separated list of indices and UUIDs, read up to the first entry it
 * cannot parse (so "-1" or "" leaves no device). null when the variable is not set: no restriction.
 */
export function parseVisibleDevices(value: string | undefined): DeviceId[] | null {
  if (value === undefined) return null;
  const ids: DeviceId[] = [];
  for (const raw of value.split(',')) {
    const entry = raw.trim();
    if (/^\d+$/.test(entry)) ids.push(Number(entry));
    else if (/^(GPU|MIG)-[A-Za-z0-9/-]+$/.test(entry)) ids.push(entry);
    else break;
  }
  return ids;
}

/**
 * An index names a GPU (and its MIG instances), read as nvidia-smi's PCI bus order; a UUID, or a unique start of one as
 * CUDA accepts, names a GPU (and its instances) or one MIG instance.
 */
function matches(d: Device, id: DeviceId): boolean {
  if (typeof id === 'number') return d.index === id;
  return id.startsWith('MIG-') ? d.uuid.startsWith(id) : d.gpuUuid.startsWith(id);
}

function devicesOf(g: Gpu, instances: MigInstance[]): Device[] {
  if (!instances.length) return [{ ...g, kind: 'gpu', gpuUuid: g.uuid, migDevice: null }];
  return [...instances]
    .sort((a, b) => a.device - b.device)
    .map((m) => ({
      index: g.index,
      uuid: m.uuid,
      name: `${g.name} MIG ${m.profile}`,
      memoryTotalMiB: 0,
      memoryUsedMiB: 0,
      memoryKnown: false,
      utilizationPercent: null,
      ...(g.fault ? { fault: g.fault } : {}),
      kind: 'mig' as const,
      gpuUuid: g.uuid,
      migDevice: m.device,
    }));
}

export const NVIDIA_PROC_GPUS = '/proc/driver/nvidia/gpus';

/**
 * The device nodes of these devices' GPUs. The node's number is the driver's minor number, which need not be the
 * nvidia-smi index: it is read from the driver's information file for the GPU's UUID, and the index is the fallback.
 */
export function deviceNodes(devices: Pick<Device, 'gpuUuid' | 'index'>[], procGpus = NVIDIA_PROC_GPUS): string[] {
  const minors = minorsByUuid(procGpus);
  const nodes = devices.map((d) => `/dev/nvidia${minors.get(d.gpuUuid) ?? d.index}`);
  return [...new Set(nodes)];
}

function minorsByUuid(procGpus: string): Map<string, number> {
  const minors = new Map<string, number>();
  let entries: string[];
  try {
    entries = readdirSync(procGpus);
  } catch {
    return minors; // no NVIDIA driver here, or /proc is not Linux's
  }
  for (const entry of entries) {
    let text: string;
    try {
      text = readFileSync(join(procGpus, entry, 'information'), 'utf8');
    } catch {
      continue;
    }
    const uuid = /^GPU UUID:\s*(\S+)/m.exec(text)?.[1];
    const minor = /^Device Minor:\s*(\d+)/m.exec(text)?.[1];
    if (uuid && minor !== undefined) minors.set(uuid, Number(minor));
  }
  return minors;
}
