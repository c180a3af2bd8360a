// The README's "Several agents, one ledger" names what ratchet really offers: the CLI command, the tools and their filters.
import { describe, it, expect } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { tools } from '../../src/tools/index.js';
import { readmeSection } from '../helpers/readme.js';

const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));

describe('README: Several agents, one ledger', () => {
  it('documents `ratchet worktree add`, sync, the agent filters and the refusals, all of which exist', () => {
    const section = readmeSection('Several agents, one ledger');
    for (const phrase of ['ratchet worktree add b', 'ratchet worktree list', 'ratchet worktree remove b', '`sync`', 'status {agent}', 'list_experiments {agent}', 'behind_best', 'other_agent', 'test/e2e/agents.test.ts']) {
      expect(section).toContain(phrase);
    }
    const names = tools.map((t) => t.name);
    expect(names).toContain('sync');
    expect(Object.keys(tools.find((t) => t.name === 'status')!.input)).toContain('agent');
    expect(Object.keys(tools.find((t) => t.name === 'list_experiments')!.input)).toContain('agent');
    const help = spawnSync(process.execPath, [CLI, '--help'], { encoding: 'utf8' });
    expect(help.stderr).toContain('worktree add <name>');
    expect(help.stderr).toContain('worktree remove <name>');
    expect(section).toContain('pass `--force`');
  });

  it('`ratchet worktree` without add, list or remove says how to use it', () => {
    let stderr = '';
    try {
      execFileSync(process.execPath, [CLI, 'worktree'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (err) {
      stderr = (err as { stderr: string }).stderr;
    }
    expect(stderr).toContain('ratchet worktree add <name>');
    expect(stderr).toContain('ratchet worktree remove <name>');
  });
});
