// The README's "Use it on your own project", run as written with the real Claude Code and Codex CLIs (offline): install,
// `ratchet init`, the plugin from this checkout's marketplace, `claude mcp add`, `.mcp.json`, the Codex TOML and `ratchet codex-loop`.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readmeSection } from '../helpers/readme.js';
import { MAX_WAIT_SECONDS } from '../../src/core/loop.js';
import { installClients } from '../hooks/clients.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const FAKE_CODEX = fileURLToPath(new URL('../hooks/fake-codex.mjs', import.meta.url));
// Installing copies the plugin's folder, this checkout with its node_modules, into Claude Code's cache: about 30 s on 2 busy cores.
const PLUGIN_TIMEOUT_MS = 240_000;

const section = readmeSection('Use it on your own project');
const blocks = (lang: string) => [...section.matchAll(new RegExp('```' + lang + '\\n([\\s\\S]*?)```', 'g'))].map((m) => m[1]!);
/** Every command line of the section's sh blocks; each test marks the ones it ran, and the last test checks none was left out. */
const commands = blocks('sh').flatMap((b) => b.split('\n').map((l) => l.trim()).filter(Boolean));
const ran = new Set<string>();
function readmeCommand(prefix: string): string {
  const line = commands.find((c) => c.startsWith(prefix));
  expect(line, `the README's "Use it on your own project" lost its \`${prefix}\` command`).toBeDefined();
  ran.add(line!);
  return line!;
}

let tmp: string;
let project: string;
let env: NodeJS.ProcessEnv;
let clients: { claude: string; codex: string } | null = null;

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'ratchet-clients-'));
  clients = installClients();
  // The README's install line (npm test has already run `npm ci` and the build), with npm's global prefix in a temporary folder.
  expect(readmeCommand('npm ci')).toBe('npm ci && npm run build && npm link');
  const prefix = join(tmp, 'prefix');
  mkdirSync(prefix);
  execFileSync('npm', ['link'], { cwd: ROOT, env: { ...process.env, npm_config_prefix: prefix }, stdio: 'pipe' });
  project = join(tmp, 'project');
  mkdirSync(project);
  const git = (...args: string[]) => execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@t', ...args], { cwd: project, stdio: 'pipe' });
  git('init', '-q', '-b', 'main');
  writeFileSync(join(project, 'train.py'), 'print("score: 1")\n');
  git('add', '-A');
  git('commit', '-q', '-m', 'init');
  env = { ...process.env, PATH: `${join(prefix, 'bin')}:${process.env.PATH}`, HOME: join(tmp, 'home'), CODEX_HOME: join(tmp, 'codex'), CLAUDE_PROJECT_DIR: '' };
  mkdirSync(env.HOME!);
  mkdirSync(env.CODEX_HOME!);
  run('sh', ['-c', readmeCommand('ratchet init')]);
}, 300_000);

afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function run(file: string, args: string[], extraEnv: NodeJS.ProcessEnv = {}, cwd = project): string {
  return execFileSync(file, args, { cwd, env: { ...env, ...extraEnv }, stdio: 'pipe', timeout: 200_000 }).toString();
}

describe('the README client setup, as a new user runs it', () => {
  it('`npm link` puts a working `ratchet` on PATH, and `ratchet init` wrote a config that status accepts', () => {
    expect(JSON.parse(readFileSync(join(project, 'ratchet.json'), 'utf8')).metric).toBeDefined();
    const status = JSON.parse(run('ratchet', ['status', '--json'])) as { config: { valid: boolean }; next: string };
    expect(status.config.valid).toBe(true);
    expect(run('ratchet', ['status'])).toContain('Next: Call start_session');
  });

  it('Claude Code plugin: the marketplace from this checkout, installed for the project, connects the server and brings the skill and both hooks', (ctx) => {
    if (!clients) return ctx.skip();
    const home = { HOME: join(tmp, 'plugin-home') };
    mkdirSync(home.HOME);
    const add = readmeCommand('claude plugin marketplace add');
    expect(add).toBe('claude plugin marketplace add /path/to/ratchet');
    run(clients.claude, [...add.split(' ').slice(1, -1), ROOT], home);
    const install = readmeCommand('claude plugin install');
    expect(install).toBe('claude plugin install ratchet@ratchet --scope project');
    run(clients.claude, install.split(' ').slice(1), home);
    expect(JSON.parse(readFileSync(join(project, '.claude', 'settings.json'), 'utf8')).enabledPlugins).toEqual({ 'ratchet@ratchet': true });
    expect(run(clients.claude, ['mcp', 'list'], home)).toMatch(/plugin:ratchet:ratchet: .*hooks\/ratchet\.sh serve - .*Connected/);
    const details = run(clients.claude, ['plugin', 'details', 'ratchet@ratchet'], home);
    expect(details).toMatch(/Skills \(1\)\s+ratchet/);
    expect(details).toMatch(/Hooks \(2\)\s+Stop, SessionStart/);
    rmSync(join(project, '.claude'), { recursive: true });
  }, PLUGIN_TIMEOUT_MS);

  it('Claude Code plugin: the plain `claude plugin install ratchet@ratchet` (user scope) works in any project', (ctx) => {
    if (!clients) return ctx.skip();
    const home = { HOME: join(tmp, 'plugin-user-home') };
    mkdirSync(home.HOME);
    run(clients.claude, ['plugin', 'marketplace', 'add', ROOT], home);
    run(clients.claude, ['plugin', 'install', 'ratchet@ratchet'], home);
    expect(run(clients.claude, ['mcp', 'list'], home)).toMatch(/plugin:ratchet:ratchet: .*Connected/);
  }, PLUGIN_TIMEOUT_MS);

  it('Claude Code: the README\'s `claude mcp add` line, then `claude mcp list` connects to the server', (ctx) => {
    if (!clients) return ctx.skip();
    const add = readmeCommand('claude mcp add');
    expect(add).toBe('claude mcp add ratchet -- ratchet serve');
    run(clients.claude, add.split(' ').slice(1));
    expect(run(clients.claude, ['mcp', 'list'])).toMatch(/ratchet: ratchet serve - .*Connected/);
  });

  it('Claude Code: the README\'s .mcp.json is read as the ratchet server with its --repo', (ctx) => {
    if (!clients) return ctx.skip();
    run(clients.claude, ['mcp', 'remove', 'ratchet']);
    writeFileSync(join(project, '.mcp.json'), blocks('json')[0]!);
    expect(run(clients.claude, ['mcp', 'list'])).toContain('ratchet: ratchet serve --repo ${CLAUDE_PROJECT_DIR:-.}');
    rmSync(join(project, '.mcp.json'));
  });

  it('Codex: the README\'s TOML is read with its command and working directory, and its tool timeout outlasts the longest wait', (ctx) => {
    const toml = blocks('toml')[0]!;
    expect(Number(/tool_timeout_sec = (\d+)/.exec(toml)?.[1])).toBeGreaterThan(MAX_WAIT_SECONDS + 10);
    if (!clients) return ctx.skip();
    writeFileSync(join(env.CODEX_HOME!, 'config.toml'), toml.replace('/path/to/your/repo', project));
    const shown = run(clients.codex, ['mcp', 'get', 'ratchet']);
    expect(shown).toMatch(/command: ratchet/);
    expect(shown).toMatch(/args: serve/);
    expect(shown).toContain(`cwd: ${project}`);
    expect(run(clients.codex, ['mcp', 'list'])).toMatch(/ratchet\s+ratchet\s+serve/);
  });

  it('Codex: the README\'s `ratchet codex-loop` runs `codex exec` in the repo with the state (a fake codex: no model API here)', () => {
    const bin = join(tmp, 'fake-bin');
    mkdirSync(bin);
    writeFileSync(join(bin, 'codex'), `#!/bin/sh\nexec "${process.execPath}" "${FAKE_CODEX}" "$@"\n`);
    chmodSync(join(bin, 'codex'), 0o755);
    const log = join(tmp, 'codex-calls.jsonl');
    const line = readmeCommand('ratchet codex-loop');
    const r = spawnSync('sh', ['-c', line], { cwd: project, encoding: 'utf8', timeout: 120_000, env: { ...env, PATH: `${bin}:${env.PATH}`, FAKE_CODEX_LOG: log, FAKE_CODEX_MODE: 'idle' } });
    // The idle fake starts no session, so the loop stops after its first turn and says why.
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('no ratchet session is active after the last turn');
    const calls = readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as string[]);
    expect(calls).toHaveLength(1);
    expect(calls[0]!.slice(0, 5)).toEqual(['exec', '--cd', project, '--sandbox', 'workspace-write']);
    expect(calls[0]![5]).toContain('call status, then start_session');
  });

  it('every command in the section\'s sh blocks was run above', (ctx) => {
    if (!clients) return ctx.skip();
    expect(commands.filter((c) => !ran.has(c))).toEqual([]);
  });
});
