// Onboarding cannot rot silently: the README's "Use it on your own project", the publishable package, and the plugin manifests that agree with it.
import { describe, it, expect } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { accessSync, constants, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readme, readmeSection } from '../helpers/readme.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const json = (path: string) => JSON.parse(readFileSync(join(ROOT, path), 'utf8'));
const pkg = json('package.json');


describe('README: Use it on your own project', () => {
  it('follows the Quick start and walks from install to the first session', () => {
    const quick = readme.indexOf('\n## Quick start');
    expect(readme.indexOf('\n## ', quick + 4)).toBe(readme.indexOf('\n## Use it on your own project'));
    const onboarding = readmeSection('Use it on your own project');
    for (const step of [
      'npm ci && npm run build && npm link',
      'npm i -g ratchet-mcp',
      'npx -y ratchet-mcp',
      'ratchet init',
      'claude plugin marketplace add',
      'claude plugin install ratchet@ratchet',
      'claude mcp add ratchet -- ratchet serve',
      '.mcp.json',
      '~/.codex/config.toml',
      'tool_timeout_sec',
      'ratchet codex-loop',
      '**4. The first session.**',
      'ratchet stop',
    ]) {
      expect(onboarding, step).toContain(step);
    }
    // What to type to the agent, as its own block.
    expect(onboarding).toMatch(/```text\n.*start a session.*\n```/);
  });

  it('is the only place that sets the agent up: the section it replaced is gone', () => {
    expect(readme).not.toContain('\n## Using it with your agent');
  });
});

describe('the npm package', () => {
  it('is publishable: the `ratchet` bin, dist built when packed, public access', () => {
    expect(pkg.bin).toEqual({ ratchet: 'dist/cli.js' });
    expect(pkg.scripts.prepack).toBe('npm run build');
    expect(pkg.publishConfig).toEqual({ access: 'public' });
    expect(pkg.files).toEqual(expect.arrayContaining(['dist', 'program.md', 'skills', 'schema']));
    expect(readFileSync(join(ROOT, 'dist', 'cli.js'), 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true);
  });

  it('packs the CLI, the hooks\' code, the skill and program.md, and no tests', () => {
    // --ignore-scripts: `npm test` has just built dist/, and prepack would only build it again.
    const dest = mkdtempSync(join(tmpdir(), 'ratchet-pack-'));
    try {
      const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts', '--pack-destination', dest], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] }).toString();
      const files = (JSON.parse(out) as { files: { path: string }[] }[])[0]!.files.map((f) => f.path);
      for (const f of ['dist/cli.js', 'dist/server.js', 'dist/hooks/command.js', 'dist/hooks/codex-loop.js', 'skills/ratchet/SKILL.md', 'program.md', 'schema/ratchet.schema.json']) expect(files).toContain(f);
      expect(files.filter((f) => f.startsWith('test/') || f.startsWith('src/') || f.startsWith('node_modules/'))).toEqual([]);
    } finally {
      rmSync(dest, { recursive: true, force: true });
    }
  });
});

describe('the Claude Code plugin', () => {
  it('is a marketplace named ratchet whose one plugin, ratchet, is this repo', () => {
    const market = json('.claude-plugin/marketplace.json');
    expect(market.name).toBe('ratchet');
    expect(market.plugins).toEqual([expect.objectContaining({ name: 'ratchet', source: './' })]);
  });

  it('registers the server, the skill and the hooks, at the package\'s version (the npx fallback asks npm for it)', () => {
    const plugin = json('.claude-plugin/plugin.json');
    expect(plugin.version).toBe(pkg.version);
    expect(plugin.skills).toBe('./skills/');
    expect(plugin.hooks).toBe('./hooks/hooks.json');
    expect(plugin.mcpServers.ratchet).toEqual({ command: '${CLAUDE_PLUGIN_ROOT}/hooks/ratchet.sh', args: ['serve'] });
    const hooks = json('hooks/hooks.json').hooks;
    expect(hooks.Stop[0].hooks[0].command).toBe('"${CLAUDE_PLUGIN_ROOT}/hooks/ratchet.sh" hook stop');
    expect(hooks.SessionStart[0].matcher).toBe('startup|resume|clear|compact');
    expect(hooks.SessionStart[0].hooks[0].command).toBe('"${CLAUDE_PLUGIN_ROOT}/hooks/ratchet.sh" hook session-start');
  });

  it('starts this checkout\'s build through its launcher, and answers a hook at once where ratchet never ran', () => {
    const launcher = join(ROOT, 'hooks', 'ratchet.sh');
    accessSync(launcher, constants.X_OK);
    const help = spawnSync(launcher, ['--help'], { encoding: 'utf8', env: { ...process.env, CLAUDE_PLUGIN_ROOT: ROOT } });
    expect(help.status).toBe(0);
    expect(help.stderr).toContain('Usage: ratchet');
    // No node on PATH: only the shell's own check can answer, and it must let the agent stop.
    const dir = mkdtempSync(join(tmpdir(), 'ratchet-no-ledger-'));
    try {
      const r = spawnSync('/bin/bash', [launcher, 'hook', 'stop'], { input: '{"hook_event_name":"Stop"}', encoding: 'utf8', env: { PATH: '/nonexistent', CLAUDE_PLUGIN_ROOT: ROOT, CLAUDE_PROJECT_DIR: dir } });
      expect(r).toMatchObject({ status: 0, stdout: '' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
