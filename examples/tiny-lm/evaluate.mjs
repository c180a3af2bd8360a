// Trusted evaluator for tiny-lm, run after training: recomputes val_bpb from out/checkpoint.json. Protected.
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { VOCAB, evaluateBpb } from './prepare.mjs';
import { loadPredictor } from './train.mjs'; // only the model definition; train.mjs trains only when run directly

const CHECKPOINT_PATH = fileURLToPath(new URL('./out/checkpoint.json', import.meta.url));

function fail(message) {
  process.stderr.write(`evaluate: ${message}\n`);
  process.exit(2);
}

if (!existsSync(CHECKPOINT_PATH)) fail(`checkpoint not found at ${CHECKPOINT_PATH} (run \`node train.mjs\` first)`);

let checkpoint;
try {
  checkpoint = JSON.parse(readFileSync(CHECKPOINT_PATH, 'utf8'));
} catch (err) {
  fail(`checkpoint is not valid JSON: ${err.message}`);
}

// Structural checks here, shape checks in loadPredictor: a checkpoint that only claims a score is rejected.
if (checkpoint === null || typeof checkpoint !== 'object') fail('checkpoint must be a JSON object');
if (checkpoint.vocab !== VOCAB.join('')) fail('checkpoint vocab does not match the vocab in prepare.mjs');
if (checkpoint.config === null || typeof checkpoint.config !== 'object') fail('checkpoint has no config object');
if (checkpoint.weights === null || typeof checkpoint.weights !== 'object') fail('checkpoint has no weights object');
for (const [name, w] of Object.entries(checkpoint.weights)) {
  if (!Array.isArray(w) || !w.every(Number.isFinite)) fail(`weights.${name} must be an array of finite numbers`);
}

let valBpb;
try {
  valBpb = evaluateBpb(loadPredictor(checkpoint));
} catch (err) {
  fail(`checkpoint is malformed: ${err.message}`);
}
console.log(`val_bpb: ${valBpb.toFixed(6)}`);
