// Ref updates without a process each: one long-lived `update-ref --stdin`, one transaction per update, compare-and-swap included.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { RatchetError } from '../errors.js';
import { gitEnv, HARDENING } from './run.js';

export class RefWriter {
  private child: ChildProcessWithoutNullStreams | null = null;
  private output = '';
  private errors = '';
  private waiting: (() => void) | null = null;
  private exited = false;
  private queue: Promise<unknown> = Promise.resolve();

  /** `message`: the reflog entry written for each update (git's -m). */
  constructor(
    private readonly repo: string,
    private readonly message?: string,
  ) {}

  /** Points `ref` at `oid`; `old` undefined: whatever it was; null: only if it does not exist; else only if it is `old`. */
  update(ref: string, oid: string, old?: string | null): Promise<void> {
    const run = this.queue.then(() => this.transact(ref, oid, old));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private start(): ChildProcessWithoutNullStreams {
    const child = spawn('git', [...HARDENING, 'update-ref', ...(this.message ? ['-m', this.message] : []), '--stdin', '-z'], { cwd: this.repo, env: gitEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
    this.output = '';
    this.errors = '';
    this.exited = false;
    const wake = () => this.waiting?.();
    child.stdout.on('data', (c: Buffer) => {
      this.output += c.toString('utf8');
      wake();
    });
    child.stderr.on('data', (c: Buffer) => {
      this.errors += c.toString('utf8');
    });
    const gone = () => {
      this.exited = true;
      if (this.child === child) this.child = null;
      wake();
    };
    child.on('close', gone);
    child.on('error', gone);
    child.stdin.on('error', () => {});
    hold(child, false);
    return child;
  }

  private async transact(ref: string, oid: string, old: string | null | undefined): Promise<void> {
    if (/[\0\n]/.test(ref) || !/^[0-9a-f]{40,64}$/.test(oid)) throw new RatchetError('invalid_argument', `Cannot point ${JSON.stringify(ref)} at ${JSON.stringify(oid)}.`, 'Pass a ref name and a full object id.');
    const child = (this.child ??= this.start());
    const expected = old === undefined ? '' : old === null ? '0'.repeat(oid.length) : old;
    hold(child, true);
    try {
      child.stdin.write(`start\0update ${ref}\0${oid}\0${expected}\0prepare\0commit\0`);
      // A failed transaction ends the process with "fatal: …"; the next update starts a new one.
      while (!/commit: ok\n/.test(this.output) && !this.exited) await new Promise<void>((resolve) => (this.waiting = resolve));
      this.waiting = null;
      if (!/commit: ok\n/.test(this.output)) {
        const why = this.errors.trim() || 'git update-ref exited';
        this.child = null;
        throw new RatchetError('git_state', `git update-ref failed in ${this.repo}: ${why}`, 'Check that the repo is a healthy git work tree (`git status` there), then call the tool again.', { ref });
      }
      this.output = '';
    } finally {
      hold(child, false);
    }
  }

  close(): void {
    this.child?.stdin.end();
    this.child = null;
  }
}

/** An idle process must not keep a CLI or a test alive; one with an update in flight must, or its answer is never read. */
export function hold(child: ChildProcessWithoutNullStreams, busy: boolean): void {
  for (const handle of [child, child.stdin, child.stdout, child.stderr] as unknown as { ref?: () => void; unref?: () => void }[]) {
    if (busy) handle.ref?.();
    else handle.unref?.();
  }
}
