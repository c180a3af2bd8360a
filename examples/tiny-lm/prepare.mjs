// Fixed data, tokenizer, split, time budget and evaluation for tiny-lm. Protected: the agent must not edit this file.
import { readFileSync, realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

// ---------------------------------------------------------------------------
// Constants (fixed, do not modify)

export const TIME_BUDGET_SECONDS = 15; // wall-clock training time, same for every experiment
export const CONTEXT_LENGTH = 16; // tokens of left context handed to a predictor; longer than any word + 1
export const VAL_FRACTION = 0.1; // share of words held out for validation
const SPLIT_SEED = 1337; // fixes which words are held out
const DATA_PATH = fileURLToPath(new URL('./data/words.txt', import.meta.url));

// ---------------------------------------------------------------------------
// Tokenizer: one token per character, plus '.' as the word boundary (as in makemore)

export const BOUNDARY = '.';
const words = readFileSync(DATA_PATH, 'utf8')
  .split('\n')
  .map((w) => w.trim())
  .filter((w) => w.length > 0);
const letters = [...new Set(words.join(''))].sort();
if (letters.includes(BOUNDARY)) throw new Error(`corpus must not contain the boundary character '${BOUNDARY}'`);

export const VOCAB = [BOUNDARY, ...letters]; // token id = index; BOUNDARY is id 0
export const VOCAB_SIZE = VOCAB.length;
export const BOUNDARY_ID = 0;
const stoi = new Map(VOCAB.map((ch, i) => [ch, i]));

export function encode(text) {
  return Array.from(text, (ch) => {
    const id = stoi.get(ch);
    if (id === undefined) throw new Error(`character not in vocabulary: ${JSON.stringify(ch)}`);
    return id;
  });
}

export function decode(ids) {
  return ids.map((i) => VOCAB[i]).join('');
}

// ---------------------------------------------------------------------------
// Deterministic train/val split (seeded shuffle, independent of Math.random)

export function mulberry32(seed) {
  let a = seed >>> 0;
  return function next() {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const shuffled = words.slice();
{
  const rand = mulberry32(SPLIT_SEED);
  for (let i = shuffled.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [shuffled[i], shuffled[j]] = [shuffled[j], shuffled[i]];
  }
}
const nVal = Math.round(shuffled.length * VAL_FRACTION);
const splits = { train: shuffled.slice(nVal), val: shuffled.slice(0, nVal) };

export function loadSplit(split) {
  if (!(split in splits)) throw new Error(`unknown split: ${split}`);
  return splits[split].slice();
}

// Every word "abc" becomes the targets a, b, c, '.', each paired with the contextLength tokens before it
// (left-padded with BOUNDARY). X is row-major [n, contextLength].
export function buildExamples(split, contextLength) {
  const list = loadSplit(split);
  let n = 0;
  for (const w of list) n += w.length + 1;
  const X = new Int32Array(n * contextLength);
  const Y = new Int32Array(n);
  let row = 0;
  const ctx = new Int32Array(contextLength);
  for (const w of list) {
    ctx.fill(BOUNDARY_ID);
    for (const id of [...encode(w), BOUNDARY_ID]) {
      X.set(ctx, row * contextLength);
      Y[row] = id;
      row++;
      ctx.copyWithin(0, 1);
      ctx[contextLength - 1] = id;
    }
  }
  return { X, Y, n };
}

// ---------------------------------------------------------------------------
// Evaluation (DO NOT CHANGE: this is the fixed metric)

const valExamples = buildExamples('val', CONTEXT_LENGTH);

/**
 * Bits per byte on the full validation split. Each val word is stored as "word\n", so every target token is
 * exactly one byte of the val text: the letters and the newline (BOUNDARY) that ends the word.
 *
 * logitsFn(X, n) receives n contexts (Int32Array, row-major [n, CONTEXT_LENGTH], most recent token last)
 * and returns n * VOCAB_SIZE scores. They are treated as logits and log-softmaxed here, so a predictor
 * cannot score better than a proper probability distribution allows.
 */
export function evaluateBpb(logitsFn, batchSize = 1024) {
  const { X, Y, n } = valExamples;
  let totalNats = 0;
  for (let start = 0; start < n; start += batchSize) {
    const b = Math.min(batchSize, n - start);
    const logits = logitsFn(X.subarray(start * CONTEXT_LENGTH, (start + b) * CONTEXT_LENGTH), b);
    if (!logits || logits.length !== b * VOCAB_SIZE) {
      throw new Error(`logitsFn returned ${logits?.length} scores, expected ${b * VOCAB_SIZE}`);
    }
    for (let i = 0; i < b; i++) {
      const off = i * VOCAB_SIZE;
      let max = -Infinity;
      for (let v = 0; v < VOCAB_SIZE; v++) if (logits[off + v] > max) max = logits[off + v];
      let sum = 0;
      for (let v = 0; v < VOCAB_SIZE; v++) sum += Math.exp(logits[off + v] - max);
      const nll = max + Math.log(sum) - logits[off + Y[start + i]];
      if (!Number.isFinite(nll)) throw new Error('non-finite log-likelihood: the model produced NaN or Infinity');
      totalNats += nll;
    }
  }
  return totalNats / (Math.LN2 * n);
}

// `node prepare.mjs` prints what the data looks like.
if (process.argv[1] && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  console.log(`words: ${words.length} (train ${splits.train.length}, val ${splits.val.length})`);
  console.log(`vocab (${VOCAB_SIZE}): ${VOCAB.join('')}`);
  console.log(`val bytes: ${valExamples.n}`);
  console.log(`uniform baseline: ${Math.log2(VOCAB_SIZE).toFixed(6)} bits/byte`);
  console.log(`sample val words: ${splits.val.slice(0, 8).join(' ')}`);
}
