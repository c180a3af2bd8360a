// Where the child's output goes: stdout and stderr to the log; with stdoutPath, stdout alone to that file too. Both capped.
import { closeSync, fstatSync, ftruncateSync, mkdirSync, openSync, writeSync } from 'node:fs';
import type { ChildProcess, StdioOptions } from 'node:child_process';
import { dirname } from 'node:path';

export class ChildOutput {
  private logFd: number | null = null;
  private stdoutFd: number | null = null;
  private logBase = 0;
  private stdoutBytes = 0;
  private ended: Promise<void> = Promise.resolve();
  private detach: (() => void) | null = null;
  /** True once the output passed maxBytes: the rest is discarded and the run is stopped. */
  exceeded = false;

  constructor(
    private readonly logPath: string,
    private readonly stdoutPath: string | undefined,
    private readonly maxBytes: number,
  ) {}

  open(): void {
    mkdirSync(dirname(this.logPath), { recursive: true });
    this.logFd = openSync(this.logPath, 'a');
    this.logBase = fstatSync(this.logFd).size;
    if (this.stdoutPath === undefined) return;
    mkdirSync(dirname(this.stdoutPath), { recursive: true });
    this.stdoutFd = openSync(this.stdoutPath, 'w');
  }

  /** Without stdoutPath the child writes the log itself, by fd; with it, stdout comes through a pipe the supervisor splits. */
  stdio(): StdioOptions {
    return ['ignore', this.stdoutFd === null ? this.logFd! : 'pipe', this.logFd!];
  }

  attach(child: ChildProcess): void {
    const stdout = child.stdout;
    if (!stdout) return;
    stdout.on('data', (chunk: Buffer) => this.tee(chunk));
    this.ended = new Promise((resolve) => {
      stdout.once('close', () => resolve());
      stdout.once('error', () => resolve());
    });
    this.detach = () => stdout.destroy();
  }

  /** Cuts the log back to the cap (stderr is written by the child itself, so it is checked at every look). */
  cap(): boolean {
    if (this.logFd === null) return this.exceeded;
    const cap = this.logBase + this.maxBytes;
    if (fstatSync(this.logFd).size > cap) {
      ftruncateSync(this.logFd, cap);
      this.exceeded = true;
    }
    return this.exceeded;
  }

  /** Waits until stdout's pipe is closed (every writer is dead), for at most timeoutMs, so no late line is lost. */
  async drain(timeoutMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.ended, new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
    clearTimeout(timer);
    this.detach?.();
  }

  close(): void {
    if (this.logFd !== null) {
      this.cap();
      if (this.exceeded) {
        writeSync(this.logFd, `\n[ratchet] output exceeded maxLogBytes (${this.maxBytes} bytes): the run was stopped and the rest discarded\n`);
      }
      closeSync(this.logFd);
    }
    if (this.stdoutFd !== null) closeSync(this.stdoutFd);
    this.logFd = this.stdoutFd = null;
  }

  private tee(chunk: Buffer): void {
    if (this.exceeded || this.logFd === null) return;
    writeSync(this.logFd, chunk);
    if (this.stdoutFd === null) return;
    const room = this.maxBytes - this.stdoutBytes;
    const part = chunk.length > room ? chunk.subarray(0, Math.max(0, room)) : chunk;
    if (part.length > 0) writeSync(this.stdoutFd, part);
    this.stdoutBytes += part.length;
    if (part.length < chunk.length) this.exceeded = true;
  }
}
