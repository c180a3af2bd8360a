// The child's argv (shell string or argv, joining the run cgroup before it can fork), the checks before spawning it, its exit.
import { accessSync, constants, statSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { delimiter, isAbsolute, join, resolve } from 'node:path';

export function commandArgv(command: string | string[]): string[] {
  return typeof command === 'string' ? ['/bin/sh', '-c', command] : command;
}

// Runs as the child itself: joins each cgroup, then execs the command, so nothing it forks is ever outside.
// A failed join cannot happen after the supervisor's probe; if it does, the run fails loudly rather than run uncontained.
const JOIN_SCRIPT =
  'while [ "$#" -gt 0 ] && [ "$1" != -- ]; do ' +
  '{ echo $$ > "$1"; } 2>/dev/null || { echo "ratchet: cannot join cgroup $1" >&2; exit 125; }; shift; ' +
  'done; shift; exec "$@"';

export function joinCgroupArgv(procsFiles: string[], argv: string[]): string[] {
  return ['/bin/sh', '-c', JOIN_SCRIPT, 'ratchet-join', ...procsFiles, '--', ...argv];
}

const SIGNAL_NAMES = new Map(Object.entries(osConstants.signals).map(([name, number]) => [number, name as NodeJS.Signals]));

/**
 * bwrap reports a command killed by signal N as exit code 128 + N, like a shell; read back as that signal, so a run
 * stopped at its budget reads the same in and out of the sandbox. (A command that itself exits 128 + N reads the same.)
 */
export function sandboxExit(code: number | null, signal: NodeJS.Signals | null): { code: number | null; signal: NodeJS.Signals | null } {
  const name = code !== null && code > 128 ? SIGNAL_NAMES.get(code - 128) : undefined;
  return name ? { code: null, signal: name } : { code, signal };
}

/** The sandbox binds inputs over the workspace, so its program may not exist on the host yet: only the cwd is checked. */
export function cwdProblem(cwd: string): string | null {
  return isDirectory(cwd) ? null : `working directory does not exist: ${cwd}`;
}

/** Why the command cannot start, checked up front so a typo reads as such rather than as exit 127 from a wrapper. */
export function spawnProblem(argv: string[], cwd: string, env: Record<string, string | undefined>): string | null {
  if (!isDirectory(cwd)) return `working directory does not exist: ${cwd}`;
  const program = argv[0];
  if (!program) return 'empty command';
  const candidates = program.includes('/')
    ? [resolve(cwd, program)]
    : (env.PATH ?? '/usr/local/bin:/usr/bin:/bin')
        .split(delimiter)
        .map((dir) => (isAbsolute(dir) ? join(dir, program) : resolve(cwd, dir || '.', program)));
  const files = candidates.filter(isFile);
  if (files.length === 0) return `command not found: ${program} (ENOENT)`;
  if (!files.some(isExecutable)) return `permission denied: ${program} is not executable (EACCES)`;
  return null;
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}
