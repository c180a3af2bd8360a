// One regression test per attack class, tried as a hostile proposer would, through the paths an agent or a run really has.
import Database from 'better-sqlite3';
import { describe, it, expect, afterAll } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ResearchLoop } from '../../src/core/loop.js';
import { probeSandbox } from '../../src/core/sandbox.js';
import { silentLogger } from '../../src/log.js';
import { runIntegrity } from '../../src/verify-command.js';
import { makeRepo, TRAIN, EVALUATE, baseConfig, setConstant, type TestRepo } from '../helpers/repo.js';
import { cleanedUpAfterEach, finished, rejection, startWithBaseline } from '../helpers/loop.js';

const { repos, loops } = cleanedUpAfterEach();
const sandboxed = probeSandbox('auto').kind === 'bwrap';
if (!sandboxed) process.stderr.write('attacks.test: bubblewrap is not available here, so the sandbox-only attacks are skipped; install it with `apt-get install bubblewrap`.\n');
const cacheRoot = mkdtempSync(join(tmpdir(), 'ratchet-attack-cache-'));
afterAll(() => rmSync(cacheRoot, { recursive: true, force: true }));

function setup(config: Record<string, unknown> = {}, files: Record<string, string> = {}): { repo: TestRepo; loop: ResearchLoop } {
  const repo = makeRepo({ 'train.mjs': TRAIN, 'evaluate.mjs': EVALUATE, ...files }, baseConfig({ evaluate: { command: 'node evaluate.mjs', budgetSeconds: 20 }, ...config }));
  const loop = new ResearchLoop({ repo: repo.dir, logger: silentLogger(), cacheDir: join(cacheRoot, String(repos.length)) });
  repos.push(repo);
  loops.push(loop);
  return { repo, loop };
}

async function runToEnd(loop: ResearchLoop, description: string) {
  const e = await loop.runExperiment({ description });
  return finished(loop, e.id);
}

/** A train.mjs that first does `attack` (JavaScript, top-level await allowed), then reports its honest score. */
function hostileTrain(attack: string): string {
  return TRAIN.replace('// synthetic experiment', `// synthetic experiment\n${attack}\n`);
}

/** The branch, checked out clean elsewhere and evaluated there, gives the figure the ledger recorded. */
function cleanCheckoutScore(repo: TestRepo, branch: string): number {
  const dir = mkdtempSync(join(tmpdir(), 'ratchet-clean-'));
  try {
    execFileSync('git', ['clone', '-q', '--branch', branch, repo.dir, dir], { stdio: 'pipe' });
    const out = execFileSync('node', ['evaluate.mjs'], { cwd: dir }).toString();
    return Number(/score: ([0-9.]+)/.exec(out)![1]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe.skipIf(!sandboxed)('the run cannot forge or rewrite what ratchet trusts (sandbox)', () => {
  it('a run that writes the result files and the evaluate log does not change the recorded metric, and a worse change cannot be kept', async () => {
    const { repo, loop } = setup();
    await startWithBaseline(loop);
    const runs = join(repo.dir, '.ratchet', 'runs');
    repo.write(
      'train.mjs',
      hostileTrain(`import { writeFileSync, mkdirSync } from 'node:fs';
for (let id = 1; id < 10; id++) {
  const dir = ${JSON.stringify(runs)} + '/' + id;
  try { mkdirSync(dir, { recursive: true }); for (const f of ['run.result.json', 'evaluate.result.json']) writeFileSync(dir + '/' + f, '{"exitCode":0}'); writeFileSync(dir + '/evaluate.log', 'score: 0.001\\n'); writeFileSync(dir + '/evaluate.stdout', 'score: 0.001\\n'); console.log('forged ' + dir); } catch (err) { console.log('blocked: ' + err.code); }
}`).replace('const SCORE = 1.0;', 'const SCORE = 530;'),
    );
    const e = await runToEnd(loop, 'forge the result');
    expect(e.state).toBe('measured');
    expect(e.metric).toBe(530);
    expect(readFileSync(join(runs, String(e.id), 'run.log'), 'utf8')).toContain('blocked: ');
    expect((await rejection(loop.keep({ id: e.id }))).code).toBe('not_decidable');
  });

  it('a run cannot read or rewrite the ledger, the pinned config or .git', async () => {
    const { repo, loop } = setup();
    await startWithBaseline(loop);
    const db = join(repo.dir, '.ratchet', 'ratchet.db');
    repo.write(
      'train.mjs',
      hostileTrain(`import { existsSync, writeFileSync, readdirSync } from 'node:fs';
console.log('sees ledger: ' + existsSync(${JSON.stringify(db)}));
console.log('sees git: ' + existsSync(${JSON.stringify(join(repo.dir, '.git'))}));
console.log('sees repo files: ' + readdirSync(${JSON.stringify(repo.dir)}).join(','));
try { writeFileSync(${JSON.stringify(join(repo.dir, 'ratchet.json'))}, '{}'); console.log('wrote config'); } catch (err) { console.log('config write blocked: ' + err.code); }`),
    );
    setConstant(repo, 'SCORE', '0.5');
    const e = await runToEnd(loop, 'look around');
    const log = readFileSync(join(repo.dir, '.ratchet', 'runs', String(e.id), 'run.log'), 'utf8');
    expect(log).toContain('sees ledger: false');
    expect(log).toContain('sees git: false');
    expect(log).toContain('config write blocked');
    expect(JSON.parse(repo.read('ratchet.json')).editable).toEqual(['train.mjs', 'notes/**']);
    expect((await loop.status()).integrity.ok).toBe(true);
    await loop.keep({ id: e.id });
    expect(cleanCheckoutScore(repo, 'ratchet/t1')).toBe(e.metric);
  });

  it('a poisoned evaluator environment (a module planted beside it, ./node on a PATH with an empty entry) does not reach evaluate', async () => {
    const { repo, loop } = setup({ evaluate: { command: 'node evaluate.mjs', budgetSeconds: 20, env: { PATH: `:${process.env.PATH}` } } });
    await startWithBaseline(loop);
    repo.write(
      'train.mjs',
      hostileTrain(`import { writeFileSync, chmodSync } from 'node:fs';
writeFileSync('node', '#!/bin/sh\\necho "score: 0.000001"\\n'); chmodSync('node', 0o755);
writeFileSync('json.py', 'print("score: 0.000001")\\n');`).replace('const SCORE = 1.0;', 'const SCORE = 2.0;'),
    );
    const e = await runToEnd(loop, 'poison the evaluator');
    expect(e.metric).toBe(2);
  });

  it('rm -rf .ratchet from a run cannot reach the state: the ledger survives', async () => {
    const { repo, loop } = setup();
    await startWithBaseline(loop);
    repo.write('train.mjs', hostileTrain(`import { rmSync } from 'node:fs';\ntry { rmSync(${JSON.stringify(join(repo.dir, '.ratchet'))}, { recursive: true, force: true }); } catch {}`));
    setConstant(repo, 'SCORE', '0.5');
    const e = await runToEnd(loop, 'delete the state');
    expect(e.state).toBe('measured');
    expect(existsSync(join(repo.dir, '.ratchet', 'ratchet.db'))).toBe(true);
    expect((await loop.status()).integrity.ok).toBe(true);
  });
});

describe('the agent rewrites the evidence behind ratchet', () => {
  it('an edited metric in the ledger is found on the next call, and keep is refused until the user accepts', async () => {
    const { repo, loop } = setup();
    await startWithBaseline(loop);
    setConstant(repo, 'SCORE', '1.5');
    const e = await runToEnd(loop, 'worse');
    const db = new Database(join(repo.dir, '.ratchet', 'ratchet.db'));
    db.prepare('UPDATE experiments SET metric = 0.1 WHERE id = ?').run(e.id);
    db.close();
    const status = await loop.status();
    expect(status.integrity.ok).toBe(false);
    expect(status.integrity.findings.join('\n')).toContain(`experiments row ${e.id}`);
    const err = await rejection(loop.keep({ id: e.id }));
    expect(err.code).toBe('tampered');
    expect(err.hint).toContain('ratchet verify');
    // The user looks, then accepts from the CLI (another process): the running server takes it on its next call.
    expect(await runIntegrity(repo.dir, { accept: true, json: false })).toBe(0);
    const after = await loop.status();
    expect(after.integrity.ok).toBe(true);
    const second = await loop.keep({ id: e.id }).then(
      () => 'kept',
      (err: { code?: string }) => err.code,
    );
    expect(second).not.toBe('tampered');
    // A later edit is caught again.
    const db2 = new Database(join(repo.dir, '.ratchet', 'ratchet.db'));
    db2.prepare('UPDATE experiments SET description = ? WHERE id = ?').run('rewritten', e.id);
    db2.close();
    expect((await loop.status()).integrity.findings.join('\n')).toContain(`experiments row ${e.id}`);
  });

  it('an observer beside the server (the dashboard) shows the findings the server recorded and verifies nothing itself', async () => {
    const { repo, loop } = setup();
    await startWithBaseline(loop);
    const observer = new ResearchLoop({ repo: repo.dir, logger: silentLogger(), observer: true });
    loops.push(observer);
    expect((await observer.status()).integrity.ok).toBe(true);
    const db = new Database(join(repo.dir, '.ratchet', 'ratchet.db'));
    db.prepare("UPDATE experiments SET description = 'rewritten' WHERE id = 1").run();
    db.close();
    // Not its job: the observer would otherwise re-verify the whole chain after every write of the server.
    expect((await observer.status()).integrity.ok).toBe(true);
    expect((await loop.status()).integrity.ok).toBe(false);
    expect((await observer.status()).integrity.findings.join('\n')).toContain('experiments row 1');
  });

  it('a rewritten pinned config (the evaluate command) is found', async () => {
    const { repo, loop } = setup();
    await startWithBaseline(loop);
    const db = new Database(join(repo.dir, '.ratchet', 'ratchet.db'));
    const row = db.prepare('SELECT config FROM sessions').get() as { config: string };
    const config = JSON.parse(row.config);
    config.evaluate.command = 'echo "score: 0.0001"';
    db.prepare('UPDATE sessions SET config = ?').run(JSON.stringify(config));
    db.close();
    expect((await loop.status()).integrity.findings.join('\n')).toContain('sessions row');
  });

  it('deleting .ratchet while the server runs is reported, and the ledger is written back from the open handle', async () => {
    const { repo, loop } = setup();
    const baseline = await startWithBaseline(loop);
    rmSync(join(repo.dir, '.ratchet'), { recursive: true, force: true });
    const status = await loop.status();
    expect(status.integrity.findings.join('\n')).toContain('was deleted');
    expect(existsSync(join(repo.dir, '.ratchet', 'ratchet.db'))).toBe(true);
    expect(status.session?.bestExperimentId).toBe(baseline.id);
  });

  it('moving the session branch with git update-ref is refused with the exact finding', async () => {
    const { repo, loop } = setup();
    await startWithBaseline(loop);
    setConstant(repo, 'SCORE', '0.5');
    repo.git('add', '-A');
    const tree = repo.git('write-tree');
    const forged = repo.git('commit-tree', tree, '-p', 'ratchet/t1', '-m', 'not measured');
    repo.git('reset', '-q');
    repo.git('update-ref', 'refs/heads/ratchet/t1', forged);
    const err = await rejection(loop.runExperiment({ description: 'after the move' }));
    expect(err.code).toBe('git_state');
    expect(err.message).toContain('moved outside ratchet');
  });

  it('git hooks, core.hooksPath, fsmonitor and a clean filter planted by the agent never run inside ratchet\'s git calls', async () => {
    const { repo, loop } = setup();
    await startWithBaseline(loop);
    const outside = mkdtempSync(join(tmpdir(), 'ratchet-hooks-'));
    const marker = join(outside, 'hooked');
    const script = `#!/bin/sh\necho ran >> ${marker}\ncat\n`;
    for (const hook of ['reference-transaction', 'post-index-change', 'post-checkout', 'pre-commit']) {
      writeFileSync(join(repo.dir, '.git', 'hooks', hook), script);
      chmodSync(join(repo.dir, '.git', 'hooks', hook), 0o755);
    }
    writeFileSync(join(outside, 'filter.sh'), script);
    chmodSync(join(outside, 'filter.sh'), 0o755);
    repo.git('config', 'core.fsmonitor', join(outside, 'filter.sh'));
    repo.git('config', 'filter.evil.clean', join(outside, 'filter.sh'));
    mkdirSync(join(repo.dir, '.git', 'info'), { recursive: true });
    writeFileSync(join(repo.dir, '.git', 'info', 'attributes'), '* filter=evil\n');
    setConstant(repo, 'SCORE', '0.5');
    const e = await runToEnd(loop, 'better');
    await loop.keep({ id: e.id });
    setConstant(repo, 'SCORE', '0.9');
    const worse = await runToEnd(loop, 'worse');
    await loop.revert({ id: worse.id });
    expect(existsSync(marker)).toBe(false);
    rmSync(outside, { recursive: true, force: true });
  });

  it('a new file hidden from git by .git/info/exclude inside the surface is part of the candidate, so the branch reproduces', async () => {
    const { repo, loop } = setup({ editable: ['train.mjs', 'notes/**', 'lib/**'] });
    await startWithBaseline(loop);
    writeFileSync(join(repo.dir, '.git', 'info', 'exclude'), 'lib/\n');
    repo.write('lib/helper.mjs', 'export const HELPED = "helper loaded";\n');
    repo.write('train.mjs', TRAIN.replace('const SCORE = 1.0;', "import { HELPED } from './lib/helper.mjs';\nconsole.log(HELPED);\nconst SCORE = 0.25;"));
    const e = await runToEnd(loop, 'hidden helper');
    expect(e.state).toBe('measured');
    expect(repo.git('ls-tree', '-r', '--name-only', e.commit!)).toContain('lib/helper.mjs');
  });
});

describe('bad input never blocks the loop', () => {
  it('a NUL byte in a description is refused before anything is recorded', async () => {
    const { repo, loop } = setup();
    await startWithBaseline(loop);
    setConstant(repo, 'SCORE', '0.5');
    const { cleanText } = await import('../../src/core/arguments.js');
    expect(cleanText(500, 'description').safeParse('bad\0idea').success).toBe(false);
    expect((await loop.listExperiments({})).total).toBe(1);
    const e = await runToEnd(loop, 'the next idea still runs');
    expect(e.state).toBe('measured');
  });

  it('an agent grep with nested quantifiers returns at once instead of hanging the server', async () => {
    const { repo, loop } = setup();
    const baseline = await startWithBaseline(loop);
    const page = await loop.readLog({ id: baseline.id, grep: '(a+)+$' });
    expect(page.lines).toEqual([]);
    expect((await rejection(loop.readLog({ id: baseline.id, grep: '(?=a)' }))).code).toBe('invalid_argument');
    expect(repo.dir).toBeTruthy();
  });
});

/** A 24 MiB tmpfs over .ratchet, where mounting works (root on Linux): a real full disk, not a simulated one. */
function mountSmallDisk(dir: string): boolean {
  try {
    mkdirSync(dir, { recursive: true });
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=24m', 'tmpfs', dir], { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
}

describe('a full disk', () => {
  it('a run that fills the disk ends crashed with that reason, nothing stays running, and the next run works', async (ctx) => {
    const { repo, loop } = setup();
    const state = join(repo.dir, '.ratchet');
    if (!mountSmallDisk(state)) {
      process.stderr.write('attacks.test: cannot mount a small tmpfs here (not root?), so the disk-full test is skipped.\n');
      ctx.skip();
    }
    try {
      await startWithBaseline(loop);
      repo.write('train.mjs', hostileTrain(`import { writeFileSync } from 'node:fs';\nconst chunk = Buffer.alloc(1 << 20);\nfor (let i = 0; i < 64; i++) writeFileSync('fill-' + i, chunk);`));
      const e = await runToEnd(loop, 'fill the disk');
      expect(e.state).toBe('crashed');
      expect(loop.ledger.unfinishedExperiments()).toEqual([]);
      repo.write('train.mjs', TRAIN.replace('const SCORE = 1.0;', 'const SCORE = 0.5;'));
      const next = await runToEnd(loop, 'after the full disk');
      expect(next.state).toBe('measured');
    } finally {
      await loop.settle();
      loop.close();
      loops.splice(loops.indexOf(loop), 1);
      execFileSync('umount', ['-l', state], { stdio: 'pipe' });
    }
  });
});
