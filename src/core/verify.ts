// ratchet verify: trust, but rerun. Re-measures kept commits from clean materializations and compares them with the ledger.
import { rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { Config } from './config.js';
import type { Executor } from './executor/executor.js';
import type { Git } from './git.js';
import { formatNumber } from './format.js';
import { judge } from './measure.js';
import { prepareStep, figuresIn } from './steps.js';
import { criticalValue, pooledNoise, summarize } from './statistics.js';
import { Workspaces } from './workspace.js';

export type Reproduction = 'reproduced' | 'not reproduced' | 'could not run';

export interface CommitCheck {
  commit: string;
  experimentId: number | null;
  status: Reproduction;
  recorded: number[];
  remeasured: number[];
  why: string;
}

export interface VerifyTools {
  git: Git;
  executor: Executor;
  /** Scratch space outside the agent's tree view: workspaces and logs of the re-measurements. */
  scratchDir: string;
  cacheDir: string;
  hidden: string[];
  repo: string;
}

/**
 * Re-measures one commit `runs` times with the pinned run and evaluate steps and compares the
 * result with the samples the ledger recorded for it: a pure function of (commit, pinned config,
 * expected samples) plus an executor, so a remote verifier can call it the same way.
 */
export async function verifyCommit(tools: VerifyTools, input: { commit: string; experimentId?: number | null; config: Config; expected: number[]; noiseSd: number | null; runs: number }): Promise<CommitCheck> {
  const values: number[] = [];
  const base = { commit: input.commit, experimentId: input.experimentId ?? null, recorded: input.expected };
  for (let i = 0; i < input.runs; i++) {
    const measured = await measureOnce(tools, input.commit, input.config);
    if ('failure' in measured) return { ...base, status: 'could not run', remeasured: values, why: measured.failure };
    values.push(measured.value);
  }
  if (!input.expected.length) return { ...base, status: 'not reproduced', remeasured: values, why: 'the ledger holds no measurement of this commit' };
  const verdict = compareSamples(input.expected, values, input.noiseSd, input.config.decision);
  return { ...base, status: verdict.ok ? 'reproduced' : 'not reproduced', remeasured: values, why: verdict.why };
}

/**
 * Reproduced when the recorded mean and the re-measured mean differ by no more than the session's
 * noise allows at its confidence (a two-sample t interval with the pooled sd). A metric that
 * never varied must come out the same to a relative 1e-9.
 */
export function compareSamples(recorded: number[], remeasured: number[], noiseSd: number | null, rule: Config['decision']): { ok: boolean; why: string } {
  const a = summarize(recorded);
  const b = summarize(remeasured);
  const diff = Math.abs(a.mean! - b.mean!);
  const pooled = pooledNoise([recorded, remeasured].filter((g) => g.length > 1));
  const sds = [noiseSd, Number.isFinite(pooled.sd) && pooled.df > 0 ? pooled.sd : null].filter((x): x is number => x !== null && x > 0);
  const sd = sds.length ? Math.max(...sds) : 0;
  if (sd === 0) {
    const ok = diff <= 1e-9 * Math.max(1, Math.abs(a.mean!));
    return { ok, why: ok ? `same value ${b.mean} as recorded` : `recorded ${a.mean}, re-measured ${b.mean}; the metric never varied, so any difference counts` };
  }
  const df = Math.max(1, pooled.df + (noiseSd ? 10 : 0));
  const t = criticalValue({ ...rule, maxRepeats: 1 }, df);
  const half = t * sd * Math.sqrt(1 / recorded.length + 1 / remeasured.length);
  const ok = diff <= half;
  return { ok, why: `recorded mean ${fmt(a.mean!)} (n=${recorded.length}), re-measured ${fmt(b.mean!)} (n=${remeasured.length}); difference ${fmt(diff)} ${ok ? 'within' : 'beyond'} the noise allowance ±${fmt(half)} (sd ${fmt(sd)})` };
}

/** One run (and evaluate) of a commit in fresh workspaces: the same steps the loop takes, without a ledger. */
async function measureOnce(tools: VerifyTools, commit: string, config: Config): Promise<{ value: number } | { failure: string }> {
  const id = Number.parseInt(randomBytes(3).toString('hex'), 16);
  const dir = join(tools.scratchDir, String(id));
  const sandbox = await tools.executor.sandbox();
  const place = { workspaces: new Workspaces(join(dir, 'ws'), tools.git), repo: tools.repo, dir, cacheDir: tools.cacheDir, hidden: tools.hidden, sandboxed: sandbox.kind !== 'none' };
  try {
    for (const phase of config.evaluate ? (['run', 'evaluate'] as const) : (['run'] as const)) {
      const token = `verify-${id}-${phase}-${randomBytes(4).toString('hex')}`;
      const request = await prepareStep(place, { id, phase, commit, config, token, env: { RATCHET_VERIFY: '1' }, gpuDevices: [] });
      const result = await (await tools.executor.start(request)).done;
      if (!result) return { failure: `the ${phase} supervisor died without a result` };
      const failure = judge(result, phase, config);
      if (failure) return { failure: failure.reason };
    }
    const figures = figuresIn(dir, config);
    return 'failure' in figures ? figures : { value: figures.metric };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const fmt = formatNumber;
