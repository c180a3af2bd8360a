// `node dist/cli.js eval` end to end: the default Claude Code agent (a stand-in `claude` first on PATH), --agent, exit codes.
import { describe, it, expect, afterEach } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { caseYaml, makeSuiteRepo, type SuiteRepo } from './helpers.js';

const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));

let repo: SuiteRepo | undefined;
afterEach(() => repo?.cleanup());

function ratchet(args: string[], env: NodeJS.ProcessEnv = {}) {
  return spawnSync(process.execPath, [CLI, 'eval', ...args], { encoding: 'utf8', env: { ...process.env, CLAUDE_PROJECT_DIR: '', ...env } });
}

// Replays Claude Code's `-p --output-format json` result object; says whether the skill was installed where Claude Code looks.
const FAKE_CLAUDE = `#!/bin/sh
if [ -n "$CLAUDECODE" ]; then echo 'Error: Claude Code cannot be launched inside another Claude Code session.' >&2; exit 1; fi
prompt=$(cat)
if [ -f .claude/skills/note-taker/SKILL.md ] && grep -q 'Be brief' .claude/skills/note-taker/SKILL.md; then skill=installed; else skill=missing; fi
if [ -f .claude/skills/note-taker/examples/one.md ]; then extra=folder; else extra=file; fi
echo "$*|$prompt" >> "$CLAUDE_LOG"
printf '{"type":"result","subtype":"success","is_error":false,"result":"skill %s (%s): %s","total_cost_usd":0.01,"usage":{"input_tokens":10,"output_tokens":5}}\\n' "$skill" "$extra" "$prompt"
`;

describe('ratchet eval (CLI)', () => {
  it('runs Claude Code headless by default, with the skill installed as a project skill, and reads its answer and usage', () => {
    repo = makeSuiteRepo({
      'SKILL.md': '---\nname: note-taker\ndescription: Takes notes.\n---\nBe brief.\n',
      'evals/suite.yaml': 'trials: 2\n',
      'evals/cases/brief.yaml': 'prompt: "Summarize the notes"\nassertions:\n  - name: skill-installed\n    contains: "skill installed (file)"\n  - contains: "Summarize the notes"\n  - notContains: "{"\n',
    });
    const log = join(repo.dir, 'claude.log');
    repo.write('bin/claude', FAKE_CLAUDE, 0o755);
    // CLAUDECODE: as when an agent inside Claude Code runs the eval; the nested claude must still start.
    const r = ratchet(['--repo', repo.dir], { PATH: `${join(repo.dir, 'bin')}:${process.env.PATH}`, CLAUDE_LOG: log, CLAUDECODE: '1' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(
      [1, 2].map((t) => `case brief ${t} pass\nassert brief ${t} skill-installed pass\nassert brief ${t} contains-1 pass\nassert brief ${t} notContains-1 pass\n`).join('') +
        'pass_rate: 100\ncases_passed: 100\nerrors: 0\ntokens: 30\ncost_usd: 0.02\n',
    );
    expect(readFileSync(log, 'utf8')).toBe('-p --output-format json --permission-mode acceptEdits|Summarize the notes\n'.repeat(2));
  });

  it('installs a skill folder whole, and a Claude error result is an error', () => {
    repo = makeSuiteRepo({
      'skills/note-taker/SKILL.md': 'Be brief.\n',
      'skills/note-taker/examples/one.md': 'example',
      'evals/suite.yaml': 'skill: skills/note-taker\ntrials: 1\n',
      'evals/cases/c.yaml': caseYaml(['contains: "skill installed (folder)"']),
    });
    repo.write('bin/claude', FAKE_CLAUDE, 0o755);
    const env = { PATH: `${join(repo.dir, 'bin')}:${process.env.PATH}`, CLAUDE_LOG: join(repo.dir, 'log') };
    expect(ratchet(['--repo', repo.dir], env).stdout).toMatch(/^case c 1 pass\n/);
    repo.write('bin/claude', '#!/bin/sh\ncat >/dev/null\necho \'{"type":"result","subtype":"error_max_turns","is_error":true,"result":""}\'\n', 0o755);
    const failed = ratchet(['--repo', repo.dir], env);
    expect(failed.stdout).toMatch(/^case c 1 error\n/);
    expect(failed.stderr).toContain('claude reported an error: error_max_turns');
    expect(failed.status).toBe(1);
  });

  it('takes SUITE_DIR relative to the repo and --agent; a bad suite exits 2 with file:line:col on stderr', () => {
    repo = makeSuiteRepo({ 'SKILL.md': 'skill', 'suites/notes/cases/c.yaml': caseYaml(['contains: hello']) });
    const ok = ratchet(['suites/notes', '--repo', repo.dir, '--agent', 'echo hello', '--trials', '1', '--json']);
    expect(ok.status).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ cases: [{ case: 'c', trial: 1, status: 'pass' }], pass_rate: 100 });
    repo.write('suites/notes/cases/c.yaml', 'prompt: hi\nassertions:\n  - maxWords: 0\n');
    const bad = ratchet(['suites/notes', '--repo', repo.dir, '--agent', 'echo hello']);
    expect(bad.status).toBe(2);
    expect(bad.stdout).toBe('');
    expect(bad.stderr).toContain('suites/notes/cases/c.yaml:3:15: assertions[0].maxWords must be a positive whole number');
  });

  it('stopped by SIGTERM, takes the agents it started (their whole process groups) with it', async () => {
    repo = makeSuiteRepo({ 'SKILL.md': 'skill', 'evals/cases/c.yaml': caseYaml(['contains: a']) });
    const pidFile = join(repo.dir, 'agent.pid');
    const cli = spawn(process.execPath, [CLI, 'eval', '--repo', repo.dir, '--trials', '1', '--agent', `sleep 120 & echo $! > '${pidFile}'; wait`], { stdio: 'ignore' });
    const exited = new Promise<number | null>((resolve) => cli.on('exit', (code) => resolve(code)));
    for (let i = 0; i < 200 && !(existsSync(pidFile) && readFileSync(pidFile, 'utf8').trim()); i++) await sleep(50);
    const pid = Number(readFileSync(pidFile, 'utf8'));
    expect(isRunning(pid)).toBe(true);
    cli.kill('SIGTERM');
    expect(await exited).toBe(143);
    for (let i = 0; i < 100 && isRunning(pid); i++) await sleep(50);
    expect(isRunning(pid)).toBe(false);
  });
});

function isRunning(pid: number): boolean {
  try {
    // A zombie waiting for its reaper is dead already.
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}
