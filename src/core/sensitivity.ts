// What the session can detect, from its calibration, and which setting would let it detect a smaller gain, at what cost.
import jStatModule from 'jstat';
import type { Config } from './config.js';
import { assertionCounts, trialScore, type RunCases } from './cases.js';
import { alphaPerLook } from './paired.js';
import { minimumDetectableEffect, type DecisionRule, type PooledNoise } from './statistics.js';

const { jStat } = jStatModule as unknown as { jStat: { normal: { inv(p: number, m: number, s: number): number } } };

export interface Sensitivity {
  /** The smallest true gain found 80% of the time within maxRepeats pairs, in metric units (points for a pass rate). */
  minDetectable: number | null;
  basis: 'cases' | 'pooled';
  /** One line per setting that would make it smaller, with the new figure and its cost in runs or time. */
  suggestions: string[];
}

const POWER_Z = 0.8416212335729143; // the 80th percentile of the standard normal

/**
 * The calibration's case results, read as a binomial model: each case's assertions pass with their observed rate
 * (shrunk half a trial toward 1/2, so an assertion that never varied still counts some noise), independently.
 */
export interface CaseModel {
  /** Case trials per run, and assertions checked per run. */
  trialsPerRun: number;
  checksPerRun: number;
  /** Trials of each case in one run (`ratchet eval --trials`). */
  trials: number;
  /** Variance of one trial's score (passed assertions), averaged over the case trials. */
  scoreVariance: number;
}

export function caseModel(runs: RunCases[]): CaseModel | null {
  if (!runs.length || !runs[0]!.trials.length) return null;
  const counts = assertionCounts(runs);
  const byCase = new Map<string, number[]>();
  for (const r of runs) for (const t of r.trials) (byCase.get(t.case) ?? byCase.set(t.case, []).get(t.case)!).push(trialScore(t));
  let variance = 0;
  let trialsPerRun = 0;
  let checksPerRun = 0;
  for (const [name, scores] of byCase) {
    const k = counts.get(name) ?? 1;
    const perRun = scores.length / runs.length;
    const p = (scores.reduce((a, s) => a + s, 0) + 0.5) / (k * scores.length + 1);
    variance += perRun * k * p * (1 - p);
    trialsPerRun += perRun;
    checksPerRun += perRun * k;
  }
  const trials = Math.max(...runs[0]!.trials.map((t) => t.trial));
  return { trialsPerRun, checksPerRun, trials, scoreVariance: variance / trialsPerRun };
}

/** The paired test's smallest detectable pass-rate gain (points), by the normal approximation of the paired difference. */
export function pairedMinDetectable(model: CaseModel, rule: DecisionRule, trialsFactor = 1): number {
  const z = jStat.normal.inv(1 - alphaPerLook(rule), 0, 1);
  const units = model.trialsPerRun * trialsFactor * rule.maxRepeats;
  const sdOfSum = Math.sqrt(2 * model.scoreVariance * units);
  return ((z + POWER_Z) * 100 * sdOfSum) / (model.checksPerRun * trialsFactor * rule.maxRepeats);
}

const fmt = (n: number) => Number(n.toPrecision(3)).toString();

/** The sensitivity of a session under the significant rule; null under greedy or before anything was calibrated. */
export function sensitivity(config: Config, noise: PooledNoise, model: CaseModel | null): Sensitivity | null {
  const rule = config.decision;
  if (rule.rule !== 'significant') return null;
  const unit = model ? ' points' : '';
  const mde = (r: DecisionRule, trialsFactor = 1): number | null => (model ? pairedMinDetectable(model, r, trialsFactor) : minimumDetectableEffect(noise, r));
  const now = mde(rule);
  if (now === null) return null;
  const suggestions: string[] = [];
  const m = rule.maxRepeats;
  const more = mde({ ...rule, maxRepeats: m * 2 });
  if (more !== null) suggestions.push(`decision.maxRepeats ${m} → ${m * 2}: detects ${fmt(more)}${unit}; a decision may then take up to ${4 * m} runs instead of ${2 * m}`);
  if (model) {
    const t = model.trials;
    suggestions.push(`${t * 2} trials per case instead of ${t} (ratchet eval --trials ${t * 2}, or trials in evals/suite.yaml): detects ${fmt(mde(rule, 2)!)}${unit}; each run takes about twice as long`);
  }
  const lower = Math.max(0.5, Math.round((rule.confidence - 0.1) * 100) / 100);
  if (lower < rule.confidence) {
    const relaxed = mde({ ...rule, confidence: lower });
    if (relaxed !== null) suggestions.push(`decision.confidence ${rule.confidence} → ${lower}: detects ${fmt(relaxed)}${unit} at no extra runs, but up to ${fmt((1 - lower) * 100)}% of the decisions on non-improvements may keep one, instead of ${fmt((1 - rule.confidence) * 100)}%`);
  }
  return { minDetectable: now, basis: model ? 'cases' : 'pooled', suggestions };
}
