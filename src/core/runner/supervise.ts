// Supervisor entry point, run detached: one per run, so the run outlives a dying server.
// `supervise.js <specPath>` starts at once; `supervise.js --spare <padding>` is started ahead of need and waits for its
// spec path on stdin, so a run does not wait for Node to start (over 100 ms on a loaded machine).
// Imports node builtins only (no zod, nothing heavy): its start-up is part of every run's overhead.
import { appendFileSync, readFileSync } from 'node:fs';
import { proveCgroupParents } from './cgroup.js';
import { readSpec, Supervisor } from './supervisor.js';
import { supervisorLogPathFor, TOKEN_ENV } from './run-spec.js';

// stdout is the pipe to the server (channel.ts); stderr, or the run's supervisor.log once known, takes the supervisor's own failures.
let errorLog: string | null = null;
function fail(message: string): never {
  const line = `ratchet supervisor: ${message}\n`;
  try {
    if (errorLog) appendFileSync(errorLog, line);
    else process.stderr.write(line);
  } catch {
    // nowhere left to say it; the server sees the exit
  }
  process.exit(1);
}

function begin(specPath: string, spare: boolean): void {
  let supervisor: Supervisor;
  try {
    const spec = readSpec(specPath);
    errorLog = supervisorLogPathFor(spec.resultPath);
    if (spare) carryToken(spec.token);
    supervisor = new Supervisor(spec);
  } catch (err) {
    fail(`cannot start from run spec ${specPath}: ${(err as Error).message}`);
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
}

/**
 * A spare was started before its token existed, so the token is not in its environment, where
 * liveness checks and sweeps look for it. It goes into the process title (/proc/<pid>/cmdline),
 * which the padding argument made long enough, and is checked there.
 */
function carryToken(token: string): void {
  process.title = `${process.argv[1]} ${TOKEN_ENV}=${token}`;
  if (!readFileSync('/proc/self/cmdline', 'latin1').includes(`${TOKEN_ENV}=${token}`)) throw new Error('the process title cannot hold the run token');
}

if (process.argv[2] === '--spare') {
  let buffered = '';
  let begun = false;
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (chunk: string) => {
    buffered += chunk;
    const newline = buffered.indexOf('\n');
    if (newline < 0 || begun) return;
    begun = true;
    process.stdin.destroy();
    begin(buffered.slice(0, newline), true);
  });
  // While it waits, it proves the cgroup parents its run's groups will go under (two throwaway probes).
  setImmediate(() => {
    try {
      proveCgroupParents();
    } catch {
      // the run itself will find out, and fall back or refuse as its containment says
    }
  });
  // The server went away (or closed the pool) before handing over a run: nothing to supervise.
  process.stdin.on('end', () => begun || process.exit(0));
  process.stdin.on('error', () => begun || process.exit(0));
} else {
  const specPath = process.argv[2];
  if (!specPath) fail('usage: supervise.js <specPath> | supervise.js --spare <padding>');
  begin(specPath, false);
}
