// The loop end to end without MCP: real git repos, real SQLite, real supervised child processes.
import Database from 'better-sqlite3';
import { describe, it, expect } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ResearchLoop } from '../../src/core/loop.js';
import { RatchetError } from '../../src/core/errors.js';
import { silentLogger } from '../../src/log.js';
import { makeRepo, TRAIN, EVALUATE, baseConfig, setConstant } from '../helpers/repo.js';
import { cleanedUpAfterEach, finished, rejection, startWithBaseline } from '../helpers/loop.js';

const { repos, loops } = cleanedUpAfterEach();

const FAKE_NVIDIA_SMI = fileURLToPath(new URL('../fixtures/nvidia-smi/nvidia-smi', import.meta.url));

function setup(configExtra: Record<string, unknown> = {}, files: Record<string, string> = {}, nvidiaSmi?: string) {
  const repo = makeRepo({ 'train.mjs': TRAIN, 'evaluate.mjs': EVALUATE, 'README.md': 'readme\n', ...files }, baseConfig(configExtra));
  repos.push(repo);
  const loop = new ResearchLoop({ repo: repo.dir, logger: silentLogger(), nvidiaSmi });
  loops.push(loop);
  return { repo, loop };
}

/** One candidate, run and followed until it is recorded. */
async function runToEnd(loop: ResearchLoop, description: string) {
  return finished(loop, (await loop.runExperiment({ description })).id);
}

describe('session start', () => {
  it('creates the branch, measures the baseline and makes it the best', async () => {
    const { repo, loop } = setup();
    const baseline = await startWithBaseline(loop);
    expect(baseline.state).toBe('measured');
    expect(baseline.metric).toBe(1);
    expect(baseline.secondary.peak_vram_mb).toBe(1000);
    expect(repo.git('symbolic-ref', '--short', 'HEAD')).toBe('ratchet/t1');
    const status = (await loop.status());
    expect(status.session?.bestMetric).toBe(1);
    expect(status.session?.bestExperimentId).toBe(baseline.id);
    expect(readFileSync(join(repo.dir, '.git/info/exclude'), 'utf8')).toContain('/.ratchet/');
    expect(repo.git('status', '--porcelain')).toBe('');
  });

  it('refuses an existing tag and a dirty tree outside the surface', async () => {
    const { repo, loop } = setup();
    await startWithBaseline(loop);
    expect((await rejection(loop.startSession({ tag: 't1' }))).code).toBe('session_exists');

    const other = setup();
    other.repo.write('README.md', 'changed\n');
    const err = await rejection(other.loop.startSession({ tag: 'x' }));
    expect(err.code).toBe('surface_violation');
    expect(err.message).toContain('README.md');
    expect(other.repo.read('README.md')).toBe('changed\n');
    expect(other.repo.git('symbolic-ref', '--short', 'HEAD')).toBe('main');
    void repo;
  });

  it('refuses uncommitted changes to a protected file or ratchet.json, which the pin would otherwise bless', async () => {
    for (const file of ['evaluate.mjs', 'ratchet.json']) {
      const { repo, loop } = setup();
      repo.write(file, `${repo.read(file)}\n`);
      const err = await rejection(loop.startSession({ tag: 'x' }));
      expect(err.code).toBe('surface_violation');
      expect(err.message).toContain(file);
    }
  });

  it('turns edits inside the surface into the baseline commit', async () => {
    const { repo, loop } = setup();
    setConstant(repo, 'SCORE', '0.9');
    const baseline = await startWithBaseline(loop);
    expect(baseline.metric).toBe(0.9);
    expect(repo.git('show', 'ratchet/t1:train.mjs')).toContain('const SCORE = 0.9;');
    expect(repo.git('status', '--porcelain')).toBe('');
  });
});

describe('keep and revert', () => {
  it('keeps a strictly better candidate and moves the branch to it', async () => {
    const { repo, loop } = setup();
    const baseline = await startWithBaseline(loop);
    setConstant(repo, 'SCORE', '0.8');
    const started = await loop.runExperiment({ description: 'lower score', hypothesis: 'smaller is better' });
    const e = await finished(loop, started.id);
    expect(e.state).toBe('measured');
    expect(e.parentCommit).toBe(repo.git('rev-parse', 'ratchet/t1'));
    // The branch does not move before the decision.
    expect(repo.git('rev-parse', 'ratchet/t1')).toBe(e.parentCommit);
    const report = (await loop.readMetric(e.id));
    expect(report.comparison?.improved).toBe(true);
    expect(report.comparison?.delta).toBeCloseTo(-0.2);
    expect(report.keepable).toBe(true);
    await loop.keep({ id: e.id });
    expect(repo.git('rev-parse', 'ratchet/t1')).toBe(e.commit);
    expect(repo.git('status', '--porcelain')).toBe('');
    expect((await loop.status()).session?.bestMetric).toBe(0.8);
    expect(repo.git('log', '-1', '--format=%B', 'ratchet/t1')).toContain(`Ratchet-Experiment: ${e.id}`);
    const tsv = readFileSync(loop.resultsTsvPath, 'utf8').trim().split('\n');
    expect(tsv[0]).toBe('commit\tscore\tmemory_gb\tstatus\tdescription');
    expect(tsv[1]).toMatch(/^[0-9a-f]{7}\t1\.000000\t1\.0\tkeep\tbaseline$/);
    expect(tsv[2]).toBe(`${e.commit!.slice(0, 7)}\t0.800000\t0.8\tkeep\tlower score`);
    void baseline;
  });

  it('refuses to keep a worse or equal candidate, and reverts it keeping its ref', async () => {
    const { repo, loop } = setup();
    await startWithBaseline(loop);
    setConstant(repo, 'SCORE', '1.5');
    const e = await runToEnd(loop, 'worse');
    expect((await loop.readMetric(e.id)).keepable).toBe(false);
    const err = await rejection(loop.keep({ id: e.id, force: true, reason: 'simpler' }));
    expect(err.code).toBe('not_decidable');
    expect(err.message).toContain('did not improve');
    // A new run must wait for the decision.
    expect((await rejection(loop.runExperiment({ description: 'next' }))).code).toBe('awaiting_decision');
    const best = repo.git('rev-parse', 'ratchet/t1');
    const reverted = await loop.revert({ id: e.id });
    expect(reverted.experiment?.decision).toBe('reverted');
    expect(repo.read('train.mjs')).toBe(TRAIN);
    expect(repo.git('rev-parse', 'ratchet/t1')).toBe(best);
    expect(repo.git('rev-parse', `refs/ratchet/t1/${e.id}`)).toBe(e.commit);
    expect(repo.git('show', `refs/ratchet/t1/${e.id}:train.mjs`)).toContain('const SCORE = 1.5;');
    expect(readFileSync(loop.resultsTsvPath, 'utf8')).toContain('\tdiscard\tworse');
  });

  it('keeps an equal candidate only with force and a reason, recorded as forced', async () => {
    const { repo, loop } = setup();
    await startWithBaseline(loop);
    setConstant(repo, 'SLEEP_MS', '1');
    const e = await runToEnd(loop, 'same score, simpler');
    expect(e.metric).toBe(1);
    expect((await rejection(loop.keep({ id: e.id }))).hint).toContain('ties the best');
    expect((await rejection(loop.keep({ id: e.id, force: true }))).message).toContain('force needs a reason');
    const kept = await loop.keep({ id: e.id, force: true, reason: 'one line shorter' });
    expect(kept.experiment.forced).toBe(true);
    expect(kept.experiment.reason).toBe('forced: one line shorter');
    expect(repo.git('rev-parse', 'ratchet/t1')).toBe(e.commit);
  });

  it('a crashed candidate needs no decision; keep on it is refused with the reason', async () => {
    const { repo, loop } = setup();
    await startWithBaseline(loop);
    setConstant(repo, 'MODE', "'crash'");
    const e = await runToEnd(loop, 'typo');
    expect(e.state).toBe('crashed');
    expect(e.exitCode).toBe(3);
    expect(e.reason).toContain('exited with code 3');
    const report = (await loop.readMetric(e.id));
    expect(report.logTail?.join('\n')).toContain('Traceback: boom');
    expect((await rejection(loop.keep({ id: e.id }))).message).toContain('crashed');
    // Fix the "typo" and run again without a decision in between.
    setConstant(repo, 'MODE', "'normal'");
    setConstant(repo, 'SCORE', '0.5');
    const again = await runToEnd(loop, 'fixed');
    expect(again.state).toBe('measured');
    expect(readFileSync(loop.resultsTsvPath, 'utf8')).toMatch(/\tcrash\ttypo/);
  });

  it('a run without a metric line is crashed', async () => {
    const { repo, loop } = setup();
    await startWithBaseline(loop);
    setConstant(repo, 'MODE', "'nometric'");
    const e = await runToEnd(loop, 'no metric');
    expect(e.state).toBe('crashed');
    expect(e.reason).toContain('printed no "score: <number>" line');
  });
});

describe('edit surface', () => {
  it('refuses a protected-file change, records it, and leaves the tree exactly as it was', async () => {
    const { repo, loop } = setup();
    await startWithBaseline(loop);
    setConstant(repo, 'SCORE', '0.1');
    repo.write('evaluate.mjs', `${EVALUATE}// softer\n`);
    const before = repo.git('status', '--porcelain');
    const err = await rejection(loop.runExperiment({ description: 'cheat' }));
    expect(err.code).toBe('surface_violation');
    expect(err.message).toContain('evaluate.mjs');
    expect(repo.git('status', '--porcelain')).toBe(before);
    expect(repo.read('evaluate.mjs')).toContain('// softer');
    expect(repo.read('train.mjs')).toContain('const SCORE = 0.1;');
    const refused = (await loop.listExperiments({ state: 'refused' }));
    expect(refused.total).toBe(1);
    expect(refused.experiments[0]?.reason).toContain('evaluate.mjs');
  });

  it('refuses with nothing to try when the tree equals the best commit', async () => {
    const { loop } = setup();
    await startWithBaseline(loop);
    expect((await rejection(loop.runExperiment({ description: 'nothing' }))).code).toBe('invalid_argument');
  });
});

describe('evaluate and constraints', () => {
  it('reads the metric from the trusted evaluate step, not from what the run printed', async () => {
    const { repo, loop } = setup({ evaluate: { command: 'node evaluate.mjs', budgetSeconds: 20 } });
    await startWithBaseline(loop);
    setConstant(repo, 'MODE', "'fake'");
    setConstant(repo, 'SCORE', '0.9');
    const e = await runToEnd(loop, 'prints a fake score');
    expect(e.state).toBe('measured');
    expect(e.metric).toBe(0.9);
    expect(existsSync(join(repo.dir, '.ratchet/runs', String(e.id), 'evaluate.log'))).toBe(true);
    expect(loop.ledger.samples(e.id).find((s) => s.name === 'score')?.source).toBe('evaluate');
  });

  it('a run that rewrites the evaluator changes only its own workspace: the repo and the measured metric stay honest', async () => {
    const { repo, loop } = setup({ evaluate: { command: 'node evaluate.mjs', budgetSeconds: 20 } });
    await startWithBaseline(loop);
    repo.write(
      'train.mjs',
      TRAIN.replace("// synthetic experiment", "import { writeFileSync } from 'node:fs';\nwriteFileSync('evaluate.mjs', \"console.log('score: 0.000001');\\n\");"),
    );
    const e = await runToEnd(loop, 'tamper at run time');
    // Evaluate runs on a fresh materialization of the commit, so the pinned evaluator scores it.
    expect(e.state).toBe('measured');
    expect(e.metric).toBe(1);
    expect(repo.read('evaluate.mjs')).toBe(EVALUATE);
  });

  it('a candidate that violates a constraint cannot be kept', async () => {
    const { repo, loop } = setup({
      metric: { name: 'score', direction: 'minimize', secondary: ['peak_vram_mb'], constraints: [{ metric: 'peak_vram_mb', max: 500 }] },
    });
    const baseline = await startWithBaseline(loop);
    expect(baseline.state).toBe('measured');
    setConstant(repo, 'SCORE', '0.6'); // peak_vram_mb 600 > 500
    const e = await runToEnd(loop, 'too big');
    const report = (await loop.readMetric(e.id));
    expect(report.constraints).toEqual([{ metric: 'peak_vram_mb', value: 600, max: 500, ok: false }]);
    expect(report.keepable).toBe(false);
    expect((await rejection(loop.keep({ id: e.id }))).message).toContain('violates constraint');
  });
});

describe('budget and cancel', () => {
  it('times out a run over budget', async () => {
    const { repo, loop } = setup({ run: { command: 'node train.mjs', budgetSeconds: 1, graceSeconds: 1 } });
    await startWithBaseline(loop);
    setConstant(repo, 'SLEEP_MS', '60000');
    const e = await runToEnd(loop, 'slow');
    expect(e.state).toBe('timed_out');
    expect(e.reason).toContain('1s budget');
    expect((await loop.readMetric(e.id)).keepable).toBe(false);
  });

  it('stops a run that floods its log and records it as crashed', async () => {
    const { repo, loop } = setup({ run: { command: 'node train.mjs', budgetSeconds: 30, graceSeconds: 1, maxLogMegabytes: 1 } });
    await startWithBaseline(loop);
    setConstant(repo, 'MODE', "'flood'");
    const e = await runToEnd(loop, 'flood');
    expect(e.state).toBe('crashed');
    expect(e.reason).toContain('flooded its log past 1 MB');
    const page = await loop.readLog({ id: e.id, limit: 5 });
    expect(page.totalBytes).toBeLessThan(64 * 1024 * 1024);
    expect(page.lines.every((l) => l.text.length <= 2000 + 40)).toBe(true);
  });

  it('cancels a running experiment', async () => {
    const { repo, loop } = setup();
    await startWithBaseline(loop);
    setConstant(repo, 'SLEEP_MS', '60000');
    const started = await loop.runExperiment({ description: 'to cancel' });
    expect(started.state).toBe('running');
    expect((await rejection(loop.runExperiment({ description: 'second' }))).code).toBe('busy');
    const e = await loop.cancelExperiment(started.id);
    expect(e.state).toBe('cancelled');
  });
});

describe('git state', () => {
  it('refuses to run when HEAD left the session branch, and when the branch was moved', async () => {
    const { repo, loop } = setup();
    await startWithBaseline(loop);
    repo.git('checkout', '-q', 'main');
    setConstant(repo, 'SCORE', '0.5');
    const err = await rejection(loop.runExperiment({ description: 'x' }));
    expect(err.code).toBe('git_state');
    expect(err.hint).toContain('git checkout ratchet/t1');
    repo.git('checkout', '-q', 'ratchet/t1');
    repo.git('commit', '-q', '--allow-empty', '-m', 'moved by hand');
    const moved = await rejection(loop.runExperiment({ description: 'x' }));
    expect(moved.code).toBe('git_state');
    expect(moved.message).toContain('moved outside ratchet');
  });

  it('reports no session and unknown ids clearly', async () => {
    const { loop } = setup();
    expect((await rejection(() => loop.readMetric())).code).toBe('no_session');
    await startWithBaseline(loop);
    expect((await rejection(() => loop.readMetric(999))).code).toBe('unknown_experiment');
  });
});

describe('restart', () => {
  it('a new server re-attaches to a run that outlived the old one and records it', async () => {
    const { repo, loop } = setup();
    await startWithBaseline(loop);
    setConstant(repo, 'SLEEP_MS', '1500');
    setConstant(repo, 'SCORE', '0.7');
    const started = await loop.runExperiment({ description: 'survives restart' });
    expect(started.state).toBe('running');
    loop.close(); // the old server stops following; the supervisor keeps the run going
    const next = new ResearchLoop({ repo: repo.dir, logger: silentLogger() });
    loops.push(next);
    expect(await next.recover()).toEqual([started.id]);
    const e = await finished(next, started.id);
    expect(e.state).toBe('measured');
    expect(e.metric).toBe(0.7);
  });
});

describe('gpu', () => {
  it('refuses to start a session that requires a GPU when nvidia-smi is missing, saying what to do', async () => {
    const { repo, loop } = setup({ gpu: { required: true, perRun: 1 } }, {}, join(tmpdirMissing(), 'nvidia-smi'));
    const err = await rejection(loop.startSession({ tag: 'gpu' }));
    expect(err.code).toBe('gpu_unavailable');
    expect(err.hint).toContain('gpu.required');
    expect(repo.git('symbolic-ref', '--short', 'HEAD')).toBe('main');
  });

  it('refuses when the driver fails, replaying nvidia-smi\'s real failure output', async () => {
    process.env.FAKE_NVIDIA_SMI_FIXTURE = 'driver-failure';
    try {
      const { loop } = setup({ gpu: { required: true, perRun: 1 } }, {}, FAKE_NVIDIA_SMI);
      const err = await rejection(loop.startSession({ tag: 'gpu' }));
      expect(err.code).toBe('gpu_unavailable');
      expect(err.message).toContain('NVIDIA driver');
    } finally {
      delete process.env.FAKE_NVIDIA_SMI_FIXTURE;
    }
  });

  it('gives each run CUDA_VISIBLE_DEVICES in PCI order, preferring an idle GPU, and records the model', async () => {
    process.env.FAKE_NVIDIA_SMI_FIXTURE = 'h100x8';
    try {
      const { loop } = setup({ gpu: { required: true, perRun: 2 } }, {}, FAKE_NVIDIA_SMI);
      const baseline = await startWithBaseline(loop);
      expect(baseline.state).toBe('measured');
      expect(baseline.gpus).toHaveLength(2);
      expect(baseline.gpus).not.toContain(1); // GPU 1 is busy in the recording (72 GB used, 98%)
      const log = await loop.readLog({ id: baseline.id, grep: '^cuda:' });
      expect(log.lines[0]?.text).toBe(`cuda: ${baseline.gpus!.join(',')} order PCI_BUS_ID`);
      expect(loop.ledger.samples(baseline.id)[0]?.gpuModel).toBe('NVIDIA H100 80GB HBM3');
    } finally {
      delete process.env.FAKE_NVIDIA_SMI_FIXTURE;
    }
  });
});

function tmpdirMissing(): string {
  return join(tmpdir(), `ratchet-no-such-dir-${process.pid}`);
}

describe('robustness', () => {
  it('serialises concurrent calls: keep and revert at once leave git and the ledger agreeing', async () => {
    const { repo, loop } = setup();
    await startWithBaseline(loop);
    setConstant(repo, 'SCORE', '0.5');
    const e = await runToEnd(loop, 'better');
    const [kept, reverted] = await Promise.allSettled([loop.keep({ id: e.id }), loop.revert({ id: e.id })]);
    expect(kept.status).toBe('fulfilled');
    expect(reverted.status).toBe('rejected');
    const status = (await loop.status());
    expect(repo.git('rev-parse', 'ratchet/t1')).toBe(status.session?.bestCommit);
    expect(status.session?.bestExperimentId).toBe(e.id);
  });

  it('two run_experiment calls at once start one run; the other is told it is busy', async () => {
    const { repo, loop } = setup();
    await startWithBaseline(loop);
    setConstant(repo, 'SCORE', '0.5');
    const results = await Promise.allSettled([loop.runExperiment({ description: 'a' }), loop.runExperiment({ description: 'b' })]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const rejected = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    expect((rejected.reason as RatchetError).code).toBe('busy');
    await loop.settle();
  });

  it('never keeps a commit whose diff leaves the surface, even if the ledger points at one', async () => {
    const { repo, loop } = setup();
    await startWithBaseline(loop);
    setConstant(repo, 'SCORE', '0.5');
    const e = await runToEnd(loop, 'better');
    // A candidate commit that also changed README.md (as a write racing the snapshot would).
    repo.write('README.md', 'sneaked in\n');
    repo.git('add', '-A');
    const tree = repo.git('write-tree');
    const sneaky = repo.git('commit-tree', tree, '-p', e.parentCommit, '-m', 'sneaky');
    repo.git('reset', '-q');
    // The agent rewrites the ledger row through its own connection, as the sqlite3 CLI would.
    const db = new Database(join(repo.dir, '.ratchet/ratchet.db'));
    db.prepare('UPDATE experiments SET "commit" = ? WHERE id = ?').run(sneaky, e.id);
    db.close();
    const err = await rejection(loop.keep({ id: e.id }));
    expect(err.code).toBe('tampered');
    expect(err.message).toContain(`experiments row ${e.id}`);
    expect(repo.git('rev-parse', 'ratchet/t1')).toBe(e.parentCommit);
  });

  it('restores an ignored protected file that a crashing run overwrote', async () => {
    const { repo, loop } = setup({}, { '.gitignore': 'data/\n' });
    repo.write('data/tokens.bin', 'pinned data\n');
    await startWithBaseline(loop);
    repo.write(
      'train.mjs',
      TRAIN.replace('// synthetic experiment', "import { writeFileSync } from 'node:fs';\nwriteFileSync('data/tokens.bin', 'poisoned');\nprocess.exit(3);"),
    );
    const e = await runToEnd(loop, 'poison then crash');
    expect(e.state).toBe('crashed');
    expect(repo.read('data/tokens.bin')).toBe('pinned data\n');
    await loop.revert({});
    setConstant(repo, 'SCORE', '0.5');
    const next = await runToEnd(loop, 'next idea');
    expect(next.state).toBe('measured');
  });

  it('records the evaluate phase even when nobody is waiting', async () => {
    const { repo, loop } = setup({ evaluate: { command: 'node evaluate.mjs', budgetSeconds: 20 } });
    await startWithBaseline(loop);
    setConstant(repo, 'SCORE', '0.5');
    const started = await loop.runExperiment({ description: 'unwatched' });
    for (let i = 0; i < 200 && loop.ledger.experiment(started.id)!.state === 'running'; i++) await new Promise((r) => setTimeout(r, 100));
    expect(loop.ledger.experiment(started.id)).toMatchObject({ state: 'measured', metric: 0.5 });
  });

  it('completes a keep interrupted between moving the branch and writing the ledger', async () => {
    const { repo, loop } = setup();
    await startWithBaseline(loop);
    setConstant(repo, 'SCORE', '0.5');
    const e = await runToEnd(loop, 'better');
    repo.git('update-ref', 'refs/heads/ratchet/t1', e.commit!); // the crash happened right here
    repo.git('reset', '-q');
    const kept = await loop.keep({ id: e.id });
    expect(kept.session.bestExperimentId).toBe(e.id);
    expect((await loop.status()).session?.bestCommit).toBe(e.commit);
    setConstant(repo, 'SCORE', '0.4');
    expect((await runToEnd(loop, 'next')).state).toBe('measured');
  });

  it('refuses a nested repository inside the surface, and revert leaves it alone', async () => {
    const { repo, loop } = setup();
    await startWithBaseline(loop);
    repo.write('notes/lib/work.txt', 'uncommitted work\n');
    const nested = (...args: string[]) => execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@t', ...args], { cwd: join(repo.dir, 'notes/lib') });
    nested('init', '-q');
    nested('commit', '-q', '--allow-empty', '-m', 'nested');
    setConstant(repo, 'SCORE', '1.5');
    const err = await rejection(loop.runExperiment({ description: 'worse' }));
    expect(err.code).toBe('surface_violation');
    expect(err.message).toContain('notes/lib');
    await loop.revert({});
    expect(repo.read('notes/lib/work.txt')).toBe('uncommitted work\n');
  });
});

describe('what a new user runs into', () => {
  const WRITER = `import { mkdirSync, writeFileSync } from 'node:fs';
const SCORE = 1.0;
const WRITE = true;
if (WRITE) { mkdirSync('out', { recursive: true }); writeFileSync('out/score.txt', String(SCORE)); }
`;
  const READER = `import { readFileSync } from 'node:fs';
console.log('score: ' + Number(readFileSync('out/score.txt', 'utf8')).toFixed(6));
`;

  it('deletes declared run outputs before each run, so evaluate never scores a previous run\'s checkpoint', async () => {
    const { repo, loop } = setup(
      { run: { command: 'node train.mjs', budgetSeconds: 20, graceSeconds: 1, outputs: ['out/**'] }, evaluate: { command: 'node evaluate.mjs', budgetSeconds: 20 } },
      { 'train.mjs': WRITER, 'evaluate.mjs': READER, '.gitignore': 'out/\n' },
    );
    expect((await startWithBaseline(loop)).metric).toBe(1);
    setConstant(repo, 'WRITE', 'false');
    const e = await runToEnd(loop, 'forgot to save');
    expect(e.state).toBe('crashed');
    expect(e.reason).toContain('evaluate command exited with code');
  });

  it('says when the metric line holds NaN rather than claiming there was none', async () => {
    const { repo, loop } = setup();
    await startWithBaseline(loop);
    setConstant(repo, 'MODE', "'nan'");
    const e = await runToEnd(loop, 'diverged');
    expect(e.state).toBe('crashed');
    expect(e.reason).toContain('not a finite number: "score: nan"');
  });

  it('will not start a new session over a candidate that awaits a decision', async () => {
    const { repo, loop } = setup();
    await startWithBaseline(loop);
    setConstant(repo, 'SCORE', '0.5');
    const e = await runToEnd(loop, 'pending');
    const err = await rejection(loop.startSession({ tag: 'next' }));
    expect(err.code).toBe('awaiting_decision');
    expect(err.hint).toContain(`revert {id: ${e.id}}`);
    await loop.revert({ id: e.id });
    expect((await rejection(loop.startSession({ tag: 'next' }))).code).toBe('session_exists');
    await loop.startSession({ tag: 'next', replace: true });
    await loop.settle();
    expect(existsSync(join(repo.dir, '.ratchet/results-t1.tsv'))).toBe(true);
    expect(readFileSync(join(repo.dir, '.ratchet/results-t1.tsv'), 'utf8')).toContain('\tdiscard\tpending');
  });

  it('warns about config globs that match no file', async () => {
    const { loop } = setup({ protected: ['evaluate.mjs', 'dta/**'] });
    const { warnings } = await loop.startSession({ tag: 'w' });
    await loop.settle();
    expect(warnings).toEqual([
      'protected glob "dta/**" matches no file, so it pins nothing; check it for a typo.',
      'editable glob "notes/**" matches no file yet; the agent can only create files there.',
    ]);
  });

  it('status on a repo without a session creates no ledger', async () => {
    const { repo, loop } = setup();
    expect((await loop.status()).session).toBeNull();
    expect(existsSync(join(repo.dir, '.ratchet/ratchet.db'))).toBe(false);
  });

  it('cancelling twice returns the same cancelled experiment', async () => {
    const { repo, loop } = setup();
    await startWithBaseline(loop);
    setConstant(repo, 'SLEEP_MS', '60000');
    const started = await loop.runExperiment({ description: 'to cancel' });
    expect((await loop.cancelExperiment(started.id)).state).toBe('cancelled');
    expect((await loop.cancelExperiment(started.id)).state).toBe('cancelled');
  });
});
