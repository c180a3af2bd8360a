// Supervisor entry point, run detached as `node supervise.js <specPath>`: one per run, so the run outlives a dying server.
// Imports node builtins only (no zod, nothing heavy): its start-up is part of every run's overhead.
import { readSpec, Supervisor } from './supervisor.js';

// stdout is the pipe to the server (channel.ts); stderr the run's supervisor.log, written only when the supervisor itself fails.
function fail(message: string): never {
  process.stderr.write(`ratchet supervisor: ${message}\n`);
  process.exit(1);
}

const specPath = process.argv[2];
if (!specPath) fail('usage: supervise.js <specPath>');

let supervisor: Supervisor;
try {
  supervisor = new Supervisor(readSpec(specPath));
} catch (err) {
  fail(`cannot read run spec ${specPath}: ${(err as Error).message}`);
}

process.on('SIGTERM', () => supervisor.cancel());
process.on('SIGINT', () => supervisor.cancel());
process.on('SIGHUP', () => {}); // a session leader without a terminal; a stray HUP must not orphan the run
process.on('uncaughtException', (err) => {
  try {
    supervisor.abortSync(err);
  } finally {
    fail(err.stack ?? err.message);
  }
});

supervisor.run().then(
  () => process.exit(0),
  (err: Error) => fail(err.stack ?? err.message),
);
