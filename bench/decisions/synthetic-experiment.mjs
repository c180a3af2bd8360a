#!/usr/bin/env node
// The decision benchmark's experiment command: a noisy measurement of the candidate's true metric.
// Reads candidate.json {"truth": <true val_bpb of this code state>} from the working directory and prints
// `val_bpb: <truth + noise>`, noise ~ Normal(0, SIGMA) from a PRNG seeded by BENCH_SEED and
// RATCHET_EXPERIMENT_ID (unique per run, repeats included), so a whole benchmark replays exactly.
// With CURVE_STEPS=n > 0 it first prints a learning curve, `progress val_bpb=<v> step=<k>`, one line
// every STEP_MS ms, that converges on the same run's final value. No dependencies.
import { readFileSync } from 'node:fs';
import { hash, mulberry32 } from './prng.mjs';

const env = process.env;
const sigma = Number(env.SIGMA ?? '0');
const steps = Math.max(0, Math.floor(Number(env.CURVE_STEPS ?? '0')));
const stepMs = Math.max(0, Number(env.STEP_MS ?? '40'));
// Curve shape: starts A above the final value and decays with time constant tau (a fifth of the run).
const A = Number(env.CURVE_A ?? '0.3');
const tau = steps / 5;
const STEP_NOISE = 0.25; // per-step noise, as a fraction of SIGMA

const { truth } = JSON.parse(readFileSync('candidate.json', 'utf8'));
if (typeof truth !== 'number' || !Number.isFinite(truth)) {
  console.error('candidate.json: "truth" must be a finite number');
  process.exit(2);
}

const rand = mulberry32(hash(`${env.BENCH_SEED ?? '0'}:${env.RATCHET_EXPERIMENT_ID ?? '0'}`));
function gaussian() {
  const u = 1 - rand(); // (0, 1]
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
}

const runNoise = sigma * gaussian();
const final = truth + runNoise;
const fmt = (v) => v.toFixed(6);

if (steps > 0) {
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  for (let k = 1; k <= steps; k++) {
    await sleep(stepMs);
    const v = final + A * Math.exp(-k / tau) + STEP_NOISE * sigma * gaussian();
    console.log(`progress val_bpb=${fmt(v)} step=${k}`);
  }
}
console.log('---');
console.log(`val_bpb: ${fmt(final)}`);
