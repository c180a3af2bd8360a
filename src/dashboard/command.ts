// `ratchet dashboard`: serves the live page until Ctrl-C, and says on stderr where to open it.
import { createLogger } from '../log.js';
import { DEFAULT_PORT, isLoopback, startDashboard } from './server.js';

export async function runDashboard(repo: string, opts: { port?: string; host?: string }): Promise<number> {
  const port = opts.port === undefined ? DEFAULT_PORT : Number(opts.port);
  if (!/^\d+$/.test(opts.port ?? String(DEFAULT_PORT)) || !Number.isInteger(port) || port > 65535) {
    process.stderr.write(`ratchet: --port must be a whole number from 0 to 65535 (0 picks a free port), not "${opts.port}".\n`);
    return 2;
  }
  const host = opts.host ?? '127.0.0.1';
  const logger = createLogger({ level: process.env.RATCHET_LOG_LEVEL ?? 'warn' });
  let dashboard;
  try {
    dashboard = await startDashboard({ repo, host, port, logger });
  } catch (err) {
    process.stderr.write(`ratchet: ${(err as Error).message}\n`);
    return 1;
  }
  if (!isLoopback(host)) {
    process.stderr.write(`ratchet: the dashboard listens on ${host}, beyond this machine: anyone who can reach it and has the URL below can read this repo's experiments, diffs and logs. It answers only requests carrying the token.\n`);
  }
  process.stderr.write(`ratchet dashboard for ${repo}: ${dashboard.url}\n(read-only; Ctrl-C to stop)\n`);
  const stop = () => {
    void dashboard.close().finally(() => process.exit(0));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  return new Promise<number>(() => {}); // serves until a signal stops it
}
