"""A loaded GGUF model and its vocabulary: tokenizing, detokenizing, metadata, chat template."""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path

import llama_cpp

# llama.cpp logs every tensor at load; keep its errors only.
logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)


_default_model_params = llama_cpp.llama_model_default_params


def model_params(*, repack_weights: bool = False) -> llama_cpp.llama_model_params:
    """llama.cpp's defaults, except the "extra buffer types" that re-lay weights for AMX or AVX2 GEMM kernels.

    On AMX CPUs this build's AMX matmul crashes (SIGSEGV in `ggml_backend_amx_mul_mat`, seen with SmolLM2's
    Q4_1 weights), and where it works it picks one kernel for one-token batches and another for larger ones,
    so a request's logits would depend on what else is being decoded.
    """
    params = _default_model_params()
    params.use_extra_bufts = repack_weights
    return params


@contextmanager
def portable_defaults() -> Iterator[None]:
    """Make third-party loaders (`llama_cpp.Llama`, `llama_cpp.server`) use `model_params()` too."""
    import llama_cpp.llama_cpp as bindings  # what `llama_cpp.Llama` calls

    bindings.llama_model_default_params = model_params
    try:
        yield
    finally:
        bindings.llama_model_default_params = _default_model_params


class GGUFModel:
    """Owns a `llama_model*`. Thread-safe for tokenization (llama.cpp's vocab calls are read-only)."""

    def __init__(self, path: Path, *, n_gpu_layers: int = 0, repack_weights: bool = False) -> None:
        if not path.is_file():
            raise FileNotFoundError(f"model file not found: {path}")
        llama_cpp.llama_backend_init()
        params = model_params(repack_weights=repack_weights)
        params.n_gpu_layers = n_gpu_layers
        self.path = path
        self.ptr = llama_cpp.llama_model_load_from_file(str(path).encode(), params)
        if not self.ptr:
            raise ValueError(f"llama.cpp could not load {path} (not a GGUF model?)")
        self.vocab = llama_cpp.llama_model_get_vocab(self.ptr)
        self.n_vocab: int = llama_cpp.llama_vocab_n_tokens(self.vocab)
        self.n_ctx_train: int = llama_cpp.llama_model_n_ctx_train(self.ptr)
        self.add_bos: bool = bool(llama_cpp.llama_vocab_get_add_bos(self.vocab))
        self.n_embd: int = llama_cpp.llama_model_n_embd(self.ptr)
        self.n_layer: int = llama_cpp.llama_model_n_layer(self.ptr)
        self.n_head: int = llama_cpp.llama_model_n_head(self.ptr)
        self.n_head_kv: int = llama_cpp.llama_model_n_head_kv(self.ptr)

    def close(self) -> None:
        if self.ptr:
            llama_cpp.llama_model_free(self.ptr)
            self.ptr = None

    # ---- metadata ---------------------------------------------------------------------------------

    def meta(self, key: str) -> str | None:
        size = 4096
        while True:
            buf = ctypes.create_string_buffer(size)
            n = llama_cpp.llama_model_meta_val_str(self.ptr, key.encode(), buf, size)
            if n < 0:
                return None
            if n < size:
                return buf.value.decode("utf-8", errors="replace")
            size = n + 1

    @cached_property
    def chat_template(self) -> str | None:
        return self.meta("tokenizer.chat_template")

    @cached_property
    def description(self) -> str:
        buf = ctypes.create_string_buffer(256)
        llama_cpp.llama_model_desc(self.ptr, buf, 256)
        return buf.value.decode("utf-8", errors="replace")

    # ---- vocabulary -------------------------------------------------------------------------------

    def tokenize(self, text: str, *, add_special: bool, parse_special: bool) -> list[int]:
        return self.tokenize_bytes(text.encode("utf-8"), add_special=add_special, parse_special=parse_special)

    def tokenize_bytes(self, data: bytes, *, add_special: bool, parse_special: bool) -> list[int]:
        n_max = len(data) + 16
        while True:
            arr = (llama_cpp.llama_token * n_max)()
            n = llama_cpp.llama_tokenize(self.vocab, data, len(data), arr, n_max, add_special, parse_special)
            if n >= 0:
                return list(arr[:n])
            n_max = -n

    def piece(self, token: int, *, special: bool = False) -> bytes:
        buf = ctypes.create_string_buffer(64)
        n = llama_cpp.llama_token_to_piece(self.vocab, token, buf, 64, 0, special)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = llama_cpp.llama_token_to_piece(self.vocab, token, buf, -n, 0, special)
        return buf.raw[:n]

    def detokenize(self, tokens: list[int], *, special: bool = False) -> str:
        return b"".join(self.piece(t, special=special) for t in tokens).decode("utf-8", errors="replace")

    def token_text(self, token: int) -> str:
        return self.piece(token, special=True).decode("utf-8", errors="replace")

    def is_eog(self, token: int) -> bool:
        return bool(llama_cpp.llama_vocab_is_eog(self.vocab, token))

    @cached_property
    def eog_tokens(self) -> list[int]:
        return [t for t in range(self.n_vocab) if llama_cpp.llama_vocab_is_eog(self.vocab, t)]

    @cached_property
    def control_tokens(self) -> list[int]:
        attr = llama_cpp.LLAMA_TOKEN_ATTR_CONTROL
        return [t for t in range(self.n_vocab) if llama_cpp.llama_vocab_get_attr(self.vocab, t) & attr]

    @cached_property
    def bos_text(self) -> str:
        bos = llama_cpp.llama_vocab_bos(self.vocab)
        return self.token_text(bos) if bos >= 0 else ""

    @cached_property
    def eos_text(self) -> str:
        eos = llama_cpp.llama_vocab_eos(self.vocab)
        return self.token_text(eos) if eos >= 0 else ""
