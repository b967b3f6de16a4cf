"""Fit the injection classifier on the corpus's `train` split and write its weights.

    python -m parley.guards.train            # needs scikit-learn (a dev dependency), not needed to serve

Each training text contributes every readable variant (decoded base64, de-leeted, ...) with its label, as the
scanner classifies every variant at run time. The threshold comes from leave-family-out cross-validation on
the training split: the lowest that keeps out-of-fold false positives at or below 1%, so it is chosen on
families the model had not seen, as the `eval` split (left for `bench/guards.py`) will be.
"""

from __future__ import annotations

import json

import numpy as np

from parley.guards.corpus import load
from parley.guards.deobfuscate import variants
from parley.guards.embeddings import shared_embedder
from parley.guards.injection import WEIGHTS, chunks

MAX_FALSE_POSITIVES = 0.01


def main() -> None:
    from sklearn.linear_model import LogisticRegression

    rows = [r for r in load() if r["split"] == "train"]
    embedder = shared_embedder()
    texts, labels, owner = [], [], []
    for i, row in enumerate(rows):
        for reading in variants(str(row["text"])):
            for piece in chunks(reading):
                texts.append(piece)
                labels.append(int(row["label"]))
                owner.append(i)
    from sklearn.model_selection import GroupKFold

    x = embedder.encode(texts)
    y = np.asarray(labels)
    groups = np.asarray([str(rows[i]["family"]) for i in owner])

    def fit(idx: np.ndarray) -> LogisticRegression:
        return LogisticRegression(C=4.0, class_weight="balanced", max_iter=2000).fit(x[idx], y[idx])

    probs = np.zeros(len(texts))
    for train_idx, test_idx in GroupKFold(n_splits=5).split(x, y, groups):
        probs[test_idx] = fit(train_idx).predict_proba(x[test_idx])[:, 1]
    model = fit(np.arange(len(texts)))
    per_row = np.zeros(len(rows))
    for p, i in zip(probs, owner, strict=True):
        per_row[i] = max(per_row[i], p)
    benign = np.sort(per_row[[r["label"] == 0 for r in rows]])
    threshold = float(benign[int(np.ceil(len(benign) * (1 - MAX_FALSE_POSITIVES))) - 1]) + 1e-6
    threshold = max(threshold, 0.5)
    attacks = per_row[[r["label"] == 1 for r in rows]]
    WEIGHTS.write_text(json.dumps({
        "model": "all-MiniLM-L6-v2 + logistic regression",
        "trained_on": f"{len(rows)} train rows, {len(texts)} readings",
        "threshold": round(threshold, 6),
        "bias": float(model.intercept_[0]),
        "weights": [round(float(w), 6) for w in model.coef_[0]],
    }))  # fmt: skip
    print(f"threshold {threshold:.3f}; out-of-fold detection {np.mean(attacks >= threshold):.3f}, "
          f"false positives {np.mean(benign >= threshold):.3f}; wrote {WEIGHTS}")  # fmt: skip


if __name__ == "__main__":
    main()
