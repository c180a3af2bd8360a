// The child's argv (shell string or argv, joining the run cgroup before it can fork) and the checks made before spawning it.
import { accessSync, constants, statSync } from 'node:fs';
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
