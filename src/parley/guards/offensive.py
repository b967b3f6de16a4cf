"""The offensive-language score: alt-profanity-check's model, computed directly from its fitted parts.

The package's `predict_prob` goes through scikit-learn's `TfidfVectorizer.transform` and
`CalibratedClassifierCV.predict_proba`, whose input validation made one call on one sentence take ~16 ms here.
The output guard scores every finished sentence of every answer on the event loop, so that was about a
millisecond per streamed token. The model is small (a TF-IDF vocabulary, five linear SVMs, each with a sigmoid
calibration), so the same numbers come from a dict lookup and a few sums: tens of microseconds a sentence.
`tests/guards/test_offensive.py` checks it against `predict_prob`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable

import numpy as np


class OffensiveScorer:
    def __init__(self) -> None:
        from profanity_check import profanity_check as pc  # loads the fitted vectorizer and model

        vectorizer, model = pc.vectorizer, pc.model
        if vectorizer.sublinear_tf or vectorizer.norm != "l2" or not vectorizer.use_idf or model.method != "sigmoid":
            raise ValueError("alt-profanity-check's model is not the TF-IDF + sigmoid-calibrated SVM expected")
        self._analyze: Callable[[str], list[str]] = vectorizer.build_analyzer()
        self._vocabulary: dict[str, int] = vectorizer.vocabulary_
        self._idf = vectorizer.idf_.astype(np.float64)
        folds = model.calibrated_classifiers_
        # one row per fold: the SVM's weights, its intercept, and its calibration a, b (p = 1 / (1 + e^(a·d + b)))
        self._coef = np.stack([np.asarray(c.estimator.coef_, dtype=np.float64).ravel() for c in folds])
        self._intercept = np.array([float(np.ravel(c.estimator.intercept_)[0]) for c in folds])
        self._a = np.array([float(c.calibrators[0].a_) for c in folds])
        self._b = np.array([float(c.calibrators[0].b_) for c in folds])
        if list(model.classes_) != [0, 1]:
            raise ValueError("alt-profanity-check's classes are not [0, 1]")

    def scores(self, texts: list[str]) -> list[float]:
        """The probability that each text is offensive, as `profanity_check.predict_prob` gives it."""
        return [self._score(text) for text in texts]

    def _score(self, text: str) -> float:
        counts = Counter(i for term in self._analyze(text) if (i := self._vocabulary.get(term)) is not None)
        if counts:
            index = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
            weights = np.fromiter(counts.values(), dtype=np.float64, count=len(counts)) * self._idf[index]
            weights /= math.sqrt(float(weights @ weights))
            decision = self._coef[:, index] @ weights + self._intercept
        else:
            decision = self._intercept.copy()
        return float(np.mean(1.0 / (1.0 + np.exp(self._a * decision + self._b))))
