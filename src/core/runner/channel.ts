// The supervisor's pipe to the server that started it: one JSON line when the child runs, one when the result is written.
import { writeSync } from 'node:fs';
import type { RunResult, RunStarted } from './run-spec.js';

export type SupervisorMessage = { type: 'started'; started: RunStarted } | { type: 'done'; result: RunResult };

/**
 * Written to fd 1, which only the server holds: the child's stdio are other files, so the run cannot write here.
 * A dead server (EPIPE) or a supervisor started by hand (fd 1 a terminal) changes nothing: the result file is the record.
 */
export function announce(message: SupervisorMessage): void {
  try {
    writeSync(1, `${JSON.stringify(message)}\n`);
  } catch {
    // the server is gone; it reattaches through the result file
  }
}

/** Splits the pipe's bytes into messages; lines that are not a message are ignored. */
export function messageReader(onMessage: (message: SupervisorMessage) => void): (chunk: Buffer | string) => void {
  let pending = '';
  return (chunk) => {
    pending += chunk.toString();
    for (let nl = pending.indexOf('\n'); nl >= 0; nl = pending.indexOf('\n')) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      try {
        const message = JSON.parse(line) as SupervisorMessage;
        if (message?.type === 'started' || message?.type === 'done') onMessage(message);
      } catch {
        // not a message
      }
    }
  };
}
