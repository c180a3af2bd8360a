// `ratchet stop [--cancel]`: the user ends the session from a terminal, beside a running server or without one.
import { ResearchLoop } from './core/loop.js';
import { reportingFailure } from './cli-failure.js';
import { createLogger } from './log.js';

export async function runStop(repo: string, opts: { cancel: boolean }): Promise<number> {
  // No server lock is taken: a running server sees the stop in the ledger on its next call.
  const loop = new ResearchLoop({ repo, logger: createLogger({ stderr: false }) });
  return reportingFailure(async () => {
    const stopped = await loop.stopSession({ cancel: opts.cancel, by: 'cli' });
    const lines = [`${stopped.alreadyStopped ? 'Already stopped' : 'Stopped'}: ${stopped.finished.reason}.`];
    if (stopped.cancelled) {
      lines.push(stopped.cancelled.state === 'running' ? `Experiment ${stopped.cancelled.id} was asked to stop; the running server records it as cancelled.` : `Experiment ${stopped.cancelled.id} was cancelled.`);
    }
    if (stopped.running) lines.push(`Experiment ${stopped.running.id} runs to its end; the agent can still keep or revert it (or run \`ratchet stop --cancel\`).`);
    // The session_end notification is awaited (at most its 10 s timeout), so it is not cut off when this process exits.
    await loop.settle();
    process.stdout.write(`${lines.join('\n')}\n`);
    return 0;
  }, () => loop.close());
}

/** `ratchet close`: ends the session for good (stopped first if needed), so the agent can start the next one. */
export async function runClose(repo: string): Promise<number> {
  const loop = new ResearchLoop({ repo, logger: createLogger({ stderr: false }) });
  return reportingFailure(async () => {
    const closed = await loop.closeSession();
    process.stdout.write(`Closed session ${closed.tag} (${closed.reason}). The agent can start the next one with start_session.\n`);
    return 0;
  }, () => loop.close());
}
