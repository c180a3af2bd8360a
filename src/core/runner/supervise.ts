// Supervisor entry point, run detached as `node supervise.js <specPath>`: one per run, so the run outlives a dying server.
import { readSpec, Supervisor } from './supervisor.js';

// stdout is /dev/null and stderr the run's supervisor.log: only a failure of the supervisor itself is ever written.
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
