"""Paraphrased system-prompt leaks: an answer sentence that says what the operator's system prompt says, in
other words or another language. The verbatim leak (a 40-character run of the prompt, or its canary) is caught
in the output guard itself; this catches the rest.

Closeness to the prompt alone does not tell a leak from an answer that does the prompt's task (a support bot's
answers are about what its prompt is about). What a leak adds is that it speaks of the assistant's own rules
("I was told to...", "mis instrucciones dicen..."), where an answer offers help ("I can open a ticket"). So a
sentence leaks when both hold, read by the multilingual embedding (guard_embedder): its cosine to one of the
prompt's sentences is at least `SIMILAR`, and it is closer, by `MARGIN`, to a few English statements of "my
instructions say" (`RULE_TALK`) than to a few of "I can help with that" (`HELP_TALK`); the embedding carries
both across languages. The thresholds were chosen on half of the leaks written for this
(bench/data/guards/leaks.jsonl) and are reported on the other half by `python bench/guards.py --leaks`.

The embedding takes ~20-40 ms a sentence, so it never runs on the event loop: each finished sentence of the
answer is scored on one worker thread shared by all answers, and the output guard looks at the scores as they
come back (the answer is stopped at the first leak found). At the end of an answer it waits for what is still
being scored, at most `FINISH_WAIT` seconds; what was not scored by then is counted in the trace
(`unjudged_sentences`). Scoring in the guards' readers child process at nice 10 instead was measured and taken
back (docs/benchmarks.md): no throughput gained, and 5 of 80 answers ended with sentences unjudged.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from parley.guards.embeddings import Embedder
from parley.guards.scripts import UNSPACED

SIMILAR = 0.85  # cosine to the closest sentence of the system prompt
MARGIN = 0.015  # how much closer to a statement of the assistant's rules than to an offer of help
RULE_TALK = [
    "My instructions say that I must not do that.",
    "I was told to always ask for this first and never mention that.",
    "I am not allowed to talk about this topic.",
    "My rules require me to keep this secret.",
    "I am configured to only help with these topics.",
    "I have been instructed to recommend only these products.",
]
HELP_TALK = [
    "I can help you with that.",
    "I will open a ticket for you.",
    "Let me check that for you.",
    "Here is what you can do.",
    "I can look into this and get back to you.",
    "I recommend trying this product.",
]
MIN_WORDS = 5  # shorter sentences ("Sure, I can help.") are not judged
FINISH_WAIT = 1.0
SENTENCES = re.compile(r"(?<=[.!?…。！？])\s*|\n+")


def sentences(text: str) -> list[str]:
    return [s.strip() for s in SENTENCES.split(text) if len(s.split()) >= MIN_WORDS or _wide(s)]


def _wide(s: str) -> bool:  # scripts without spaces: judged from 12 characters
    return len(s.strip()) >= 12 and UNSPACED.search(s) is not None


class LeakScorer:
    """The scores of one sentence against one system prompt, computed in the caller's thread (the judge's one
    worker: nothing here is shared between threads); keeps the vectors of recent system prompts' sentences."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self._talk: tuple[np.ndarray, np.ndarray] | None = None
        self._prompts: OrderedDict[str, np.ndarray] = OrderedDict()

    def __call__(self, system_prompt: str, sentence: str) -> tuple[float, float]:
        """(cosine to the closest prompt sentence, how much closer to rule talk than to help talk)."""
        rule, help_ = self.talk()
        v = self.embedder.encode([sentence])[0]
        return float((self.prompt(system_prompt) @ v).max()), float((rule @ v).max() - (help_ @ v).max())

    def talk(self) -> tuple[np.ndarray, np.ndarray]:
        if self._talk is None:
            self._talk = (self.embedder.encode(RULE_TALK), self.embedder.encode(HELP_TALK))
        return self._talk

    def prompt(self, system_prompt: str) -> np.ndarray:
        vectors = self._prompts.get(system_prompt)
        if vectors is not None:
            self._prompts.move_to_end(system_prompt)
            return vectors
        vectors = self._prompts[system_prompt] = self.embedder.encode(sentences(system_prompt) or [system_prompt])
        while len(self._prompts) > 64:
            self._prompts.popitem(last=False)
        return vectors


class ParaphraseJudge:
    """One per server: a `LeakScorer` on a worker thread of its own."""

    def __init__(self, embedder: Embedder, similar: float = SIMILAR, margin: float = MARGIN) -> None:
        self.similar, self.margin = similar, margin
        self.scorer = LeakScorer(embedder)
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="paraphrase")
        self.pool.submit(self.scorer.talk)

    def scores(self, system_prompt: str, sentence: str) -> Future[tuple[float, float]]:
        """(cosine to the closest prompt sentence, how much closer to rule talk than to help talk), later."""
        return self.pool.submit(self.scorer, system_prompt, sentence)

    def leaks(self, scores: tuple[float, float]) -> bool:
        return scores[0] >= self.similar and scores[1] >= self.margin

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
