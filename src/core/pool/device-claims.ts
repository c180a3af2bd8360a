// Claims on GPUs across the whole machine. The ledger's leases coordinate the servers of one repo, but servers of two
// repos share no ledger: each device a server leases is also claimed by an abstract Unix socket named after its UUID,
// which every process on the host sees and the kernel frees when the holder dies.
import { createHash } from 'node:crypto';
import type { Server } from 'node:net';
import type { Logger } from 'pino';
import { askHolder, listen, self, type LockHolder } from '../server-lock.js';

interface Claim {
  /** The ledger (repo) this process claimed the device for: another repo served by the same process is refused too. */
  owner: string;
  /** The listening socket, once bound; null when another process held the name. */
  ready: Promise<Server | null>;
}

/** This process's claims, by device UUID. */
const claims = new Map<string, Claim>();
/** Claims being given up: their socket's name is free once this settles, so a new claim waits for it. */
const closing = new Map<string, Promise<void>>();

/**
 * The socket of a device's claim. RATCHET_DEVICE_SCOPE keeps apart servers that must not see each other's claims
 * although their devices share UUIDs: the test suite's workers, each on the same recorded fake devices.
 */
const socketName = (uuid: string) => `\0ratchet-gpu-${createHash('sha256').update(`${process.env.RATCHET_DEVICE_SCOPE ?? ''}\0${uuid}`).digest('hex').slice(0, 40)}`;

/** Machine-wide claims exist only where abstract sockets do; elsewhere the ledger's leases alone hold (one repo per device set). */
export const machineWideClaims = process.platform === 'linux';

/**
 * Claims the device for `owner` (the repo's home); true when this process now holds it for that owner (it may have
 * already), false when another process, or another repo of this process, does.
 */
export async function claimDevice(uuid: string, owner: string): Promise<boolean> {
  if (!machineWideClaims) return true;
  await closing.get(uuid);
  const mine = claims.get(uuid);
  if (mine) return mine.owner === owner && (await mine.ready) !== null && claims.get(uuid) === mine;
  // Recorded before the await, so a second claim from this process waits for this one rather than racing it.
  const claim: Claim = { owner, ready: listen(socketName(uuid), { ...self(), repo: owner }).catch(() => null) };
  claims.set(uuid, claim);
  const server = await claim.ready;
  if (claims.get(uuid) !== claim) {
    server?.close(); // released while it was being taken
    return false;
  }
  if (!server) claims.delete(uuid);
  return server !== null;
}

/** Gives the device's claim up, if `owner` holds it in this process. */
export function releaseDevice(uuid: string, owner: string): void {
  const mine = claims.get(uuid);
  if (!mine || mine.owner !== owner) return;
  claims.delete(uuid);
  const closed = mine.ready.then((server) => new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve())));
  closing.set(uuid, closed);
  void closed.then(() => {
    if (closing.get(uuid) === closed) closing.delete(uuid);
  });
}

/** The devices this process holds for `owner`. */
export function claimedBy(owner: string): string[] {
  return [...claims].filter(([, c]) => c.owner === owner).map(([uuid]) => uuid);
}

/** Who holds the device's claim, asked without taking it: this process (for another repo), another process, or nobody. */
export async function deviceHolder(uuid: string): Promise<LockHolder | null> {
  if (!machineWideClaims) return null;
  const mine = claims.get(uuid);
  if (mine) return { ...self(), repo: mine.owner };
  return askHolder(socketName(uuid), '');
}

/**
 * One repo's claims in this process, kept in step with the leases its server holds: a device stays claimed while the
 * server leases it, or while a call is between claiming it and recording the lease (it is being taken).
 */
export class RepoClaims {
  /** Devices some call of this server is between claiming and leasing, with how many calls: not to be given up. */
  private readonly taking = new Map<string, number>();

  constructor(
    /** The repo's home: whose claims these are. */
    private readonly owner: string,
    /** UUIDs of the devices this process holds live leases on, from the ledger. */
    private readonly leasedHere: () => Set<string>,
    private readonly log: Logger,
  ) {}

  /** A device another call of this server is taking is as good as leased. */
  isTaking(uuid: string): boolean {
    return this.taking.has(uuid);
  }

  /**
   * Claims the first `count` of `devices` (in order of preference) that no other server holds. `tried` is every device
   * looked at; `elsewhere` those another server holds. The claimed ones are being taken until `leaseClaimed`.
   */
  async claimSome<D extends { uuid: string }>(devices: D[], count: number): Promise<{ claimed: D[]; tried: D[]; elsewhere: D[] }> {
    const claimed: D[] = [];
    const tried: D[] = [];
    const elsewhere: D[] = [];
    for (const d of devices) {
      if (claimed.length >= count) break;
      tried.push(d);
      if (await this.take(d.uuid)) claimed.push(d);
      else elsewhere.push(d);
    }
    return { claimed, tried, elsewhere };
  }

  /** Records leases on claimed devices; whatever comes of it, they are no longer being taken, and those not leased go. */
  leaseClaimed<T>(claimed: { uuid: string }[], record: () => T): T {
    try {
      return record();
    } finally {
      for (const d of claimed) this.doneTaking(d.uuid);
      this.settle();
    }
  }

  /**
   * Claims, in the background, the devices among `uuids` this server already leases: a run it adopted from a server
   * that died (whose claims died with it), or leases an experiment held from before.
   */
  claimLeased(uuids: string[], context: Record<string, unknown>): void {
    const leased = this.leasedHere();
    for (const uuid of uuids.filter((u) => leased.has(u))) {
      void this.take(uuid).then((ok) => {
        // The lease may have ended while the claim was being taken: settling then gives it up.
        if (ok) this.leaseClaimed([{ uuid }], () => undefined);
        else this.log.warn({ ...context, uuid }, 'another ratchet server claimed a device this server leases meanwhile');
      });
    }
  }

  /** The devices no other repo's server (nor another process) has claimed. */
  async notHeldElsewhere<D extends { uuid: string }>(devices: D[]): Promise<D[]> {
    const elsewhere = await Promise.all(
      devices.map(async (d) => {
        const h = await deviceHolder(d.uuid);
        return h !== null && !(h.pid === process.pid && h.repo === this.owner);
      }),
    );
    return devices.filter((_, i) => !elsewhere[i]);
  }

  /**
   * Gives up the claims on devices this server holds no live lease on (a run ended, a lease reclaimed), so other repos'
   * servers may take them; claims a call is still taking are left alone.
   */
  settle(): void {
    try {
      const leased = this.leasedHere();
      for (const uuid of claimedBy(this.owner)) if (!leased.has(uuid) && !this.taking.has(uuid)) releaseDevice(uuid, this.owner);
    } catch (err) {
      this.log.warn({ err }, 'could not settle the device claims');
    }
  }

  /** Lets go of every claim (the server closes; a later server re-claims what it adopts). */
  releaseAll(): void {
    for (const uuid of claimedBy(this.owner)) releaseDevice(uuid, this.owner);
  }

  /** Claims one device, marked as being taken; a claim that fails is no longer being taken. */
  private async take(uuid: string): Promise<boolean> {
    this.taking.set(uuid, (this.taking.get(uuid) ?? 0) + 1);
    const ok = await claimDevice(uuid, this.owner);
    if (!ok) this.doneTaking(uuid);
    return ok;
  }

  private doneTaking(uuid: string): void {
    const n = (this.taking.get(uuid) ?? 1) - 1;
    if (n > 0) this.taking.set(uuid, n);
    else this.taking.delete(uuid);
  }
}
