// The README's skill sections, tried as a new user would: the shell commands of "Improve a skill" run in a fresh repo
// (Claude Code replaced by a stand-in that replays its JSON), and the example case file is a valid case.
import { describe, it, expect, afterEach } from 'vitest';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readmeSection } from '../helpers/readme.js';
import { makeRepo, type TestRepo } from '../helpers/repo.js';

const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));
// Answers like `claude -p --output-format json`: a deadline bullet and the prompt's start.
const STAND_IN_CLAUDE = `#!/bin/sh
prompt=$(cat)
printf '{"type":"result","is_error":false,"result":"- Friday: %s","total_cost_usd":0.001,"usage":{"input_tokens":3,"output_tokens":4}}\\n' "$(echo "$prompt" | head -c 40 | tr -d '"\\\\')"
`;

let repo: TestRepo | undefined;
afterEach(() => repo?.cleanup());

function shellBlocks(section: string): string[] {
  return [...section.matchAll(/```sh\n([\s\S]*?)```/g)]
    .flatMap((m) => m[1]!.split('\n'))
    .map((l) => l.replace(/\s+#.*$/, '').trim())
    .filter(Boolean);
}

describe('README: Improve a skill', () => {
  it('its commands work in a fresh repo: init --preset skill, then ratchet eval on the suite it wrote', () => {
    const section = readmeSection('Improve a skill');
    const commands = shellBlocks(section).filter((c) => c.startsWith('ratchet init') || c.startsWith('ratchet eval'));
    expect(commands).toEqual(['ratchet init --preset skill', 'ratchet eval evals']);
    repo = makeRepo({ 'README.md': '# my project\n' });
    const bin = join(repo.dir, '.bin');
    mkdirSync(bin);
    writeFileSync(join(bin, 'claude'), STAND_IN_CLAUDE);
    chmodSync(join(bin, 'claude'), 0o755);
    writeFileSync(join(bin, 'ratchet'), `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(CLI)} "$@"\n`);
    chmodSync(join(bin, 'ratchet'), 0o755);
    const env = { ...process.env, PATH: `${bin}:${process.env.PATH}`, CLAUDE_PROJECT_DIR: '' };
    for (const command of commands) {
      const r = spawnSync('sh', ['-c', command], { cwd: repo.dir, encoding: 'utf8', env, timeout: 120_000 });
      expect(r.status, `${command}\n${r.stderr}`).toBe(0);
      if (command.startsWith('ratchet eval')) {
        expect(r.stdout).toMatch(/^case \S+ 1 (pass|fail)$/m);
        expect(r.stdout).toMatch(/^pass_rate: [\d.]+$/m);
        expect(r.stdout).toMatch(/^held_out_pass_rate: [\d.]+$/m);
        expect(r.stdout).toMatch(/^cost_usd: [\d.]+$/m);
      }
    }
    // The section's promises about the preset hold for the file it wrote.
    const config = JSON.parse(repo.read('ratchet.json'));
    expect(config.run.command).toBe('ratchet eval evals --collect .eval-out');
    expect(config.evaluate.command).toBe('ratchet eval evals --score .eval-out');
    expect(config.run.passEnv).toEqual(expect.arrayContaining(['ANTHROPIC_API_KEY', 'CLAUDE_CODE_OAUTH_TOKEN']));
    expect(section).toContain('run.passEnv');
  });

  it('its example case file is a valid case, and its assertions are scored', () => {
    const section = readmeSection('Improve a skill');
    const yaml = /### Writing a suite[\s\S]*?```yaml\n([\s\S]*?)```/.exec(section)?.[1];
    expect(yaml, 'the example case is gone from "Writing a suite"').toBeTruthy();
    repo = makeRepo({ 'SKILL.md': 'Write short briefs.\n', 'evals/cases/deadline.yaml': yaml!, 'evals/cases/notes.txt': 'Ship on Friday.\n' });
    const r = spawnSync(process.execPath, [CLI, 'eval', '--repo', repo.dir, '--agent', 'echo "- Ship it by friday"', '--trials', '1'], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain('case deadline 1 pass');
    expect(r.stdout).toContain('assert deadline 1 mentions-deadline pass');
    expect(r.stdout).toContain('pass_rate: 100');
  });
});

describe('README: Presets', () => {
  it('names the three presets init accepts', () => {
    const section = readmeSection('Presets');
    for (const name of ['skill', 'train', 'bench']) expect(section).toContain(`| \`${name}\` |`);
    const unknown = spawnSync(process.execPath, [CLI, 'init', '--preset', 'nope', '--repo', '.'], { encoding: 'utf8' });
    expect(unknown.status).toBe(2);
    for (const name of ['skill', 'train', 'bench']) expect(unknown.stderr).toContain(name);
  });
});
