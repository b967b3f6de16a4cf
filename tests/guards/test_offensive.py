"""The direct offensive-language score gives alt-profanity-check's own probabilities."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from profanity_check import predict_prob

from parley.guards.offensive import OffensiveScorer

LEXICON = Path(__file__).parents[2] / "src" / "parley" / "guards" / "data" / "ldnoobw"


@pytest.fixture(scope="module")
def scorer() -> OffensiveScorer:
    return OffensiveScorer()


def texts() -> list[str]:
    english = (LEXICON / "en").read_text().split("\n")[:40]
    return [
        "", "   ", "the and of to", "Restart the queue worker, then check the dashboard.",
        "You are a worthless idiot and everyone hates you.", "What the hell is wrong with this damn build?",
        "Schreib mir bitte eine kurze Zusammenfassung.", "これはテストです。", "ok ok ok ok ok ok ok",
        *[f"Well, {w}, that is what I said." for w in english if w],
        *[f"{w} {w} {w}" for w in english[:10] if w],
    ]


def test_scores_match_the_package(scorer):
    batch = texts()
    assert len(batch) > 40
    ours, theirs = np.array(scorer.scores(batch)), predict_prob(batch)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-9)
    assert (theirs >= 0.8).any() and (theirs < 0.2).any()  # the cases span both verdicts


def test_one_text_scores_as_in_a_batch(scorer):
    batch = texts()
    alone = [scorer.scores([t])[0] for t in batch]
    assert alone == scorer.scores(batch)
