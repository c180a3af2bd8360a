// Supervisor entry point, run detached, so a run outlives a dying server.
// `supervise.js <specPath>` supervises one run and exits. `supervise.js --spare <padding>` is started ahead of need and
// takes spec paths on stdin, one line a run, one run at a time: a run does not wait for Node to start (over 100 ms on a
// loaded machine), and the server does not fork itself for every run. It exits when the server closes its stdin or
// after MAX_RUNS runs, so a slow leak in one supervisor cannot grow over a whole night.
// Imports node builtins only (no zod, nothing heavy): its start-up is part of the overhead.
import { appendFileSync, readFileSync } from 'node:fs';
import { proveCgroupParents } from './cgroup.js';
import { readSpec, Supervisor } from './supervisor.js';
import { supervisorLogPathFor, SUPERVISOR_MAX_RUNS as MAX_RUNS, TOKEN_ENV } from './run-spec.js';

// stdout is the pipe to the server (channel.ts); stderr, or the run's supervisor.log once known, takes the supervisor's own failures.
let errorLog: string | null = null;
let current: Supervisor | null = null;

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

/** Supervises one run to its end; a spec that cannot be read is a failure of this supervisor, so it exits. */
async function supervise(specPath: string, spare: boolean): Promise<void> {
  try {
    const spec = readSpec(specPath);
    errorLog = supervisorLogPathFor(spec.resultPath);
    if (spare) carryToken(spec.token);
    current = new Supervisor(spec);
  } catch (err) {
    fail(`cannot start from run spec ${specPath}: ${(err as Error).message}`);
  }
  try {
    await current.run();
  } catch (err) {
    fail((err as Error).stack ?? (err as Error).message);
  }
  current = null;
  errorLog = null;
}

function handleSignals(): void {
  // Between runs a spare has nothing to stop: TERM ends it.
  const stop = (): void => (current ? current.cancel() : process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.on('SIGHUP', () => {}); // a session leader without a terminal; a stray HUP must not orphan the run
  process.on('uncaughtException', (err) => {
    try {
      current?.abortSync(err);
    } finally {
      fail(err.stack ?? err.message);
    }
  });
}

/**
 * A spare was started before its token existed, so the token is not in its environment, where
 * liveness checks and sweeps look for it. It goes into the process title (/proc/<pid>/cmdline),
 * which the padding argument made long enough, and is checked there. Between runs the title
 * carries no token, so a late cancel or sweep of the previous run cannot reach the next one.
 */
function carryToken(token: string): void {
  process.title = `${process.argv[1]} ${TOKEN_ENV}=${token}`;
  if (!readFileSync('/proc/self/cmdline', 'latin1').includes(`${TOKEN_ENV}=${token}`)) throw new Error('the process title cannot hold the run token');
}

function serveSpare(): void {
  const idleTitle = `${process.argv[1]} --spare`;
  const lines: string[] = [];
  let buffered = '';
  let busy = false;
  let served = 0;
  let closed = false;
  const next = (): void => {
    if (busy) return;
    const specPath = lines.shift();
    if (specPath === undefined) {
      if (closed || served >= MAX_RUNS) process.exit(0);
      return;
    }
    busy = true;
    served++;
    void supervise(specPath, true).then(() => {
      process.title = idleTitle;
      busy = false;
      // The server sends no more after the last run this supervisor takes (see runner.ts).
      if (served >= MAX_RUNS) process.exit(0);
      next();
    });
  };
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (chunk: string) => {
    buffered += chunk;
    for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
      lines.push(buffered.slice(0, nl));
      buffered = buffered.slice(nl + 1);
    }
    next();
  });
  // The server went away (or closed the pool): the run under way finishes and records its result, then the spare exits.
  const end = (): void => {
    closed = true;
    next();
  };
  process.stdin.on('end', end);
  process.stdin.on('error', end);
  // While it waits, it proves the cgroup parents its runs' groups will go under (two throwaway probes).
  setImmediate(() => {
    try {
      proveCgroupParents();
    } catch {
      // the run itself will find out, and fall back or refuse as its containment says
    }
  });
}

handleSignals();
if (process.argv[2] === '--spare') {
  serveSpare();
} else {
  const specPath = process.argv[2];
  if (!specPath) fail('usage: supervise.js <specPath> | supervise.js --spare <padding>');
  void supervise(specPath, false).then(() => process.exit(0));
}
