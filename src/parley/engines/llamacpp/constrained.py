"""Sampling under a grammar the way llama.cpp's common sampler does it: draw from the chain without the
grammar, then ask the grammar about that one token; only when it refuses is the grammar applied to the whole
vocabulary and the token drawn again. Applying a grammar to every candidate costs about 6 ms per sequence per
step with SmolLM2's 49k-token vocabulary on this machine's cores (bench/tools_load.py); asking about one token
costs microseconds, and a model that follows the format is refused rarely.

The grammar is its own sampler, apart from the chain, so a token is accepted by each only once it is chosen;
a token the grammar cannot take is never accepted by it (llama.cpp throws a C++ exception through its C API
then, which ends the process): the sequence ends instead."""

from __future__ import annotations

import ctypes

import llama_cpp
import numpy as np

TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])


class Candidates:
    """One reusable llama_token_data array over the vocabulary, and a one-token one (the scheduler thread
    samples one sequence at a time)."""

    def __init__(self, n_vocab: int) -> None:
        self.n_vocab = n_vocab
        self.ids = np.arange(n_vocab, dtype=np.int32)
        self.data = np.zeros(n_vocab, dtype=TOKEN_DATA)
        self.array = llama_cpp.llama_token_data_array(
            self.data.ctypes.data_as(llama_cpp.llama_token_data_p), n_vocab, -1, False
        )
        self.one = np.zeros(1, dtype=TOKEN_DATA)
        self.one_array = llama_cpp.llama_token_data_array(
            self.one.ctypes.data_as(llama_cpp.llama_token_data_p), 1, -1, False
        )

    def fill(self, logits: ctypes.Array) -> None:  # type: ignore[type-arg]
        self.data["id"] = self.ids  # samplers sort the array in place: every draw starts from the raw logits
        self.data["logit"] = np.ctypeslib.as_array(logits, shape=(self.n_vocab,))
        self.data["p"] = 0.0
        self.array.size, self.array.selected, self.array.sorted = self.n_vocab, -1, False

    def draw(self, sampler: llama_cpp.llama_sampler_p) -> int:
        llama_cpp.llama_sampler_apply(sampler, ctypes.byref(self.array))
        return int(self.data["id"][self.array.selected])

    def allows(self, grammar: llama_cpp.llama_sampler_p, token: int) -> bool:
        self.one["id"][0], self.one["logit"][0], self.one["p"][0] = token, 0.0, 0.0
        self.one_array.size, self.one_array.selected, self.one_array.sorted = 1, -1, False
        llama_cpp.llama_sampler_apply(grammar, ctypes.byref(self.one_array))
        return bool(np.isfinite(self.one["logit"][0]))

    def sample(self, ctx: llama_cpp.llama_context_p, idx: int, chain: llama_cpp.llama_sampler_p,
               grammar: llama_cpp.llama_sampler_p) -> int | None:  # fmt: skip
        """The next token under `grammar`, accepted by both samplers; None when the grammar takes no token
        the chain would draw (a finished grammar whose end the request forbids, such as `ignore_eos`)."""
        logits = llama_cpp.llama_get_logits_ith(ctx, idx)
        self.fill(logits)
        token = self.draw(chain)
        if not self.allows(grammar, token):
            self.fill(logits)
            llama_cpp.llama_sampler_apply(grammar, ctypes.byref(self.array))
            token = self.draw(chain)
            if not self.allows(grammar, token):
                return None
        llama_cpp.llama_sampler_accept(grammar, token)
        llama_cpp.llama_sampler_accept(chain, token)
        return token
