// pino to stderr and .ratchet/server.log: stdout belongs to the MCP protocol and is never written here.
import pino, { type Logger } from 'pino';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

export type { Logger };

export function createLogger(opts: { file?: string; level?: string; stderr?: boolean } = {}): Logger {
  const level = opts.level ?? process.env.RATCHET_LOG_LEVEL ?? 'info';
  const streams: pino.StreamEntry[] = [];
  if (opts.stderr !== false) streams.push({ level: level as pino.Level, stream: pino.destination({ dest: 2, sync: true }) });
  if (opts.file) {
    mkdirSync(dirname(opts.file), { recursive: true });
    streams.push({ level: level as pino.Level, stream: pino.destination({ dest: opts.file, sync: true, mkdir: true }) });
  }
  return pino({ level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }, pino.multistream(streams));
}

/** For tests and library callers that want no output at all. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
