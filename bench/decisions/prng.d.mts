// Types of prng.mjs for the TypeScript benchmark and tests.
export function hash(text: string): number;
export function mulberry32(seed: number): () => number;
