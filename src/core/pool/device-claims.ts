// Claims on GPUs across the whole machine. The ledger's leases coordinate the servers of one repo, but servers of two
// repos share no ledger: each device a server leases is also claimed by an abstract Unix socket named after its UUID,
// which every process on the host sees and the kernel frees when the holder dies.
import { createHash } from 'node:crypto';
import type { Server } from 'node:net';
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
