// The README's install and client setup, run as written with the real Claude Code and Codex CLIs (offline):
// `npm link` puts `ratchet` on PATH, `claude mcp add` + `claude mcp list` connects to it, `.mcp.json` and the Codex TOML parse.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
// Pinned so a client's new release cannot break the suite silently; bump on purpose.
const CLIENTS = ['@anthropic-ai/claude-code@2.1.197', '@openai/codex@0.171.0'];
// Outside the repo and kept between runs: the clients are large, and reinstalling them each run is slow.
const CLIENT_DIR = join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'ratchet-test-clients');

const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
const section = readme.slice(readme.indexOf('\n## Using it with your agent'), readme.indexOf('\n## ', readme.indexOf('\n## Using it with your agent') + 5));
const blocks = (lang: string) => [...section.matchAll(new RegExp('```' + lang + '\\n([\\s\\S]*?)```', 'g'))].map((m) => m[1]!);

let tmp: string;
let project: string;
let env: NodeJS.ProcessEnv;
let clients: { claude: string; codex: string } | null = null;

function installClients(): { claude: string; codex: string } | null {
  const bin = (name: string) => join(CLIENT_DIR, 'node_modules', '.bin', name);
  if (!existsSync(bin('claude')) || !existsSync(bin('codex'))) {
    mkdirSync(CLIENT_DIR, { recursive: true });
    const r = spawnSync('npm', ['install', '--prefix', CLIENT_DIR, '--no-audit', '--no-fund', '--no-save', ...CLIENTS], { stdio: 'pipe', timeout: 240_000 });
    if (r.status !== 0) {
      process.stderr.write(`clients.test: could not install ${CLIENTS.join(', ')} from the npm registry, so the client setup tests are skipped:\n${r.stderr.toString().slice(-500)}\n`);
      return null;
    }
  }
  return { claude: bin('claude'), codex: bin('codex') };
}

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'ratchet-clients-'));
  clients = installClients();
  // The README's install line, with npm's global prefix pointed at a temporary folder so this machine's is untouched.
  const install = blocks('sh')[0]!.trim();
  expect(install).toBe('npm ci && npm run build && npm link');
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
  execFileSync(join(prefix, 'bin', 'ratchet'), ['init', '--repo', project], { stdio: 'pipe' });
  env = { ...process.env, PATH: `${join(prefix, 'bin')}:${process.env.PATH}`, HOME: join(tmp, 'home'), CODEX_HOME: join(tmp, 'codex'), CLAUDE_PROJECT_DIR: '' };
  mkdirSync(env.HOME!);
  mkdirSync(env.CODEX_HOME!);
}, 300_000);

afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function run(file: string, args: string[]): string {
  return execFileSync(file, args, { cwd: project, env, stdio: 'pipe', timeout: 90_000 }).toString();
}

describe('the README client setup, as a new user runs it', () => {
  it('`npm link` puts a working `ratchet` on PATH, and `ratchet init` wrote a config', () => {
    const status = JSON.parse(run('ratchet', ['status'])) as { config: { valid: boolean }; next: string };
    expect(status.config.valid).toBe(true);
    expect(status.next).toContain('start_session');
    expect(JSON.parse(readFileSync(join(project, 'ratchet.json'), 'utf8')).metric).toBeDefined();
  });

  it('Claude Code: the README\'s `claude mcp add` line, then `claude mcp list` connects to the server', (ctx) => {
    if (!clients) return ctx.skip();
    const add = blocks('sh')[1]!.trim();
    expect(add).toBe('claude mcp add ratchet -- ratchet serve');
    run(clients.claude, add.split(' ').slice(1));
    const listed = run(clients.claude, ['mcp', 'list']);
    expect(listed).toMatch(/ratchet: ratchet serve - .*Connected/);
  });

  it('Claude Code: the README\'s .mcp.json is read as the ratchet server with its --repo', (ctx) => {
    if (!clients) return ctx.skip();
    run(clients.claude, ['mcp', 'remove', 'ratchet']);
    writeFileSync(join(project, '.mcp.json'), blocks('json')[0]!);
    expect(run(clients.claude, ['mcp', 'list'])).toContain('ratchet: ratchet serve --repo ${CLAUDE_PROJECT_DIR:-.}');
    rmSync(join(project, '.mcp.json'));
  });

  it('Codex: the README\'s TOML is read with its command and working directory', (ctx) => {
    if (!clients) return ctx.skip();
    const toml = blocks('toml')[0]!.replace('/path/to/your/repo', project);
    writeFileSync(join(env.CODEX_HOME!, 'config.toml'), toml);
    const shown = run(clients.codex, ['mcp', 'get', 'ratchet']);
    expect(shown).toMatch(/command: ratchet/);
    expect(shown).toMatch(/args: serve/);
    expect(shown).toContain(`cwd: ${project}`);
    expect(run(clients.codex, ['mcp', 'list'])).toMatch(/ratchet\s+ratchet\s+serve/);
  });
});
