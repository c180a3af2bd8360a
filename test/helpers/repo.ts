// Real git repos in temp dirs with a ratchet.json and tiny synthetic experiment scripts.
import { mkdtempSync, writeFileSync, mkdirSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { execFileSync } from 'node:child_process';

export interface TestRepo {
  dir: string;
  git: (...args: string[]) => string;
  write: (path: string, content: string) => void;
  read: (path: string) => string;
  commitAll: (message: string) => string;
  cleanup: () => void;
}

export function makeRepo(files: Record<string, string>, config?: Record<string, unknown>): TestRepo {
  const dir = mkdtempSync(join(tmpdir(), 'ratchet-test-'));
  const git = (...args: string[]) =>
    execFileSync('git', ['-c', 'user.name=test', '-c', 'user.email=test@localhost', ...args], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] })
      .toString()
      .trim();
  const write = (path: string, content: string) => {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), content);
  };
  git('init', '-q', '-b', 'main');
  for (const [path, content] of Object.entries(files)) write(path, content);
  if (config) write('ratchet.json', JSON.stringify(config, null, 2));
  const commitAll = (message: string) => {
    git('add', '-A');
    git('commit', '-q', '-m', message);
    return git('rev-parse', 'HEAD');
  };
  commitAll('initial');
  return { dir, git, write, read: (p) => readFileSync(join(dir, p), 'utf8'), commitAll, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * train.mjs prints `score: <SCORE>`; the agent "improves" it by editing the constant.
 * Other behaviours are switched by constants too, so each test edits one line.
 */
export const TRAIN = `// synthetic experiment
const SCORE = 1.0;
const SLEEP_MS = 0;
const MODE = 'normal';
await new Promise((r) => setTimeout(r, SLEEP_MS));
if (MODE === 'crash') { console.error('Traceback: boom'); process.exit(3); }
if (MODE === 'fake') { console.log('score: 0.0001'); }
if (MODE === 'nan') { console.log('score: nan'); process.exit(0); }
if (MODE === 'nometric') { console.log('done, but no metric'); process.exit(0); }
if (MODE === 'flood') { const line = 'x'.repeat(1023) + '\\n'; for (;;) process.stdout.write(line); }
if (MODE === 'hang') {
  // A grandchild and a setsid daemon that would outlive a naive kill; their pids go to PID_DIR.
  const { spawn } = await import('node:child_process');
  const { writeFileSync } = await import('node:fs');
  const dir = process.env.PID_DIR;
  const child = spawn('sleep', ['300'], { stdio: 'ignore' });
  writeFileSync(dir + '/grandchild.pid', String(child.pid));
  spawn('setsid', ['sh', '-c', 'sleep 300 & echo $! > ' + dir + '/daemon.pid; wait'], { stdio: 'ignore', detached: true }).unref();
  console.log('hanging');
  setInterval(() => {}, 1000);
  await new Promise(() => {});
}
console.log('step 1 loss 2.0');
console.log('cuda: ' + (process.env.CUDA_VISIBLE_DEVICES ?? 'unset') + ' order ' + (process.env.CUDA_DEVICE_ORDER ?? 'unset'));
console.log('---');
console.log('score:          ' + SCORE.toFixed(6));
console.log('peak_vram_mb:   ' + (SCORE * 1000).toFixed(1));
`;

export const EVALUATE = `// trusted evaluator: recomputes the score from train.mjs's constant, ignoring what the run printed
import { readFileSync } from 'node:fs';
const m = /const SCORE = ([0-9.eE+-]+);/.exec(readFileSync('train.mjs', 'utf8'));
console.log('score: ' + Number(m[1]).toFixed(6));
`;

export function baseConfig(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    editable: ['train.mjs', 'notes/**'],
    protected: ['evaluate.mjs', 'data/**'],
    run: { command: 'node train.mjs', budgetSeconds: 20, graceSeconds: 1 },
    metric: { name: 'score', direction: 'minimize', secondary: ['peak_vram_mb'] },
    // Part 1's tests pin Karpathy's rule; the significant rule has its own tests.
    decision: { rule: 'greedy' },
    ...extra,
  };
}

export function setConstant(repo: TestRepo, name: string, value: string): void {
  const code = repo.read('train.mjs');
  const next = code.replace(new RegExp(`const ${name} = [^;]+;`), `const ${name} = ${value};`);
  if (next === code) throw new Error(`constant ${name} not found or unchanged`);
  repo.write('train.mjs', next);
}

/** Running or stopped, but not a zombie: a killed process whose parent has not reaped it yet is dead. */
export function pidAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}
