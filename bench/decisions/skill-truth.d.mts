// Types of skill-truth.mjs for the TypeScript benchmark and tests.
export function truthRates(seed: string | number, cases: number, asserts: number): number[][];
export function lifted(p: number, lift: number): number;
export function truePassRate(rates: number[][], lift: number): number;
