// The environment of every step, sandboxed or not: a sanitized PATH, tool roots, caches in cacheDir, the config's env, the token.
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TOKEN_ENV } from './run-spec.js';

/** ratchet's own bin folder (src/ and dist/ sit at the same depth), first on every step's PATH so a step can call `ratchet eval`. */
export const RATCHET_BIN = fileURLToPath(new URL('../../../bin', import.meta.url));

/** Where each tool's cache or home goes inside the step's cacheDir: persistent, writable, away from ratchet's state. */
export const CACHE_LOCATIONS: Record<string, string> = {
  HOME: 'home',
  XDG_CACHE_HOME: 'xdg',
  PIP_CACHE_DIR: 'pip',
  UV_CACHE_DIR: 'uv',
  HF_HOME: 'huggingface',
  TORCHINDUCTOR_CACHE_DIR: 'torchinductor',
  TRITON_CACHE_DIR: 'triton',
};

const KEPT = ['LANG', 'LC_ALL', 'TERM', 'USER', 'LOGNAME'];
// Interpreters and toolchains installed for the user: without these a step finds a different python, or none.
const TOOL_ROOTS = [
  'PYENV_ROOT', 'PYENV_VERSION', 'VIRTUAL_ENV', 'CONDA_PREFIX', 'CONDA_DEFAULT_ENV', 'CONDA_EXE', 'CONDA_PYTHON_EXE', 'CONDA_SHLVL',
  'CARGO_HOME', 'RUSTUP_HOME', 'RUSTUP_TOOLCHAIN', 'GOROOT', 'JAVA_HOME', 'CUDA_HOME', 'CUDA_PATH', 'LD_LIBRARY_PATH',
];
// Roots that default to a folder under HOME: pinned to the user's real HOME, which the step's HOME no longer is.
const HOME_DEFAULTS: Record<string, string> = { PYENV_ROOT: '.pyenv', CARGO_HOME: '.cargo', RUSTUP_HOME: '.rustup', PYTHONUSERBASE: '.local' };
// Lists of directories where an empty or relative entry means "the current directory", which the run controls.
const SEARCH_PATHS = ['PATH', 'LD_LIBRARY_PATH'];

export interface StepEnvInput {
  token: string;
  env: Record<string, string>;
  cacheDir: string;
  hidden: string[];
}

/** Built from the server's environment (`server`) by allow-list: nothing else of it reaches the step. */
export function stepEnv(step: StepEnvInput, server: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const env: Record<string, string> = {};
  for (const key of [...KEPT, ...TOOL_ROOTS]) {
    const value = server[key];
    if (value !== undefined && value !== '') env[key] = value;
  }
  const realHome = server.HOME || homedir();
  for (const [key, dir] of Object.entries(HOME_DEFAULTS)) {
    if (env[key] === undefined && existsSync(join(realHome, dir))) env[key] = join(realHome, dir);
  }
  // A root inside a hidden path (the agent's tree) is invisible in the sandbox, and the run's to poison without one.
  for (const key of Object.keys(env)) {
    if (!KEPT.includes(key) && !SEARCH_PATHS.includes(key) && insideAny(env[key]!, step.hidden)) delete env[key];
  }
  env.PATH = server.PATH ?? '/usr/local/bin:/usr/bin:/bin';
  for (const [key, dir] of Object.entries(CACHE_LOCATIONS)) env[key] = join(step.cacheDir, dir);
  env.TMPDIR = '/tmp';
  Object.assign(env, step.env);
  for (const key of SEARCH_PATHS) {
    if (env[key] === undefined) continue;
    env[key] = sanitizeSearchPath(env[key], step.hidden);
    if (env[key] === '' && key !== 'PATH') delete env[key];
  }
  // After the sanitizing: ratchet's folder may sit in the repo's node_modules, which the sandbox shows again read-only.
  env.PATH = env.PATH ? `${RATCHET_BIN}:${env.PATH}` : RATCHET_BIN;
  env.RATCHET_NODE = process.execPath;
  env[TOKEN_ENV] = step.token;
  return env;
}

/** Keeps absolute entries only, outside the hidden paths, each once. */
export function sanitizeSearchPath(value: string, hidden: string[]): string {
  const kept: string[] = [];
  for (const dir of value.split(':')) {
    if (dir === '' || !isAbsolute(dir) || insideAny(dir, hidden) || kept.includes(dir)) continue;
    kept.push(dir);
  }
  return kept.join(':');
}

export function insideAny(path: string, roots: string[]): boolean {
  return roots.some((root) => path === root || path.startsWith(root.endsWith('/') ? root : `${root}/`));
}
