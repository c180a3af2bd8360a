// The simulated skill's true pass rates: fixed by the seed, so the benchmark can score every keep against the truth.
import { hash, mulberry32 } from './prng.mjs';

/** Each case's assertions' true pass probabilities with no edit applied: from hard to easy, mean about 57%. */
export function truthRates(seed, cases, asserts) {
  const rand = mulberry32(hash(`skill:${seed}`));
  return Array.from({ length: cases }, () => Array.from({ length: asserts }, () => 0.2 + 0.75 * rand()));
}

/** An assertion's pass probability once the skill's edits add `lift` points: a real rate stays within [1%, 99%]. */
export function lifted(p, lift) {
  return Math.min(0.99, Math.max(0.01, p + lift / 100));
}

/** The true pass rate in points at a lift: the mean of every assertion's lifted probability. */
export function truePassRate(rates, lift) {
  const all = rates.flat();
  return (100 * all.reduce((a, p) => a + lifted(p, lift), 0)) / all.length;
}
