// A separate process that takes a lease and holds it until it is killed: the server a SIGKILL takes down mid-run.
// Usage: tsx lease-holder.ts <ledger path> <experiment id> <resource>...
import { Ledger } from '../../../src/core/ledger.js';
import { Leases } from '../../../src/core/pool/leases.js';

const [path, experiment, ...resources] = process.argv.slice(2);
const ledger = new Ledger(path!);
const grant = new Leases(ledger.db).acquire({ experimentId: Number(experiment), resources, count: 1 });
process.stdout.write(`${JSON.stringify(grant.ok ? { held: grant.leases.map((l) => l.resource) } : { busy: grant.busy.map((l) => l.resource) })}\n`);
// Held until killed; a test that dies first closes stdin, and the holder goes with it.
process.stdin.on('end', () => process.exit(0)).resume();
