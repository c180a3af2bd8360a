// The skill example end to end: the simulated model responds to the skill's wording, and `ratchet demo --example skill` keeps a real gain.
import { describe, it, expect, afterAll } from 'vitest';
import { spawn } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadSuite } from '../../src/eval/suite.js';
import { checkAssertions } from '../../src/eval/assertions.js';
import { CLI } from '../helpers/server.js';

const EXAMPLE = fileURLToPath(new URL('../../examples/skill-summarize', import.meta.url));
const SIM = join(EXAMPLE, 'sim-model.mjs');

interface Proposal {
  description: string;
  edits: { search: string; replace: string }[];
}
type Answer = (args: { skill: string; prompt: string; dir: string }) => { output: string };

const scratch = mkdtempSync(join(tmpdir(), 'ratchet-skill-sim-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const baseSkill = readFileSync(join(EXAMPLE, 'SKILL.md'), 'utf8');
const proposals = JSON.parse(readFileSync(join(EXAMPLE, 'proposals.json'), 'utf8')) as Proposal[];
function withProposal(start: string): string {
  const p = proposals.find((x) => x.description.startsWith(start));
  if (!p) throw new Error(`no proposal starting "${start}" in proposals.json`);
  return p.edits.reduce((text, e) => text.replace(e.search, e.replace), baseSkill);
}

/**
 * The suite's train pass rate for a skill text over `trials` answers per case, scored by the real assertion code.
 * Each answer is the sim's own agent-contract function, called in process so thousands of trials take seconds.
 */
async function passRate(skill: string, trials: number): Promise<{ rate: number; decisionFirst: number }> {
  const { answer } = (await import(SIM)) as { answer: Answer };
  const suite = loadSuite(EXAMPLE, 'evals');
  const root = mkdtempSync(join(scratch, 'answers-'));
  let passed = 0, total = 0, leadPassed = 0, leadTotal = 0;
  for (const c of suite.cases.filter((x) => !x.heldOut)) {
    const dir = join(root, c.id);
    mkdirSync(dir);
    for (const f of c.files) cpSync(f.source, join(dir, f.target), { recursive: true });
    const inputs = new Set(c.files.map((f) => f.target));
    for (let t = 1; t <= trials; t++) {
      // A fresh working dir each trial, as `ratchet eval` gives: only the case's own files.
      for (const name of readdirSync(dir)) if (!inputs.has(name)) rmSync(join(dir, name), { recursive: true });
      const { output } = answer({ skill, prompt: c.prompt, dir });
      const checked = await checkAssertions(c.assertions, output, { caseId: c.id, trial: t, workDir: dir, scratch, suiteDir: suite.dir, timeoutSeconds: 10 });
      if (!checked.ok) throw new Error(checked.reason);
      for (const r of checked.results) {
        passed += Number(r.pass);
        total++;
        if (/-first$/.test(r.name)) (leadPassed += Number(r.pass)), leadTotal++;
      }
    }
  }
  return { rate: (100 * passed) / total, decisionFirst: (100 * leadPassed) / leadTotal };
}

describe('the simulated model', () => {
  // 400 answers per case: a difference of two pass rates has a standard error near 0.5 points, so every bound sits
  // 6 or more standard errors from the expected difference (about +11 for the helpful phrase, 0 for the neutral one).
  it('passes more with a helpful phrase and the same with a neutral one', async () => {
    const base = await passRate(baseSkill, 400);
    const helpful = await passRate(withProposal('Lead with the decision'), 400);
    const neutral = await passRate(withProposal('Ask for a warm'), 400);
    expect(helpful.rate - base.rate).toBeGreaterThan(5);
    expect(helpful.decisionFirst - base.decisionFirst).toBeGreaterThan(40);
    expect(Math.abs(neutral.rate - base.rate)).toBeLessThan(3);
    expect(Math.abs(neutral.decisionFirst - base.decisionFirst)).toBeLessThan(8);
  });

  it('answers through `ratchet eval` as an agent command, with usage and the held-out rate', async () => {
    const { code, stdout } = await runCli(['eval', 'evals', '--repo', EXAMPLE, '--trials', '1', '--agent', `node '${SIM}'`]);
    expect(code).toBe(0);
    expect(stdout).toMatch(/^pass_rate: [\d.]+$/m);
    expect(stdout).toMatch(/^errors: 0$/m);
    expect(stdout).toMatch(/^tokens: \d+$/m);
    expect(stdout).toMatch(/^held_out_pass_rate: [\d.]+$/m);
  });
});

describe('ratchet demo --example skill', () => {
  // Three proposals (two real gains, one neutral) through a real server and real `ratchet eval` steps: a few minutes.
  it('runs the loop over MCP, two at a time where there are two CPUs, prints each verdict, and keeps a real gain', { timeout: 900_000 }, async () => {
    const { code, stdout, stderr } = await runCli(['demo', '--example', 'skill', '--experiments', '3']);
    // The demo leaves its repo for a person to inspect; a test has no one to look.
    const repo = /^ratchet demo: skill in (.+)$/m.exec(stdout)?.[1];
    const config = repo ? (JSON.parse(readFileSync(join(repo, 'ratchet.json'), 'utf8')) as { parallel?: number }) : null;
    if (repo) rmSync(repo, { recursive: true, force: true });
    expect(code, `${stdout}\n${stderr}`).toBe(0);
    expect(stdout).toContain('refused: [surface_violation]');
    // One line per decided experiment: one per proposal, and a "(#N carried onto the new best)" one for each re-measured as stale.
    const reports = stdout.split('\n').filter((l) => /^#\d+ .* → (KEEP|revert|stale)/.test(l));
    const headers = reports.filter((l) => !l.includes('carried onto the new best'));
    expect(headers).toHaveLength(3);
    expect(reports.some((h) => h.endsWith('→ KEEP'))).toBe(true);
    // Each experiment is followed by the decision layer's own lines, ending with its reason.
    expect(stdout.match(/^ {4}why: /gm)).toHaveLength(reports.length);
    expect(stdout).toContain('The demo kept at least one measured improvement.');
    expect(stdout).toMatch(/What was kept \(SKILL\.md\):\n(?:-.*\n)*\+/);
    if (availableParallelism() >= 2) {
      expect(config?.parallel).toBe(2);
      // Three proposals make one pair and one alone: one line, from status, with both of the pair running.
      expect(stdout.match(/^in flight: /gm)).toHaveLength(1);
      const pair = /^in flight: #(\d+) \(running\), #(\d+) \(running\)$/m.exec(stdout);
      expect(pair, stdout).not.toBeNull();
      const decided = headers.map((h) => /^#(\d+) /.exec(h)![1]);
      expect(decided.slice(0, 2).sort()).toEqual([pair![1], pair![2]].sort());
    } else {
      expect(config?.parallel).toBeUndefined();
      expect(stdout).toContain('One proposal at a time');
      expect(stdout).not.toContain('in flight:');
    }
  });

  it('names the examples when asked for one that does not exist', async () => {
    const { code, stderr } = await runCli(['demo', '--example', 'nope']);
    expect(code).toBe(2);
    expect(stderr).toContain('--example tiny-lm or --example skill');
  });

  it('refuses an --experiments that is not a whole number', async () => {
    const { code, stderr } = await runCli(['demo', '--experiments', 'two']);
    expect(code).toBe(2);
    expect(stderr).toContain('--experiments must be a whole number');
  });
});

function runCli(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
