// Editable training script for tiny-lm: a makemore-style character MLP, its optimizer and the time-budgeted training loop.
import { mkdirSync, realpathSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  BOUNDARY_ID,
  CONTEXT_LENGTH,
  TIME_BUDGET_SECONDS,
  VOCAB,
  VOCAB_SIZE,
  buildExamples,
  decode,
  evaluateBpb,
  mulberry32,
} from './prepare.mjs';

// ---------------------------------------------------------------------------
// Hyperparameters (edit these directly, no CLI flags needed)

const BLOCK_SIZE = 2; // characters of context the model sees
const N_EMBD = 8; // embedding size per character
const N_HIDDEN = 64; // hidden tanh units
const BATCH_SIZE = 32; // examples per optimizer step
const LEARNING_RATE = 0.03; // peak Adam learning rate
const ADAM_BETA1 = 0.9;
const ADAM_BETA2 = 0.99;
const WEIGHT_DECAY = 0.0; // decoupled (AdamW) decay on the weight matrices
const WARMUP_RATIO = 0.0; // fraction of the time budget spent ramping the LR up
const WARMDOWN_RATIO = 0.5; // fraction of the time budget spent decaying the LR at the end
const FINAL_LR_FRAC = 0.0; // LR multiplier reached at the end of warmdown
const SEED = 42;

const OUT_DIR = fileURLToPath(new URL('./out/', import.meta.url));

// ---------------------------------------------------------------------------
// Model: embedding table C, one tanh hidden layer, linear readout to logits

// Shapes are derived from the config so that evaluate.mjs can rebuild the model from a checkpoint alone.
export function paramShapes(config) {
  const { block_size: T, n_embd: E, n_hidden: H } = config;
  return { C: VOCAB_SIZE * E, W1: T * E * H, b1: H, W2: H * VOCAB_SIZE, b2: VOCAB_SIZE };
}

function initParams(config, rand) {
  const shapes = paramShapes(config);
  const p = Object.fromEntries(Object.entries(shapes).map(([k, n]) => [k, new Float32Array(n)]));
  const gauss = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  const fanIn = config.block_size * config.n_embd;
  for (let i = 0; i < p.C.length; i++) p.C[i] = gauss();
  // tanh gain 5/3 over sqrt(fan_in) keeps pre-activations in the non-saturated range
  for (let i = 0; i < p.W1.length; i++) p.W1[i] = (gauss() * 5) / 3 / Math.sqrt(fanIn);
  // small readout so the initial prediction is close to uniform (loss ≈ ln 27) instead of confidently wrong
  for (let i = 0; i < p.W2.length; i++) p.W2[i] = gauss() * 0.01;
  return p;
}

// Forward pass for n contexts stored row-major with `stride` tokens per row; the model reads the last block_size.
// Fills emb [n, T*E], h [n, H] (post-tanh) and logits [n, V].
function forward(config, p, X, stride, n, emb, h, logits) {
  const { block_size: T, n_embd: E, n_hidden: H } = config;
  const { C, W1, b1, W2, b2 } = p;
  const D = T * E;
  const V = VOCAB_SIZE;
  for (let r = 0; r < n; r++) {
    const xo = r * stride + stride - T;
    const eo = r * D;
    for (let t = 0; t < T; t++) {
      const co = X[xo + t] * E;
      for (let e = 0; e < E; e++) emb[eo + t * E + e] = C[co + e];
    }
    const ho = r * H;
    for (let j = 0; j < H; j++) h[ho + j] = b1[j];
    for (let i = 0; i < D; i++) {
      const xi = emb[eo + i];
      const wo = i * H;
      for (let j = 0; j < H; j++) h[ho + j] += xi * W1[wo + j];
    }
    for (let j = 0; j < H; j++) h[ho + j] = Math.tanh(h[ho + j]);
    const lo = r * V;
    for (let v = 0; v < V; v++) logits[lo + v] = b2[v];
    for (let j = 0; j < H; j++) {
      const hj = h[ho + j];
      const wo = j * V;
      for (let v = 0; v < V; v++) logits[lo + v] += hj * W2[wo + v];
    }
  }
}

// Cross-entropy loss and its gradient for a batch already run through forward(); accumulates into g (zeroed here).
function backward(config, p, g, X, Y, n, emb, h, logits) {
  const { block_size: T, n_embd: E, n_hidden: H } = config;
  const { W1, W2 } = p;
  const { C: gC, W1: gW1, b1: gb1, W2: gW2, b2: gb2 } = g;
  const D = T * E;
  const V = VOCAB_SIZE;
  for (const k in g) g[k].fill(0);
  const dl = new Float64Array(V);
  const dh = new Float64Array(H);
  let loss = 0;
  for (let r = 0; r < n; r++) {
    // softmax, loss, and dLoss/dlogits = (probs - onehot) / n
    const lo = r * V;
    let max = -Infinity;
    for (let v = 0; v < V; v++) if (logits[lo + v] > max) max = logits[lo + v];
    let sum = 0;
    for (let v = 0; v < V; v++) sum += (dl[v] = Math.exp(logits[lo + v] - max));
    const y = Y[r];
    loss += Math.log(sum) - (logits[lo + y] - max);
    for (let v = 0; v < V; v++) dl[v] /= sum * n;
    dl[y] -= 1 / n;
    // readout layer
    const ho = r * H;
    for (let v = 0; v < V; v++) gb2[v] += dl[v];
    for (let j = 0; j < H; j++) {
      const hj = h[ho + j];
      const wo = j * V;
      let acc = 0;
      for (let v = 0; v < V; v++) {
        gW2[wo + v] += hj * dl[v];
        acc += W2[wo + v] * dl[v];
      }
      dh[j] = acc * (1 - hj * hj); // through tanh
    }
    // hidden layer
    for (let j = 0; j < H; j++) gb1[j] += dh[j];
    const eo = r * D;
    const xo = r * T;
    for (let t = 0; t < T; t++) {
      const co = X[xo + t] * E; // embedding row of the token at this position
      for (let e = 0; e < E; e++) {
        const i = t * E + e;
        const xi = emb[eo + i];
        const wo = i * H;
        let acc = 0;
        for (let j = 0; j < H; j++) {
          gW1[wo + j] += xi * dh[j];
          acc += W1[wo + j] * dh[j];
        }
        gC[co + e] += acc;
      }
    }
  }
  return loss / n;
}

// Logits for evaluateBpb: rows of CONTEXT_LENGTH tokens. Buffers grow on demand and are reused across batches.
function makeLogitsFn(config, p) {
  let cap = 0;
  let emb, h, logits;
  return (X, n) => {
    if (n > cap) {
      cap = n;
      emb = new Float32Array(cap * config.block_size * config.n_embd);
      h = new Float32Array(cap * config.n_hidden);
      logits = new Float32Array(cap * VOCAB_SIZE);
    }
    forward(config, p, X, CONTEXT_LENGTH, n, emb, h, logits);
    return logits.subarray(0, n * VOCAB_SIZE);
  };
}

// Rebuilds the predictor from a checkpoint object; used by evaluate.mjs. Throws on shape mismatches.
export function loadPredictor(checkpoint) {
  const { config, weights } = checkpoint;
  for (const key of ['block_size', 'n_embd', 'n_hidden']) {
    if (!Number.isInteger(config[key]) || config[key] < 1) throw new Error(`config.${key} must be a positive integer`);
  }
  if (config.block_size > CONTEXT_LENGTH) {
    throw new Error(`config.block_size must be at most ${CONTEXT_LENGTH}, got ${config.block_size}`);
  }
  const p = {};
  for (const [name, size] of Object.entries(paramShapes(config))) {
    const w = weights[name];
    if (!Array.isArray(w) || w.length !== size) {
      throw new Error(`weights.${name} must be an array of ${size} numbers, got ${Array.isArray(w) ? w.length : typeof w}`);
    }
    p[name] = Float32Array.from(w);
  }
  return makeLogitsFn(config, p);
}

// ---------------------------------------------------------------------------
// Optimizer: Adam with decoupled weight decay and a time-based LR schedule (progress = elapsed / budget)

function lrMultiplier(progress) {
  if (progress < WARMUP_RATIO) return WARMUP_RATIO > 0 ? progress / WARMUP_RATIO : 1;
  if (progress < 1 - WARMDOWN_RATIO) return 1;
  const cooldown = (1 - progress) / WARMDOWN_RATIO;
  return cooldown + (1 - cooldown) * FINAL_LR_FRAC;
}

function makeAdam(p) {
  const m = Object.fromEntries(Object.entries(p).map(([k, w]) => [k, new Float32Array(w.length)]));
  const v = Object.fromEntries(Object.entries(p).map(([k, w]) => [k, new Float32Array(w.length)]));
  let t = 0;
  return (g, lr) => {
    t++;
    const bc1 = 1 - ADAM_BETA1 ** t;
    const bc2 = 1 - ADAM_BETA2 ** t;
    for (const k in p) {
      const w = p[k], gk = g[k], mk = m[k], vk = v[k];
      const decay = k === 'W1' || k === 'W2' ? 1 - lr * WEIGHT_DECAY : 1;
      for (let i = 0; i < w.length; i++) {
        mk[i] = ADAM_BETA1 * mk[i] + (1 - ADAM_BETA1) * gk[i];
        vk[i] = ADAM_BETA2 * vk[i] + (1 - ADAM_BETA2) * gk[i] * gk[i];
        w[i] = w[i] * decay - (lr * (mk[i] / bc1)) / (Math.sqrt(vk[i] / bc2) + 1e-8);
      }
    }
  };
}

// ---------------------------------------------------------------------------
// Sampling: a few generated words make the log readable (not part of the metric)

function sampleWords(config, p, rand, count) {
  const T = config.block_size;
  const emb = new Float32Array(T * config.n_embd);
  const h = new Float32Array(config.n_hidden);
  const logits = new Float32Array(VOCAB_SIZE);
  const out = [];
  for (let s = 0; s < count; s++) {
    const ctx = new Int32Array(T).fill(BOUNDARY_ID);
    const ids = [];
    while (ids.length < 20) {
      forward(config, p, ctx, T, 1, emb, h, logits);
      const max = Math.max(...logits);
      const probs = Array.from(logits, (l) => Math.exp(l - max));
      let r = rand() * probs.reduce((a, b) => a + b, 0);
      let id = 0;
      while (id < VOCAB_SIZE - 1 && (r -= probs[id]) > 0) id++;
      if (id === BOUNDARY_ID) break;
      ids.push(id);
      ctx.copyWithin(0, 1);
      ctx[T - 1] = id;
    }
    out.push(decode(ids));
  }
  return out;
}

// ---------------------------------------------------------------------------
// Training loop

function main() {
  const config = {
    block_size: BLOCK_SIZE,
    n_embd: N_EMBD,
    n_hidden: N_HIDDEN,
    batch_size: BATCH_SIZE,
    learning_rate: LEARNING_RATE,
    adam_beta1: ADAM_BETA1,
    adam_beta2: ADAM_BETA2,
    weight_decay: WEIGHT_DECAY,
    warmup_ratio: WARMUP_RATIO,
    warmdown_ratio: WARMDOWN_RATIO,
    final_lr_frac: FINAL_LR_FRAC,
    seed: SEED,
  };
  const rand = mulberry32(SEED);
  const train = buildExamples('train', BLOCK_SIZE);
  const p = initParams(config, rand);
  const g = Object.fromEntries(Object.entries(p).map(([k, w]) => [k, new Float32Array(w.length)]));
  const adamStep = makeAdam(p);
  const numParams = Object.values(p).reduce((a, w) => a + w.length, 0);

  const B = BATCH_SIZE;
  const Xb = new Int32Array(B * BLOCK_SIZE);
  const Yb = new Int32Array(B);
  const emb = new Float32Array(B * BLOCK_SIZE * N_EMBD);
  const h = new Float32Array(B * N_HIDDEN);
  const logits = new Float32Array(B * VOCAB_SIZE);

  console.log(`train examples: ${train.n}, params: ${numParams}, time budget: ${TIME_BUDGET_SECONDS}s`);
  const tStart = performance.now();
  let step = 0;
  let smoothLoss = 0;
  let nextLog = 0;
  let elapsed = 0;
  while (elapsed < TIME_BUDGET_SECONDS) {
    const lrm = lrMultiplier(elapsed / TIME_BUDGET_SECONDS);
    for (let b = 0; b < B; b++) {
      const idx = Math.floor(rand() * train.n);
      Xb.set(train.X.subarray(idx * BLOCK_SIZE, (idx + 1) * BLOCK_SIZE), b * BLOCK_SIZE);
      Yb[b] = train.Y[idx];
    }
    forward(config, p, Xb, BLOCK_SIZE, B, emb, h, logits);
    const loss = backward(config, p, g, Xb, Yb, B, emb, h, logits);
    // fast fail: a diverged run is not worth evaluating
    if (!Number.isFinite(loss) || loss > 100) {
      console.log(`FAIL: loss is ${loss} at step ${step}`);
      process.exit(1);
    }
    adamStep(g, LEARNING_RATE * lrm);
    step++;
    smoothLoss = step === 1 ? loss : 0.99 * smoothLoss + 0.01 * loss;
    elapsed = (performance.now() - tStart) / 1000;
    if (elapsed >= nextLog) {
      const pct = Math.min(100, (100 * elapsed) / TIME_BUDGET_SECONDS).toFixed(1);
      const bpc = (smoothLoss / Math.LN2).toFixed(4);
      console.log(`step ${String(step).padStart(6, '0')} (${pct}%) | loss: ${smoothLoss.toFixed(4)} (${bpc} bits) | lrm: ${lrm.toFixed(2)}`);
      nextLog += 1;
    }
  }
  const trainingSeconds = elapsed;

  const valBpb = evaluateBpb(makeLogitsFn(config, p));
  console.log(`samples: ${sampleWords(config, p, mulberry32(SEED + 1), 8).join(' ')}`);

  mkdirSync(OUT_DIR, { recursive: true });
  const checkpoint = {
    format: 'tiny-lm-mlp/1',
    vocab: VOCAB.join(''),
    config,
    num_steps: step,
    val_bpb: valBpb,
    weights: Object.fromEntries(Object.entries(p).map(([k, w]) => [k, Array.from(w)])),
  };
  writeFileSync(`${OUT_DIR}checkpoint.json`, JSON.stringify(checkpoint));

  const peakMemoryMb = process.resourceUsage().maxRSS / 1024; // maxRSS is the peak resident set, in KiB
  const rows = [
    ['val_bpb', valBpb.toFixed(6)],
    ['training_seconds', trainingSeconds.toFixed(1)],
    ['total_seconds', (performance.now() / 1000).toFixed(1)], // performance.now() counts from process start
    ['peak_memory_mb', peakMemoryMb.toFixed(1)],
    ['num_steps', step],
    ['num_params_K', (numParams / 1000).toFixed(1)],
    ...Object.entries(config).filter(([k]) => k !== 'seed'),
  ];
  console.log('---');
  for (const [k, v] of rows) console.log(`${`${k}:`.padEnd(18)}${v}`);
}

if (process.argv[1] && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) main();
