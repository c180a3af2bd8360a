// ratchet demo: a scripted proposer drives the loop on one of the bundled examples (tiny-lm by default, or the skill).
import { runScriptedLoop, type DemoExample } from './demo/loop.js';
import { skill } from './demo/skill.js';
import { tinyLm } from './demo/tiny-lm.js';

export const DEMO_EXAMPLES: Record<string, DemoExample> = { 'tiny-lm': tinyLm, skill };

export async function runDemo(opts: { example?: string; experiments?: number } = {}): Promise<number> {
  const name = opts.example ?? 'tiny-lm';
  const example = DEMO_EXAMPLES[name];
  if (!example) {
    process.stderr.write(`ratchet demo: no example "${name}". Pick one: --example ${Object.keys(DEMO_EXAMPLES).join(' or --example ')}.\n`);
    return 2;
  }
  const fromEnv = process.env.RATCHET_DEMO_EXPERIMENTS;
  const wanted = opts.experiments ?? (fromEnv ? Number(fromEnv) : example.defaultExperiments);
  if (!Number.isInteger(wanted) || wanted < 0) {
    process.stderr.write(`ratchet demo: RATCHET_DEMO_EXPERIMENTS must be a whole number, not "${fromEnv}".\n`);
    return 2;
  }
  return runScriptedLoop(example, wanted);
}
