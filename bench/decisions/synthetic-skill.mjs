#!/usr/bin/env node
// The pass-rate scenario's experiment: a simulated skill eval with known true pass rates and binomial noise.
// Reads skill.json {"lift": <true gain in points of this SKILL.md state>} from the working directory. Each of CASES
// cases has ASSERTS binary assertions whose true pass probability is fixed by BENCH_SEED (from hard to easy, mean about
// 57%) plus lift/100; each run draws TRIALS trials of every case from a PRNG seeded by BENCH_SEED and
// RATCHET_EXPERIMENT_ID, and prints what `ratchet eval` prints: case and assert lines, then pass_rate.
// With CASE_LINES=0 it prints pass_rate alone, as an eval without case results would. No dependencies.
import { readFileSync } from 'node:fs';
import { hash, mulberry32 } from './prng.mjs';
import { lifted, truthRates } from './skill-truth.mjs';

const env = process.env;
const cases = Number(env.CASES ?? '10');
const asserts = Number(env.ASSERTS ?? '4');
const trials = Number(env.TRIALS ?? '3');
const caseLines = env.CASE_LINES !== '0';
const { lift } = JSON.parse(readFileSync('skill.json', 'utf8'));
if (typeof lift !== 'number' || !Number.isFinite(lift)) {
  console.error('skill.json: "lift" must be a finite number of points');
  process.exit(2);
}

const truth = truthRates(env.BENCH_SEED ?? '0', cases, asserts);
const draw = mulberry32(hash(`${env.BENCH_SEED ?? '0'}:${env.RATCHET_EXPERIMENT_ID ?? '0'}`));

let passed = 0;
let checks = 0;
const lines = [];
for (let c = 0; c < cases; c++) {
  for (let t = 1; t <= trials; t++) {
    const results = truth[c].map((p) => draw() < lifted(p, lift));
    lines.push(`case case-${c} ${t} ${results.every(Boolean) ? 'pass' : 'fail'}`);
    results.forEach((ok, a) => lines.push(`assert case-${c} ${t} check-${a} ${ok ? 'pass' : 'fail'}`));
    passed += results.filter(Boolean).length;
    checks += results.length;
  }
}
if (caseLines) console.log(lines.join('\n'));
console.log(`pass_rate: ${((100 * passed) / checks).toFixed(4)}`);
