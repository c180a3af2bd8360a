// Runs nvidia-smi under a hard deadline and says, in one sentence, why an answer is missing or incomplete.
import { spawn } from 'node:child_process';

export interface SmiOptions {
  /** The nvidia-smi binary; tests point this at a fake that replays real output. */
  nvidiaSmi?: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
}

export interface SmiAnswer {
  stdout: string;
  stderr: string;
  /** Why there is no clean answer: not installed, hung, or a non-zero exit (with what it said); null when it exited 0. */
  failure: string | null;
}

const DEFAULT_TIMEOUT_MS = 10_000;
/** Far more than any real host prints; stops a misbehaving binary from filling memory. */
const MAX_OUTPUT_BYTES = 1024 * 1024;

/**
 * Asks nvidia-smi once. Never throws: a missing binary, a dead driver, a non-zero exit or a hang (nvidia-smi can
 * block for minutes in the kernel when the driver is wedged) all come back as `failure`, with any output it gave.
 */
export async function runNvidiaSmi(args: string[], opts: SmiOptions = {}): Promise<SmiAnswer> {
  const command = opts.nvidiaSmi ?? 'nvidia-smi';
  const result = await runBounded(command, args, opts.env ?? process.env, opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  if (result.kind === 'spawn_error') {
    const failure =
      result.code === 'ENOENT'
        ? `${command} not found: no NVIDIA driver is installed, or it is not on PATH.`
        : `${command} could not be started (${result.code ?? 'error'}): ${result.message}`;
    return { stdout: '', stderr: '', failure };
  }
  if (result.kind === 'timeout') {
    return { stdout: '', stderr: '', failure: `${command} did not answer within ${result.timeoutMs} ms; the NVIDIA driver may be hung.` };
  }
  if (result.exitCode === 0) return { stdout: result.stdout, stderr: result.stderr, failure: null };
  const said = firstLines(result.stderr) || firstLines(result.stdout);
  const how = result.exitCode === null ? `was killed by ${result.signal}` : `exited with code ${result.exitCode}`;
  return { stdout: result.stdout, stderr: result.stderr, failure: `${command} ${how}${said ? `: ${said}` : ''}` };
}

/** The first few non-empty lines, joined: enough of a message to act on, never a wall of text. */
export function firstLines(text: string): string {
  const lines = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter(Boolean);
  return lines.slice(0, 3).join(' ').slice(0, 500);
}

type BoundedResult =
  | { kind: 'exited'; exitCode: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }
  | { kind: 'spawn_error'; code: string | undefined; message: string }
  | { kind: 'timeout'; timeoutMs: number };

/**
 * Runs a command with a hard deadline that does not depend on the process dying: a process stuck in
 * the kernel ignores even SIGKILL until the driver lets go, so at the deadline the process group is
 * killed and the answer is "timeout" at once, without waiting for exit or for the pipes to close.
 */
function runBounded(command: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<BoundedResult> {
  return new Promise((resolve) => {
    let settled = false;
    const settle = (r: BoundedResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(r);
    };
    let child: ReturnType<typeof spawn>;
    try {
      // Own process group, so the deadline can kill anything it started too.
      child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      resolve({ kind: 'spawn_error', code: e.code, message: e.message });
      return;
    }
    const timer = setTimeout(() => {
      killGroup(child);
      child.stdout?.destroy();
      child.stderr?.destroy();
      child.unref();
      settle({ kind: 'timeout', timeoutMs });
    }, timeoutMs);

    const out = collect(child.stdout, () => killGroup(child));
    const err = collect(child.stderr, () => killGroup(child));
    child.on('error', (e: NodeJS.ErrnoException) => settle({ kind: 'spawn_error', code: e.code, message: e.message }));
    child.on('close', (exitCode, signal) => settle({ kind: 'exited', exitCode, signal, stdout: out(), stderr: err() }));
  });
}

function collect(stream: NodeJS.ReadableStream | null, onOverflow: () => void): () => string {
  const chunks: Buffer[] = [];
  let size = 0;
  stream?.on('data', (chunk: Buffer) => {
    if (size >= MAX_OUTPUT_BYTES) return;
    chunks.push(chunk);
    size += chunk.length;
    if (size >= MAX_OUTPUT_BYTES) onOverflow();
  });
  return () => Buffer.concat(chunks).subarray(0, MAX_OUTPUT_BYTES).toString('utf8');
}

function killGroup(child: ReturnType<typeof spawn>): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
}
