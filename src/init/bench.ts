// The bench preset: a command's wall time is the metric (minimised), and a correctness test is a constraint.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { present, starterFiles, type Preset } from './plan.js';

interface ProjectCommand {
  command: string;
  /** Where it came from, e.g. "package.json's bench script". */
  from: string;
}

const STARTER = ['solution.mjs', 'bench/workload.mjs', 'bench/test.mjs'];
const TEST_FILES = ['**/*.test.*', '**/*.spec.*', '**/__tests__/**'];

export const benchPreset: Preset = {
  name: 'bench',
  plan(repo) {
    const notes: string[] = [];
    const own = projectCommands(repo);
    // Without a benchmark of the project's own, the starter's workload and test go together: both call solution.mjs.
    const starter = !own.bench;
    const bench = own.bench?.command ?? 'node bench/workload.mjs';
    const test = starter ? 'node bench/test.mjs' : (own.test?.command ?? '');
    if (own.bench) {
      notes.push(`Benchmark: \`${bench}\`, ${own.bench.from}.`);
      notes.push(own.test ? `Correctness test: \`${test}\`, ${own.test.from}.` : 'No test command found: every run reports correct: 0, so nothing can be kept until you set TEST in bench/evaluate.mjs.');
    } else {
      notes.push('No bench script in package.json and no bench target in a Makefile: wrote a starter. solution.mjs is the code to speed up; bench/workload.mjs calls it, bench/test.mjs checks it.');
    }
    notes.push('bench/evaluate.mjs (protected) runs the test, then times the benchmark 5 times: wall_ms is the median. Edit TEST and BENCH at its top to measure something else.');

    const sources = present(repo, ['src', 'lib']);
    if (!starter && !sources.length) notes.push('No src/ or lib/ here: set editable in ratchet.json to the code the agent may change.');
    const editable = starter ? ['solution.mjs'] : sources.length ? sources.map((dir) => `${dir}/**`) : ['src/**'];
    const definitions = [
      ...present(repo, ['package.json', 'package-lock.json', 'pnpm-lock.yaml', 'yarn.lock', 'Makefile']),
      ...present(repo, ['test', 'tests']).map((dir) => `${dir}/**`),
      // Tests beside the code would be editable, and a test the agent can edit passes anything.
      ...(sources.some((dir) => holdsTests(join(repo, dir))) ? TEST_FILES : []),
    ];
    return {
      config: {
        editable,
        // The commands are defined there too: an agent that could edit them could make the benchmark do nothing.
        protected: ['bench/**', ...(starter ? [] : definitions)],
        run: { command: bench, budgetSeconds: starter ? 60 : 600, ...(!starter && existsSync(join(repo, 'node_modules')) ? { inputs: ['node_modules'] } : {}) },
        evaluate: { command: 'node bench/evaluate.mjs', budgetSeconds: starter ? 120 : 1800 },
        metric: { name: 'wall_ms', direction: 'minimize', secondary: ['wall_ms_min'], constraints: [{ metric: 'correct', min: 1 }] },
        decision: { rule: 'significant' },
      },
      files: [
        ...(starter ? starterFiles('bench', STARTER) : []),
        ...starterFiles('bench', ['bench/evaluate.mjs'], { 'bench/evaluate.mjs': { test: JSON.stringify(test), bench: JSON.stringify(bench) } }),
      ],
      ignore: [],
      notes,
      tryCommand: 'node bench/evaluate.mjs',
    };
  },
};

/** The project's own bench and test commands: package.json scripts first, then Makefile targets. */
function projectCommands(repo: string): { bench?: ProjectCommand; test?: ProjectCommand } {
  const scripts = packageScripts(repo);
  const makefile = existsSync(join(repo, 'Makefile')) ? readFileSync(join(repo, 'Makefile'), 'utf8') : '';
  const target = (name: string) => new RegExp(`^${name}\\s*:`, 'm').test(makefile);
  const pick = (name: string, npm: string): ProjectCommand | undefined => {
    // npm init's placeholder test script fails on purpose; it is no test.
    const script = scripts[name];
    if (typeof script === 'string' && script.trim() && !script.includes('no test specified')) return { command: npm, from: `package.json's ${name} script` };
    if (target(name)) return { command: `make -s ${name}`, from: `the Makefile's ${name} target` };
    return undefined;
  };
  return { bench: pick('bench', 'npm run --silent bench'), test: pick('test', 'npm test --silent') };
}

function packageScripts(repo: string): Record<string, unknown> {
  try {
    const scripts = (JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { scripts?: unknown }).scripts;
    return scripts && typeof scripts === 'object' ? (scripts as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

/** Whether a source folder holds test files, which protected must then cover. */
function holdsTests(dir: string): boolean {
  try {
    return readdirSync(dir, { recursive: true, encoding: 'utf8' }).some((path) => /(?:^|\/)(?:__tests__\/|[^/]+\.(?:test|spec)\.[^/]+$)/.test(path));
  } catch {
    return false;
  }
}
