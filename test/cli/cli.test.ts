// The ratchet command line: init, status, usage errors, and a second server on the same repo.
import { describe, it, expect, afterAll } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { parseConfig } from '../../src/core/config.js';
import { makeRepo, TRAIN, EVALUATE, baseConfig, setConstant } from '../helpers/repo.js';

const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));
const ratchet = (args: string[], cwd?: string) => spawnSync(process.execPath, [CLI, ...args], { cwd, encoding: 'utf8', env: { ...process.env, CLAUDE_PROJECT_DIR: '' } });
const repo = makeRepo({ 'train.mjs': TRAIN, 'evaluate.mjs': EVALUATE }, baseConfig());
afterAll(() => repo.cleanup());

describe('ratchet init', () => {
  it('writes a starter config that validates, and refuses to overwrite one', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ratchet-init-'));
    const r = ratchet(['init', '--repo', dir]);
    expect(r.status).toBe(0);
    expect(r.stdout).toBe('');
    const config = JSON.parse(readFileSync(join(dir, 'ratchet.json'), 'utf8'));
    expect(() => parseConfig(config)).not.toThrow();
    writeFileSync(join(dir, 'ratchet.json'), '{"mine": true}');
    const again = ratchet(['init', '--repo', dir]);
    expect(again.status).toBe(1);
    expect(again.stderr).toContain('--force');
    expect(readFileSync(join(dir, 'ratchet.json'), 'utf8')).toBe('{"mine": true}');
  });

  it('points $schema at a file that exists: the installed package when the project has it, else a copy in .ratchet/', () => {
    const shipped = readFileSync(fileURLToPath(new URL('../../schema/ratchet.schema.json', import.meta.url)), 'utf8');
    // Installed globally or from a checkout: nothing under node_modules, so the copy in .ratchet/ is named and written.
    const plain = mkdtempSync(join(tmpdir(), 'ratchet-init-'));
    execFileSync('git', ['init', '-q'], { cwd: plain });
    expect(ratchet(['init', '--repo', plain]).status).toBe(0);
    const ref = JSON.parse(readFileSync(join(plain, 'ratchet.json'), 'utf8')).$schema as string;
    expect(ref).toBe('./.ratchet/ratchet.schema.json');
    expect(readFileSync(join(plain, ref), 'utf8')).toBe(shipped);
    // and .ratchet/ stays out of `git status`
    expect(execFileSync('git', ['status', '--porcelain'], { cwd: plain }).toString()).toBe('?? ratchet.json\n');
    // A project that depends on the package gets the package's own copy.
    const dependent = mkdtempSync(join(tmpdir(), 'ratchet-init-'));
    mkdirSync(join(dependent, 'node_modules', 'ratchet-mcp', 'schema'), { recursive: true });
    writeFileSync(join(dependent, 'node_modules', 'ratchet-mcp', 'schema', 'ratchet.schema.json'), shipped);
    expect(ratchet(['init', '--repo', dependent]).status).toBe(0);
    const dependentRef = JSON.parse(readFileSync(join(dependent, 'ratchet.json'), 'utf8')).$schema as string;
    expect(dependentRef).toBe('./node_modules/ratchet-mcp/schema/ratchet.schema.json');
    expect(existsSync(join(dependent, dependentRef))).toBe(true);
    expect(existsSync(join(dependent, '.ratchet'))).toBe(false);
  });
});

describe('ratchet status', () => {
  it('prints the status tool\'s JSON with --json, including a config error naming the key', () => {
    const ok = ratchet(['status', '--repo', repo.dir, '--json']);
    expect(ok.status).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ session: null, config: { valid: true } });
    const dir = mkdtempSync(join(tmpdir(), 'ratchet-bad-'));
    writeFileSync(join(dir, 'ratchet.json'), JSON.stringify({ editable: ['x'], run: { command: 'x', budgetSeconds: 'soon' }, metric: { name: 'm', direction: 'minimize' } }));
    const bad = JSON.parse(ratchet(['status', '--repo', dir, '--json']).stdout);
    expect(bad.config.valid).toBe(false);
    expect(bad.config.error).toContain('run.budgetSeconds');
  });

  it('takes the repo from CLAUDE_PROJECT_DIR when --repo is absent', () => {
    const r = spawnSync(process.execPath, [CLI, 'status', '--json'], { cwd: tmpdir(), encoding: 'utf8', env: { ...process.env, CLAUDE_PROJECT_DIR: repo.dir } });
    expect(JSON.parse(r.stdout).ledger).toBe(join(repo.dir, '.ratchet', 'ratchet.db'));
  });
});

describe('usage errors', () => {
  it('rejects an unknown command and a missing repo with exit 2 and a hint', () => {
    const unknown = ratchet(['frobnicate']);
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toContain('unknown command "frobnicate"');
    const missing = ratchet(['serve', '--repo', join(tmpdir(), 'no-such-repo-for-ratchet')]);
    expect(missing.status).toBe(2);
    expect(missing.stderr).toContain('--repo');
  });

  it('rejects a misspelt option with exit 2 and the help hint, not a stack trace; a hook never exits 2', () => {
    const typo = ratchet(['eval', '--trails', '3']);
    expect(typo.status).toBe(2);
    expect(typo.stderr).toContain("Unknown option '--trails'");
    expect(typo.stderr).toContain('ratchet --help');
    expect(typo.stderr).not.toContain('    at ');
    expect(ratchet(['hook', 'stop', '--bogus']).status).toBe(1);
  });
});

describe('two servers on one repo', () => {
  it('the second one serves reads but refuses to drive', async () => {
    const connect = async () => {
      const client = new Client({ name: 'lock', version: '1' });
      await client.connect(new StdioClientTransport({ command: process.execPath, args: [CLI, 'serve', '--repo', repo.dir], stderr: 'ignore' }));
      return client;
    };
    const first = await connect();
    const second = await connect();
    try {
      const refused = (await second.callTool({ name: 'start_session', arguments: { tag: 'lock' } })) as { isError?: boolean; content: { text: string }[] };
      expect(refused.isError).toBe(true);
      expect(refused.content[0]!.text).toContain('[locked]');
      const status = (await second.callTool({ name: 'status', arguments: {} })) as { isError?: boolean };
      expect(status.isError).toBeFalsy();
      const started = (await first.callTool({ name: 'start_session', arguments: { tag: 'lock' } })) as { isError?: boolean; content: { text: string }[] };
      expect(started.isError, started.content[0]?.text).toBeFalsy();
    } finally {
      await second.close();
      await first.close();
    }
    // The lock is released on a clean exit, so a new server can drive.
    for (let i = 0; i < 50 && existsSync(join(repo.dir, '.ratchet/server.lock')); i++) await new Promise((r) => setTimeout(r, 100));
    expect(existsSync(join(repo.dir, '.ratchet/server.lock'))).toBe(false);
    void setConstant;
    void execFileSync;
  });
});
