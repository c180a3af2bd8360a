// The one git runner: each call a single hardened process, so no hook, filter, fsmonitor or attribute driver from the repo ever runs.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { RatchetError } from '../errors.js';

/**
 * Passed before every subcommand. Each closes a way for code the agent or a run wrote into the repo
 * (.git/config, .git/hooks, .gitattributes, .git/info/attributes) to run inside ratchet's git calls,
 * or to change what ratchet reads from the object store.
 */
export const HARDENING = [
  '--no-pager',
  '--no-replace-objects',
  '-c', 'core.hooksPath=/dev/null',
  '-c', 'core.fsmonitor=false',
  '-c', 'core.untrackedCache=false',
  '-c', 'core.attributesFile=/dev/null',
  '-c', 'core.splitIndex=false',
  '-c', 'core.commitGraph=false',
  '-c', 'core.multiPackIndex=false',
  '-c', 'core.pager=cat',
  '-c', 'core.quotepath=off',
  '-c', 'commit.gpgSign=false',
  '-c', 'tag.gpgSign=false',
  '-c', 'gc.auto=0',
  '-c', 'maintenance.auto=false',
  '-c', 'protocol.allow=never',
  '-c', 'credential.helper=',
];

/** Inherited variables kept: the user's identity and global config. Every other GIT_* could aim git elsewhere or trace to a file. */
const KEPT_GIT_VARS = new Set(['GIT_CONFIG_GLOBAL', 'GIT_AUTHOR_NAME', 'GIT_AUTHOR_EMAIL', 'GIT_COMMITTER_NAME', 'GIT_COMMITTER_EMAIL']);

export interface GitOptions {
  /** Extra variables, e.g. GIT_INDEX_FILE for a throwaway index. */
  env?: Record<string, string>;
  input?: string | Buffer;
  /** Resolve with the exit code instead of throwing on a non-zero exit. */
  allowFail?: boolean;
  /** Keep at most this much of stdout and stop git once past it (the result's `truncated` says so): output the caller only shows in part. */
  maxStdoutBytes?: number;
}

export interface GitResult {
  code: number;
  stdout: Buffer;
  stderr: string;
  /** stdout went past maxStdoutBytes: it holds the first bytes only, and git was stopped. */
  truncated?: boolean;
}

/** A tree entry: mode as git writes it, and the object id. */
export interface TreeEntry {
  mode: string;
  oid: string;
}

export function gitEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('GIT_') || KEPT_GIT_VARS.has(key)) env[key] = value;
  }
  Object.assign(env, {
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_ATTR_NOSYSTEM: '1',
    GIT_TERMINAL_PROMPT: '0',
    GIT_PAGER: 'cat',
    GIT_OPTIONAL_LOCKS: '0',
    GIT_NO_REPLACE_OBJECTS: '1',
    GIT_PROTOCOL_FROM_USER: '0',
  });
  return { ...env, ...extra };
}

/** The one git runner: a single hardened process per call, no shell, no pause after it exits. */
export function runGit(repo: string, args: string[], opts: GitOptions = {}): Promise<GitResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn('git', [...HARDENING, ...args], { cwd: repo, env: gitEnv(opts.env), stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let kept = 0;
    let truncated = false;
    child.stdout.on('data', (c: Buffer) => {
      if (truncated) return;
      out.push(c);
      kept += c.length;
      if (opts.maxStdoutBytes !== undefined && kept > opts.maxStdoutBytes) {
        truncated = true;
        child.kill('SIGKILL');
      }
    });
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.on('error', (e) => reject(spawnFailure(repo, e)));
    child.on('close', (code) => {
      const stdout = Buffer.concat(out);
      if (truncated) return resolvePromise({ code: 0, stdout: stdout.subarray(0, opts.maxStdoutBytes), stderr: Buffer.concat(err).toString('utf8'), truncated });
      const result = { code: code ?? 128, stdout, stderr: Buffer.concat(err).toString('utf8') };
      if (result.code !== 0 && !opts.allowFail) reject(gitFailure(repo, args, result));
      else resolvePromise(result);
    });
    // A git that exits before reading all its input closes the pipe; its exit code says what happened.
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
  });
}

/** spawn reports a missing working directory as a missing git: tell the two apart. */
function spawnFailure(repo: string, e: Error): RatchetError {
  if (!existsSync(repo)) return new RatchetError('git_state', `The repository directory ${repo} does not exist.`, 'Point ratchet at an existing repository with --repo.');
  return new RatchetError('git_state', `Could not run git: ${e.message}`, 'Install git and make sure it is on PATH, then call the tool again.');
}

export function gitFailure(repo: string, args: string[], result: GitResult): RatchetError {
  return new RatchetError(
    'git_state',
    `git ${args[0]} failed in ${repo}: ${result.stderr.trim() || `exit code ${result.code}`}`,
    'Check that the repo is a healthy git work tree (`git status` there), then call the tool again.',
    { args, exitCode: result.code },
  );
}

/** C-quotes a path for a line-based git input when it needs it (a control character, a quote or a backslash). */
export function quotePath(path: string): string {
  if (!/[\x00-\x1f\x7f"\\]/.test(path)) return path;
  const escaped = path.replace(/[\x00-\x1f\x7f"\\]/g, (c) => (c === '"' || c === '\\' ? `\\${c}` : `\\${c.charCodeAt(0).toString(8).padStart(3, '0')}`));
  return `"${escaped}"`;
}
