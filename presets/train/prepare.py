"""Fixed data, tokenizer and evaluation for the train starter. Protected: the agent must not edit this file."""
import math
import random

# ---------------------------------------------------------------------------
# Constants (fixed, do not modify)

SEED = 1337
CONTEXT_LENGTH = 8  # characters of left context a predictor sees
VAL_FRACTION = 0.1

# A small corpus from a seeded grammar: structure a model can learn, with no download and no dependency.
_SUBJECTS = ["the cat", "a dog", "the old man", "my sister", "the robot", "a small bird", "the teacher", "our neighbour"]
_VERBS = ["sees", "likes", "follows", "paints", "finds", "carries", "watches", "remembers"]
_OBJECTS = ["the red ball", "a quiet river", "the tall tree", "an open door", "the last train", "a paper boat",
            "the morning sun", "a broken clock"]
_ENDINGS = ["", " today", " again", " at night", " in the rain", " every morning", " without a word"]


def _corpus(sentences=4000):
    rng = random.Random(SEED)
    return "".join(
        f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)}{rng.choice(_ENDINGS)}.\n"
        for _ in range(sentences)
    )


TEXT = _corpus()
VOCAB = sorted(set(TEXT))  # one token per character
_split = int(len(TEXT) * (1 - VAL_FRACTION))
TRAIN_TEXT = TEXT[:_split]
VAL_TEXT = TEXT[_split:]

# ---------------------------------------------------------------------------
# Evaluation (DO NOT CHANGE: this is the fixed metric)


def evaluate_bpb(predict):
    """Bits per character on the validation text.

    predict(context) gets the (up to CONTEXT_LENGTH) characters before a position and returns one non-negative
    weight per VOCAB entry. The weights are normalised here, so a model scores well only by predicting well.
    """
    index = {ch: i for i, ch in enumerate(VOCAB)}
    total_bits = 0.0
    for i, ch in enumerate(VAL_TEXT):
        weights = predict(VAL_TEXT[max(0, i - CONTEXT_LENGTH):i])
        if len(weights) != len(VOCAB) or min(weights) < 0:
            raise ValueError(f"predict must return {len(VOCAB)} non-negative weights")
        p = weights[index[ch]] / sum(weights)
        if not (p > 0 and math.isfinite(p)):
            raise ValueError(f"probability {p} for {ch!r} at position {i}: every character needs some weight")
        total_bits -= math.log2(p)
    return total_bits / len(VAL_TEXT)


if __name__ == "__main__":
    print(f"characters: {len(TEXT)} (train {len(TRAIN_TEXT)}, val {len(VAL_TEXT)})")
    print(f"vocab ({len(VOCAB)}): {''.join(VOCAB)!r}")
    print(f"uniform baseline: {math.log2(len(VOCAB)):.6f} bits/char")
