// notify.command: each event as JSON on the command's stdin, run beside the loop, killed after 10 s; a failure is only logged.
import { spawn } from 'node:child_process';
import type { Logger } from 'pino';
import type { Config, NOTIFY_EVENTS } from './config.js';

export type NotifyEvent = (typeof NOTIFY_EVENTS)[number];

export const NOTIFY_TIMEOUT_MS = 10_000;
/** Enough of a failing notifier's stderr to say why in the log. */
const STDERR_TAIL = 2048;

export interface NotifyPayload {
  event: NotifyEvent;
  tag: string;
  /** One line a person reads on a phone or a desktop notification. */
  summary: string;
  [detail: string]: unknown;
}

export interface NotifyOutcome {
  ok: boolean;
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  /** Why it could not be started at all. */
  error: string | null;
  stderr: string;
}

/**
 * Runs the command once with the payload on stdin. It gets its own process group, so a timeout kills
 * whatever it started too; stdout is discarded, because the server's stdout belongs to MCP.
 */
export function runNotifyCommand(command: string, payload: NotifyPayload, opts: { cwd: string; timeoutMs?: number }): Promise<NotifyOutcome> {
  return new Promise((resolve) => {
    let stderr = '';
    let settled = false;
    const done = (outcome: Omit<NotifyOutcome, 'stderr' | 'ok'>) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ ...outcome, ok: outcome.exitCode === 0 && !outcome.timedOut && !outcome.error, stderr: stderr.slice(-STDERR_TAIL) });
    };
    const child = spawn('/bin/sh', ['-c', command], {
      cwd: opts.cwd,
      detached: true,
      stdio: ['pipe', 'ignore', 'pipe'],
      env: { ...process.env, RATCHET_EVENT: payload.event, RATCHET_SUMMARY: payload.summary },
    });
    const timer = setTimeout(() => {
      try {
        if (child.pid) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
      done({ exitCode: null, signal: 'SIGKILL', timedOut: true, error: null });
    }, opts.timeoutMs ?? NOTIFY_TIMEOUT_MS);
    child.on('error', (err) => done({ exitCode: null, signal: null, timedOut: false, error: err.message }));
    child.on('exit', (code, signal) => done({ exitCode: code, signal, timedOut: false, error: null }));
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString('utf8')).slice(-STDERR_TAIL);
    });
    // A notifier that never reads its stdin closes the pipe early: that is its business, not an error.
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(`${JSON.stringify(payload)}\n`);
  });
}

/** Sends events to the session's notify.command without ever holding up or failing the caller. */
export class Notifier {
  private readonly pending = new Set<Promise<void>>();

  constructor(
    private readonly log: Logger,
    private readonly cwd: string,
    private readonly timeoutMs = NOTIFY_TIMEOUT_MS,
  ) {}

  /** Starts the notifier for this event when the config asks for it, and returns at once. */
  send(config: Config, payload: NotifyPayload): void {
    const notify = config.notify;
    if (!notify || (notify.events && !notify.events.includes(payload.event))) return;
    this.track(
      runNotifyCommand(notify.command, payload, { cwd: this.cwd, timeoutMs: this.timeoutMs }).then((outcome) => {
        const { stderr, ok, ...how } = outcome;
        if (ok) this.log.info({ event: payload.event }, 'notify.command told');
        else this.log.warn({ event: payload.event, ...how, stderr }, 'notify.command failed; the loop goes on');
      }),
    );
  }

  /** Work that ends in notifications (an experiment followed to its end) is awaited by `settled` too. */
  track(work: Promise<unknown>): void {
    const p: Promise<void> = work
      .then(() => undefined)
      .catch((err: unknown) => this.log.warn({ err }, 'could not prepare a notification; the loop goes on'))
      .finally(() => this.pending.delete(p));
    this.pending.add(p);
  }

  /** Resolves once every notification started so far has ended (each within its timeout). */
  async settled(): Promise<void> {
    while (this.pending.size) await Promise.allSettled([...this.pending]);
  }
}
