"""Trusted evaluator, run after train.py: recomputes val_bpb from out/model.json. Protected."""
import json
import os
import sys

from prepare import evaluate_bpb
from train import load_predictor  # only the model definition: train.py trains only when run directly

MODEL_PATH = os.path.join("out", "model.json")


def fail(message):
    print(f"evaluate: {message}", file=sys.stderr)
    sys.exit(2)


if not os.path.exists(MODEL_PATH):
    fail(f"{MODEL_PATH} not found (run `python3 train.py` first)")
try:
    with open(MODEL_PATH) as f:
        model = json.load(f)
    val_bpb = evaluate_bpb(load_predictor(model))
except (ValueError, KeyError, TypeError) as err:
    fail(f"{MODEL_PATH} is malformed: {err}")
print(f"val_bpb: {val_bpb:.6f}")
