"""Sentence embeddings for `/v1/embeddings`: all-MiniLM-L6-v2 (the encoder the guards already load, shared with
them) and every embedded GGUF model, mean-pooled by llama.cpp. Vectors are L2-normalised, as OpenAI's are."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from parley.errors import InvalidRequest, ModelNotFound

if TYPE_CHECKING:
    from parley.engines.registry import EngineRegistry

MINILM = "all-minilm-l6-v2"
MAX_INPUTS = 2048  # OpenAI's limit on inputs per request


class EmbeddingService:
    def __init__(self, registry: EngineRegistry) -> None:
        self.registry = registry
        self._gguf: dict[str, Any] = {}  # model id → llama_cpp.Llama with embeddings on, loaded on first use
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def models(self) -> list[str]:
        return [MINILM, *(e.info.id for e in self.registry.engines.values() if e.info.kind == "llamacpp")]

    def embed(self, model: str, texts: list[str]) -> tuple[np.ndarray, int]:
        """The vectors (one row per text) and the tokens read. Runs on a worker thread."""
        check_inputs(texts)
        if model == MINILM:
            return self._minilm(texts)
        engine = self.registry.engines.get(model)
        if engine is None:
            raise ModelNotFound(f"The model `{model}` does not exist. Embedding models: "
                                f"{', '.join(self.models())}.", param="model")  # fmt: skip
        if engine.info.kind != "llamacpp":
            raise InvalidRequest(f"The model `{model}` gives no embeddings here (it is served upstream).",
                                 param="model")  # fmt: skip
        return self._llamacpp(model, engine.info.source, texts)

    @staticmethod
    def _minilm(texts: list[str]) -> tuple[np.ndarray, int]:
        from parley.guards.embeddings import shared_embedder

        embedder = shared_embedder()
        window = embedder.model.max_seq_length
        counts = [len(ids) for ids in embedder.model.tokenizer(texts, add_special_tokens=True)["input_ids"]]
        _check_lengths(counts, window)
        return embedder.encode(texts), sum(counts)

    def _llamacpp(self, model: str, path: str, texts: list[str]) -> tuple[np.ndarray, int]:
        llama, lock = self._load(model, path)
        with lock:
            counts = [len(llama.tokenize(t.encode(), add_bos=True, special=False)) for t in texts]
            _check_lengths(counts, llama.n_ctx())
            vectors = np.asarray(llama.embed(texts, normalize=True), dtype=np.float32)
        return vectors, sum(counts)

    def _load(self, model: str, path: str) -> tuple[Any, threading.Lock]:
        with self._guard:
            if model not in self._gguf:
                import llama_cpp

                from parley.engines.llamacpp.gguf_model import portable_defaults

                with portable_defaults():
                    self._gguf[model] = llama_cpp.Llama(
                        model_path=path, embedding=True, pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN,
                        n_ctx=2048, n_batch=2048, n_ubatch=2048, n_threads=1, n_threads_batch=1, verbose=False,
                    )  # fmt: skip
                self._locks[model] = threading.Lock()
            return self._gguf[model], self._locks[model]

    def close(self) -> None:
        for llama in self._gguf.values():
            llama.close()
        self._gguf.clear()


def check_inputs(texts: list[str]) -> None:
    """What every caller (the API, the MCP tool) is held to: 1 to MAX_INPUTS non-empty strings."""
    if not texts:
        raise InvalidRequest("input must not be empty.", param="input")
    if len(texts) > MAX_INPUTS:
        raise InvalidRequest(f"At most {MAX_INPUTS} inputs per request.", param="input")
    if not all(isinstance(t, str) for t in texts):
        raise InvalidRequest("input must be text: token ids are not taken here.", param="input")
    if any(not t for t in texts):
        raise InvalidRequest("input strings must not be empty.", param="input")


def _check_lengths(counts: list[int], window: int) -> None:
    for i, n in enumerate(counts):
        if n > window:
            raise InvalidRequest(f"input[{i}] is {n} tokens; this model reads at most {window}.", param="input")
