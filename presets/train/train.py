"""Editable training script: a character n-gram model with additive smoothing, trained on prepare.py's text.

Runs on a CPU with plain python3. It writes out/model.json, which the trusted evaluate.py scores.
"""
import json
import os
import time

from prepare import TRAIN_TEXT, VOCAB, evaluate_bpb

# ---------------------------------------------------------------------------
# Hyperparameters (edit these directly)

ORDER = 1  # characters of context the model conditions on
ALPHA = 1.0  # additive smoothing: weight given to every character never seen after a context

OUT_DIR = "out"

# ---------------------------------------------------------------------------
# Model


def train():
    counts = {}
    for i, ch in enumerate(TRAIN_TEXT):
        context = TRAIN_TEXT[max(0, i - ORDER):i]
        row = counts.setdefault(context, {})
        row[ch] = row.get(ch, 0) + 1
    return {"order": ORDER, "alpha": ALPHA, "counts": counts}


def load_predictor(model):
    """The predict(context) function that prepare.evaluate_bpb scores; evaluate.py rebuilds it from out/model.json."""
    order, alpha, counts = model["order"], model["alpha"], model["counts"]

    def predict(context):
        row = counts.get(context[len(context) - order:] if order else "", {})
        return [row.get(ch, 0) + alpha for ch in VOCAB]

    return predict


def main():
    start = time.time()
    model = train()
    training_seconds = time.time() - start
    val_bpb = evaluate_bpb(load_predictor(model))
    os.makedirs(OUT_DIR, exist_ok=True)
    with open(os.path.join(OUT_DIR, "model.json"), "w") as f:
        json.dump(model, f)
    print("---")
    print(f"val_bpb:          {val_bpb:.6f}")
    print(f"training_seconds: {training_seconds:.1f}")
    print(f"num_contexts:     {len(model['counts'])}")
    print(f"order:            {ORDER}")
    print(f"alpha:            {ALPHA}")


if __name__ == "__main__":
    main()
