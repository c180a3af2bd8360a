// `ratchet init`: which preset fits a repo, what each writes, and that what it writes runs a session on a fresh repo.
import { describe, it, expect, afterAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseConfig } from '../../src/core/config.js';
import { PRESETS } from '../../src/init/presets.js';
import { makeRepo, type TestRepo } from '../helpers/repo.js';
import { CLI, connectServer } from '../helpers/server.js';

const ratchet = (args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, CLAUDE_PROJECT_DIR: '' } });
const cleanups: (() => unknown)[] = [];
// Last in, first out: a server stops before its repo is removed.
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

function tempDir(files: Record<string, string> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'ratchet-init-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  spawnSync('git', ['init', '-q'], { cwd: dir });
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), content);
  }
  return dir;
}

const configOf = (dir: string) => JSON.parse(readFileSync(join(dir, 'ratchet.json'), 'utf8'));

/** A folder of executables that do nothing, named like the tools a preset looks for. */
function fakeBin(...names: string[]): string {
  const dir = tempDir();
  for (const name of names) {
    writeFileSync(join(dir, name), '#!/bin/sh\nexit 0\n');
    chmodSync(join(dir, name), 0o755);
  }
  return dir;
}

describe('ratchet init picks a preset from the repo', () => {
  it.each([
    ['a root SKILL.md', 'skill', { 'SKILL.md': '# mine\n' }, 'SKILL.md is at the repo root', ['SKILL.md']],
    ['a skill folder', 'skill', { 'skills/brief/SKILL.md': '# mine\n' }, 'skills/brief/SKILL.md is a skill', ['skills/brief/**']],
    ['train.py', 'train', { 'train.py': 'print("val_bpb: 1.0")\n' }, 'train.py is here', ['train.py']],
    ['a torch notebook', 'train', { 'nb/explore.ipynb': '{"cells": [{"source": ["import torch\\n"]}]}' }, 'the notebook nb/explore.ipynb uses torch', ['train.py']],
    ['package.json', 'bench', { 'package.json': '{"name": "x"}' }, 'package.json is here', ['solution.mjs']],
    ['a Makefile', 'bench', { Makefile: 'all:\n\ttrue\n' }, 'Makefile is here', ['solution.mjs']],
  ])('%s → %s', (_, preset, files, why, editable) => {
    const dir = tempDir(files);
    const r = ratchet(['init', '--repo', dir]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(`preset ${preset}, because ${why}`);
    const config = configOf(dir);
    expect(config.editable).toEqual(editable);
    expect(() => parseConfig(config)).not.toThrow();
    expect(existsSync(join(dir, config.$schema))).toBe(true);
  });

  it('writes only the generic ratchet.json where nothing fits, and says how to get a runnable one', () => {
    const dir = tempDir();
    const r = ratchet(['init', '--repo', dir]);
    expect(r.status).toBe(0);
    expect(r.stderr).toContain('no preset fits');
    expect(r.stderr).toContain('--preset skill|train|bench');
    expect(spawnSync('git', ['status', '--porcelain'], { cwd: dir, encoding: 'utf8' }).stdout).toBe('?? ratchet.json\n');
  });

  it('--preset overrides what the repo suggests; an unknown one is refused with the three names', () => {
    const dir = tempDir({ 'SKILL.md': '# mine\n' });
    const unknown = ratchet(['init', '--preset', 'skills', '--repo', dir]);
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toContain('unknown preset "skills". Use one of: skill, train, bench');
    expect(existsSync(join(dir, 'ratchet.json'))).toBe(false);
    const r = ratchet(['init', '--preset', 'bench', '--repo', dir]);
    expect(r.stderr).toContain('preset bench, because you passed --preset bench');
    expect(configOf(dir).metric.name).toBe('wall_ms');
  });

  it('refuses to overwrite ratchet.json without --force; with it, rewrites the config and keeps the user\'s files', () => {
    const dir = tempDir();
    expect(ratchet(['init', '--preset', 'skill', '--repo', dir]).status).toBe(0);
    writeFileSync(join(dir, 'SKILL.md'), '# my own skill\n');
    const again = ratchet(['init', '--preset', 'train', '--repo', dir]);
    expect(again.status).toBe(1);
    expect(again.stderr).toContain('--force');
    const forced = ratchet(['init', '--preset', 'skill', '--force', '--repo', dir]);
    expect(forced.status).toBe(0);
    expect(forced.stderr).toContain('Kept what was already there: program.md.');
    expect(readFileSync(join(dir, 'SKILL.md'), 'utf8')).toBe('# my own skill\n');
    expect(readFileSync(join(dir, '.gitignore'), 'utf8')).toBe('/.eval-out/\n'); // not added twice
  });

  it('names --preset and --force in the usage text', () => {
    const help = ratchet(['--help']).stderr;
    expect(help).toMatch(/init .*--preset skill\|train\|bench.*--force/);
  });
});

describe('the train preset looks at the machine', () => {
  const plan = (files: Record<string, string>, path: string) => PRESETS.train.plan(tempDir(files), { path });

  it('uses uv for a uv project and python3 otherwise, and says why', () => {
    const uv = plan({ 'pyproject.toml': '[project]\nname = "x"\n' }, fakeBin('uv', 'python3'));
    expect(uv.config.run).toMatchObject({ command: 'uv run train.py' });
    expect(uv.notes.join('\n')).toContain('uv run, because uv is on PATH and pyproject.toml is here');
    expect(uv.config.protected).toContain('pyproject.toml');
    const noProject = plan({}, fakeBin('uv', 'python3'));
    expect(noProject.config.run).toMatchObject({ command: 'python3 train.py' });
    expect(noProject.notes.join('\n')).toContain('uv is on PATH, but there is no pyproject.toml');
    expect(plan({}, fakeBin('python3')).notes.join('\n')).toContain('python3, because uv is not on PATH');
  });

  it('requires a GPU only where nvidia-smi is on PATH', () => {
    const gpu = plan({}, fakeBin('python3', 'nvidia-smi'));
    expect(gpu.config.gpu).toEqual({ required: true, perRun: 1 });
    expect(gpu.notes.join('\n')).toContain('nvidia-smi is on PATH');
    const cpu = plan({}, fakeBin('python3'));
    expect(cpu.config.gpu).toBeUndefined();
    expect(cpu.notes.join('\n')).toContain('runs use the CPU');
  });

  it('uses an existing train.py and prepare.py as they are: no starter, the metric from train.py\'s output', () => {
    const existing = plan({ 'train.py': 'x = 1\n', 'prepare.py': 'y = 2\n' }, fakeBin('python3'));
    expect(existing.files).toEqual([]);
    expect(existing.config).toMatchObject({ editable: ['train.py'], protected: ['prepare.py'], metric: { name: 'val_bpb', direction: 'minimize' } });
    expect(existing.config.evaluate).toBeUndefined();
  });
});

describe('the bench preset uses the project\'s own commands', () => {
  it('times `npm run bench`, checks `npm test`, and pins package.json, where the two are defined', () => {
    const dir = tempDir({ 'package.json': JSON.stringify({ scripts: { bench: 'node b.js', test: 'node t.js' } }), 'src/index.js': '', 'src/util/index.test.js': '' });
    const r = ratchet(['init', '--repo', dir]);
    expect(r.status, r.stderr).toBe(0);
    const config = configOf(dir);
    expect(config).toMatchObject({ editable: ['src/**'], run: { command: 'npm run --silent bench' }, evaluate: { command: 'node bench/evaluate.mjs' } });
    // Tests beside the code are pinned too: a test the agent could edit would pass anything.
    expect(config.protected).toEqual(expect.arrayContaining(['bench/**', 'package.json', '**/*.test.*']));
    expect(config.metric.constraints).toEqual([{ metric: 'correct', min: 1 }]);
    expect(readFileSync(join(dir, 'bench/evaluate.mjs'), 'utf8')).toContain('const TEST = "npm test --silent";');
    expect(existsSync(join(dir, 'solution.mjs'))).toBe(false);
  });
});

// What each preset writes must run a session on a fresh repo with nothing else installed.
const hasPython = spawnSync('python3', ['--version']).status === 0;
if (!hasPython) console.warn('python3 is not on PATH: the train preset\'s session test is skipped.');

async function sessionWithOneExperiment(repo: TestRepo, edit: () => void) {
  repo.commitAll('ratchet config');
  const server = await connectServer(repo.dir);
  cleanups.push(() => server.close());
  const started = await server.ok('start_session', { tag: 'preset' });
  expect(started.warnings.filter((w: string) => w.includes('matches no file'))).toEqual([]);
  const baseline = await server.finish(started.baseline.id);
  expect(baseline.state, JSON.stringify(baseline)).toBe('measured');
  edit();
  const candidate = await server.finish((await server.ok('run_experiment', { description: 'the edit', wait_seconds: 1 })).experiment.id);
  expect(candidate.state, JSON.stringify(candidate)).toBe('measured');
  return { server, baseline, candidate };
}

function presetRepo(preset: string): TestRepo {
  const repo = makeRepo({ 'README.md': '# a project\n' });
  cleanups.push(repo.cleanup);
  const r = ratchet(['init', '--preset', preset, '--repo', repo.dir]);
  expect(r.status, r.stderr).toBe(0);
  return repo;
}

describe('each preset runs start_session and an experiment on a fresh repo', () => {
  it('bench: a faster wrong answer, even one that prints correct: 1, is measured and cannot be kept', { timeout: 240_000 }, async () => {
    const repo = presetRepo('bench');
    const { server, baseline, candidate } = await sessionWithOneExperiment(repo, () => repo.write('solution.mjs', "export function countPrimes() { console.log('correct: 1'); return 0; }\n"));
    expect(baseline.metric).toBeGreaterThan(0);
    expect(candidate.metric).toBeGreaterThan(0);
    const keep = await server.call('keep', { id: candidate.id });
    expect(keep.isError).toBe(true);
    expect(keep.content[0]!.text).toContain('constraint');
  });

  it.skipIf(!hasPython)('train (needs python3): a larger context lowers val_bpb on a CPU', { timeout: 240_000 }, async () => {
    const repo = presetRepo('train');
    const { baseline, candidate } = await sessionWithOneExperiment(repo, () => repo.write('train.py', repo.read('train.py').replace('ORDER = 1', 'ORDER = 3')));
    expect(candidate.metric).toBeLessThan(baseline.metric);
  });

  it('skill: a simulated model answers the suite; a shorter brief raises pass_rate', { timeout: 240_000 }, async () => {
    const repo = presetRepo('skill');
    // The model: the prompt's lines back, as bullets when the skill asks for them, without timestamps when it says so.
    repo.write(
      'evals/model.mjs',
      `import { readFileSync } from 'node:fs';
const prompt = readFileSync(0, 'utf8').split('\\n').slice(2).filter((l) => l.trim());
const skill = readFileSync(process.env.RATCHET_SKILL, 'utf8');
const lines = skill.includes('timestamps') ? prompt.map((l) => l.replace(/^\\d\\d:\\d\\d /, '')) : prompt;
console.log(skill.includes('bullet') ? lines.map((l) => '- ' + l).join('\\n') : lines.join(' '));
`,
    );
    repo.write('evals/suite.yaml', `${repo.read('evals/suite.yaml')}agent: node "$(dirname "$RATCHET_SKILL")/evals/model.mjs"\n`);
    const { baseline, candidate } = await sessionWithOneExperiment(repo, () => repo.write('SKILL.md', `${repo.read('SKILL.md')}- Leave out timestamps.\n`));
    expect(baseline.metric).toBeLessThan(100);
    expect(candidate.metric).toBeGreaterThan(baseline.metric);
  });
});
