// `ratchet show <id>`: one experiment in full from the built CLI, on a real session run by the core loop.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ResearchLoop } from '../../src/core/loop.js';
import { silentLogger } from '../../src/log.js';
import { finished, startWithBaseline } from '../helpers/loop.js';
import { makeRepo, TRAIN, EVALUATE, baseConfig, setConstant, type TestRepo } from '../helpers/repo.js';

const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));
const ratchet = (args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, CLAUDE_PROJECT_DIR: '' } });

let repo: TestRepo;
let loop: ResearchLoop;
let baselineId: number;
let keptId: number;
let crashedId: number;
let hugeId: number;

beforeAll(async () => {
  repo = makeRepo({ 'train.mjs': TRAIN, 'evaluate.mjs': EVALUATE }, baseConfig({ sandbox: 'off', decision: { rule: 'significant' } }));
  loop = new ResearchLoop({ repo: repo.dir, logger: silentLogger() });
  baselineId = (await startWithBaseline(loop)).id;
  setConstant(repo, 'SCORE', '0.5');
  const kept = await finished(loop, (await loop.runExperiment({ description: 'halve the score', hypothesis: 'lower is better' })).id);
  await loop.keep({ id: kept.id });
  keptId = kept.id;
  setConstant(repo, 'MODE', "'crash'");
  crashedId = (await finished(loop, (await loop.runExperiment({ description: 'crash on purpose' })).id)).id;
  await loop.revert({});
  // A change of over a megabyte whose run prints terminal escape sequences.
  const filler = Array.from({ length: 12_000 }, (_, i) => `// filler line ${i} ${'x'.repeat(90)}`).join('\n');
  repo.write('train.mjs', TRAIN.replace('// synthetic experiment', `// synthetic experiment\nconsole.log('\\u001b]0;retitled\\u0007ESC-TEST \\u001b[31mred');\n${filler}\n`));
  hugeId = (await finished(loop, (await loop.runExperiment({ description: 'a huge change' })).id)).id;
  await loop.revert({ id: hugeId }).catch(() => undefined);
});

afterAll(async () => {
  await loop.settle();
  loop.close();
  repo.cleanup();
});

describe('ratchet show', () => {
  it('shows a huge diff in part, with a note, and never obeys escape sequences the run printed', () => {
    const r = ratchet(['show', String(hugeId), '--repo', repo.dir]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.length).toBeLessThan(700 * 1024);
    expect(r.stdout).toContain('The diff is over 524288 bytes');
    expect(r.stdout).toContain('ESC-TEST');
    expect(r.stdout).not.toContain('\u001b');
    expect(r.stdout).not.toContain('\u0007');
    expect(r.stdout).toContain('\\x1b]0;retitled\\x07');
  });

  it('prints a kept experiment: verdict, samples, duration, the diff against its parent and the log tail', () => {
    const r = ratchet(['show', String(keptId), '--repo', repo.dir]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain(`#${keptId} candidate in session t1: halve the score`);
    expect(r.stdout).toContain('hypothesis: lower is better');
    expect(r.stdout).toContain('state: measured, kept');
    expect(r.stdout).toContain('score (minimize): 0.5');
    expect(r.stdout).toMatch(/verdict: improved \(significant\), effect 0\.5 \[[-\d.e]+, [-\d.e]+\], \d+ run\(s\)/);
    expect(r.stdout).toMatch(/duration: [\d.]+ s/);
    // The unified diff of the candidate's commit against the best it was built on.
    expect(r.stdout).toContain('--- a/train.mjs');
    expect(r.stdout).toContain('-const SCORE = 1.0;');
    expect(r.stdout).toContain('+const SCORE = 0.5;');
    expect(r.stdout).toMatch(/--- log: last lines of .*run\.log ---\n[\s\S]*score: +0\.500000/);
  });

  it('--json gives the same detail as data', () => {
    const r = ratchet(['show', String(keptId), '--repo', repo.dir, '--json']);
    expect(r.status, r.stderr).toBe(0);
    const d = JSON.parse(r.stdout);
    expect(d.experiment).toMatchObject({ id: keptId, decision: 'kept', metric: 0.5 });
    expect(d.verdict.verdict).toBe('improved');
    expect(d.interval).toHaveLength(2);
    // The candidate's run, and the best re-measured beside it (a repeat of this experiment).
    expect(d.samples).toContainEqual(expect.objectContaining({ run: keptId, side: 'candidate', name: 'score', value: 0.5 }));
    expect(d.samples).toContainEqual(expect.objectContaining({ side: 'best', name: 'score', value: 1 }));
    expect(d.diff).toMatch(/^diff --git a\/train\.mjs b\/train\.mjs/);
    expect(d.logTail).toContain('score:');
  });

  it('shows a crash with its log, and says why the baseline has no diff', () => {
    const crashed = ratchet(['show', String(crashedId), '--repo', repo.dir]);
    expect(crashed.status, crashed.stderr).toBe(0);
    expect(crashed.stdout).toContain('state: crashed');
    expect(crashed.stdout).toContain("+const MODE = 'crash';");
    expect(crashed.stdout).toContain('Traceback: boom');
    const baseline = ratchet(['show', String(baselineId), '--repo', repo.dir]);
    expect(baseline.stdout).toContain('The baseline is the commit the session started from');
  });

  it('refuses a bad id, an unknown id and a repo without a ledger, saying what to do', () => {
    const bad = ratchet(['show', 'latest', '--repo', repo.dir]);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('show needs an experiment id');
    const missing = ratchet(['show', '--repo', repo.dir]);
    expect(missing.status).toBe(2);
    const unknown = ratchet(['show', '999', '--repo', repo.dir]);
    expect(unknown.status).toBe(1);
    expect(unknown.stderr).toContain('No experiment 999');
    expect(unknown.stderr).toContain('Next:');
    const empty = mkdtempSync(join(tmpdir(), 'ratchet-show-'));
    try {
      const none = ratchet(['show', '1', '--repo', empty]);
      expect(none.status).toBe(1);
      expect(none.stderr).toContain('no ratchet ledger yet');
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });
});
