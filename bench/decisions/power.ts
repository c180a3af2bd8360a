// The paired rule's power curve: how often a decision keeps an edit of a known true effect, and how many runs it takes,
// on simulated skill evals (10 cases × 4 assertions × 3 trials), with the early stop and without it.
//
//   npx tsx bench/decisions/power.ts [--decisions 2000] [--seed 1]
import { parseArgs } from 'node:util';
import { mulberry32 } from './prng.mjs';
import { liftedSkill, simulatedDecision, simulatedSkill } from './paired-sim.js';

const { values } = parseArgs({ options: { decisions: { type: 'string' }, seed: { type: 'string' } } });
const decisions = Number(values.decisions ?? 2000);
const seed = Number(values.seed ?? 1);
const lines = [
  `### Paired rule, power by true effect (\`npx tsx bench/decisions/power.ts --decisions ${decisions} --seed ${seed}\`)`,
  '',
  'Default settings (confidence 0.95, maxRepeats 5); each row is that many decisions on freshly drawn skills.',
  '',
  '| true effect (points) | kept | runs per decision | kept without the early stop | runs without it |',
  '|---:|---:|---:|---:|---:|',
];
for (const points of [-10, -5, 0, 2.5, 5, 7.5, 10, 15]) {
  const row = [true, false].map((futility) => {
    const random = mulberry32(seed * 1000 + Math.round(points * 10) + (futility ? 0 : 500_000));
    let kept = 0;
    let runs = 0;
    for (let i = 0; i < decisions; i++) {
      const rates = simulatedSkill(random);
      const d = simulatedDecision(rates, liftedSkill(rates, points), random, { futility });
      if (d.verdict === 'improved') kept++;
      runs += d.runs;
    }
    return { kept: kept / decisions, runs: runs / decisions };
  });
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  lines.push(`| ${points > 0 ? '+' : ''}${points} | ${pct(row[0]!.kept)} | ${row[0]!.runs.toFixed(2)} | ${pct(row[1]!.kept)} | ${row[1]!.runs.toFixed(2)} |`);
}
process.stdout.write(`${lines.join('\n')}\n`);
